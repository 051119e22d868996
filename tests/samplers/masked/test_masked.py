"""Masked samplers: exactness on parity, ReMDM marginals, seed contract, prompts, every rule, bad input.

Compilation dominates the cost of these tests (about a second or two per program on CPU), so runs that
can share a program do: every rule is compiled once for the (n = 8, T = 8, prompt) configuration,
which the seed-contract test reuses for n_seeds = 1.
"""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from diffserial.metrics.tv import tv_report
from diffserial.processes.masked import Cosine, Linear, corrupt
from diffserial.samplers import seed_mesh
from diffserial.samplers import masked as M
from diffserial.targets.discrete import LOG_ZERO, parity_predictor, parity_tv_ancestral_uniform

PARITY = parity_predictor()
LINEAR = Linear()

# The shared configuration of the smoke / prompt / seed-contract runs.
N_SMOKE, T_SMOKE, SNAP = 8, 8, 4
PROMPT = np.array([1, 1])
PROMPT_MASK = np.zeros(N_SMOKE, bool)
PROMPT_MASK[[2, 5]] = True
N_GEN = N_SMOKE - len(PROMPT)


def _smoke_run(name, n_seeds, mesh=None):
    return M.sample_masked_with_snapshots(
        PARITY, LINEAR, M.masked_sampler(name), M.masked_grid(T_SMOKE), key=jax.random.key(7),
        n_seeds=n_seeds, length=N_SMOKE, vocab_size=2, prompt=PROMPT, prompt_mask=PROMPT_MASK,
        snapshot_steps=(SNAP,), mesh=mesh)


def _codes(x):
    x = np.asarray(x)
    return (x * (1 << np.arange(x.shape[1] - 1, -1, -1))).sum(axis=1)


def _even_pmf(n):
    codes = np.arange(2**n)
    even = np.array([bin(c).count("1") % 2 == 0 for c in codes])
    return np.where(even, 1.0 / 2 ** (n - 1), 0.0)


def _odd(x):
    return np.asarray(x).sum(axis=1) % 2


def _binomial_ok(k, n, p, z=5.0):
    return abs(k - n * p) <= z * np.sqrt(n * p * (1 - p)) + 1e-9


# --------------------------------------------------------------------------------------------------
# Every rule: runs, reveals everything, keeps the prompt; counts of the top-k family follow the schedule
# --------------------------------------------------------------------------------------------------

def _maskgit_masked_after(steps, total, n_gen):
    """MaskGIT's recurrence: n <- clip(floor(n_gen cos(pi/2 k/T)), 1, n - 1) (at least one reveal per step)."""
    n = n_gen
    for k in range(1, steps + 1):
        n = max(1, min(n - 1, int(np.floor(n_gen * np.cos(np.pi / 2 * k / total)))))
    return n


# masked positions left after SNAP of T_SMOKE uniform steps, for the rules whose count is deterministic
_MASKED_AT_SNAP = {
    "first_hitting": N_GEN - SNAP,
    "topk_confidence": round(N_GEN * (1 - SNAP / T_SMOKE)),
    "topk_margin": round(N_GEN * (1 - SNAP / T_SMOKE)),
    "topk_entropy": round(N_GEN * (1 - SNAP / T_SMOKE)),
    "topk_random": round(N_GEN * (1 - SNAP / T_SMOKE)),
    "maskgit": _maskgit_masked_after(SNAP, T_SMOKE, N_GEN),
    "semi_ar": round(N_GEN * (1 - SNAP / T_SMOKE)),  # one block (block_len 32 > 6)
}


@pytest.mark.parametrize("name", sorted(M.MASKED_SAMPLERS))
def test_every_rule_reveals_everything_and_keeps_the_prompt(name):
    x, snaps = (np.asarray(a) for a in _smoke_run(name, 1024))
    assert x.shape == (1024, N_SMOKE) and x.dtype == np.int32
    assert x.min() >= 0 and x.max() <= 1, "MASK (2) or out-of-vocabulary tokens left at t = 0"
    np.testing.assert_array_equal(x[:, PROMPT_MASK], np.broadcast_to(PROMPT, (1024, len(PROMPT))))
    np.testing.assert_array_equal(snaps[:, 0, PROMPT_MASK], np.broadcast_to(PROMPT, (1024, len(PROMPT))))
    n_masked = (snaps[:, 0] == 2).sum(axis=1)
    if name in _MASKED_AT_SNAP:
        np.testing.assert_array_equal(n_masked, _MASKED_AT_SNAP[name])
    else:
        assert 0 <= n_masked.min() and n_masked.max() <= N_GEN


def test_registry_and_nfe():
    assert set(M.MASKED_SAMPLERS) == {
        "ancestral", "first_hitting", "topk_confidence", "topk_margin", "topk_entropy", "topk_random",
        "maskgit", "semi_ar", "remdm_cap", "remdm_rescale", "remdm_conf", "remdm_loop", "fb_corrector",
        "dfm_corrector", "revision"}
    for name in M.MASKED_SAMPLERS:
        assert M.masked_sampler(name).nfe_per_step == (2 if name == "revision" else 1)
    with pytest.raises(ValueError, match="valid masked samplers: ancestral"):
        M.masked_sampler("nope")


def test_grids():
    for spacing in M.GRID_SPACINGS:
        ts = np.asarray(M.masked_grid(10, spacing))
        assert ts.shape == (11,) and ts[0] == 1.0 and ts[-1] == 0.0 and np.all(np.diff(ts) < 0)
    np.testing.assert_allclose(M.masked_grid(4), [1.0, 0.75, 0.5, 0.25, 0.0])


# --------------------------------------------------------------------------------------------------
# Parity: the ancestral sampler's closed-form TV; exact when the last event reveals one bit
# --------------------------------------------------------------------------------------------------

N_PARITY, N_SEEDS = 6, 1 << 15


def _parity_run(name, steps, pad_to, **kw):
    x = M.sample_masked(PARITY, LINEAR, M.masked_sampler(name, **kw), M.masked_grid(steps),
                        key=jax.random.key(steps), n_seeds=N_SEEDS, length=N_PARITY, vocab_size=2, pad_to=pad_to)
    x = np.asarray(x)
    assert x.max() <= 1
    return x, tv_report(_codes(x), 2**N_PARITY, _even_pmf(N_PARITY), seed=steps)


@pytest.mark.parametrize("steps", [2, 4, 16])
def test_ancestral_parity_tv_matches_closed_form(steps):
    x, rep = _parity_run("ancestral", steps, pad_to=16)
    expected = parity_tv_ancestral_uniform(N_PARITY, steps)
    n_odd = int(_odd(x).sum())
    assert _binomial_ok(n_odd, N_SEEDS, expected), (n_odd / N_SEEDS, expected)  # P(odd) = TV = q/2
    assert rep["tv_lo"] <= expected <= rep["tv_hi"], (rep, expected)


def test_one_bit_last_event_is_exact_and_many_bits_give_half():
    # first_hitting with T = n: the last step reveals exactly one bit, completed by the oracle.
    x, rep = _parity_run("first_hitting", N_PARITY, pad_to=N_PARITY)
    assert _odd(x).sum() == 0
    spread = (rep["tv_floor_q95"] - rep["tv_floor"]) / 1.645
    assert rep["tv"] <= rep["tv_floor"] + 5 * spread, rep
    # T = 3 < n: the last step reveals 4 bits (fair coins): the output is uniform, odd rate and TV 1/2.
    x, rep = _parity_run("first_hitting", 3, pad_to=N_PARITY)
    assert _binomial_ok(int(_odd(x).sum()), N_SEEDS, 0.5)
    assert rep["tv_lo"] <= 0.5 <= rep["tv_hi"], rep


def test_topk_two_per_step_gives_odd_rate_half():
    x, rep = _parity_run("topk_confidence", 3, pad_to=None, k=2)
    assert _binomial_ok(int(_odd(x).sum()), N_SEEDS, 0.5)
    assert rep["tv_lo"] <= 0.5 <= rep["tv_hi"], rep


# --------------------------------------------------------------------------------------------------
# ReMDM: one step maps q(z_t | x0) to q(z_s | x0) for every admissible sigma
# --------------------------------------------------------------------------------------------------

X0 = np.array([1, 0, 1])
STATES = np.array(list(itertools.product([0, 1, 2], repeat=3)))  # all 3^L states, MASK = 2


def _forward_law(alpha):
    """q(z | x0) over STATES: each position independently x0 w.p. alpha, MASK w.p. 1 - alpha."""
    per = np.where(STATES == X0, alpha, np.where(STATES == 2, 1.0 - alpha, 0.0))
    return per.prod(axis=1)


def _remdm_kernel(a_t, a_s, sigma):
    """K[z_t, z_s] from the documented posterior with x_theta = delta(x0), in float64."""
    reveal = (a_s - (1 - sigma) * a_t) / (1 - a_t)
    k = np.ones((len(STATES), len(STATES)))
    for i in range(3):
        zt, zs = STATES[:, i][:, None], STATES[:, i][None, :]
        from_mask = np.where(zs == X0[i], reveal, np.where(zs == 2, 1 - reveal, 0.0))
        from_clean = np.where(zs == X0[i], 1 - sigma, np.where(zs == 2, sigma, 0.0))
        k *= np.where(zt == 2, from_mask, np.where(zt == X0[i], from_clean, 0.0))
    return k


def _delta_predictor(x, t):
    return jnp.where(jax.nn.one_hot(jnp.asarray(X0), 2) > 0, 0.0, LOG_ZERO)


def _state_index(z):
    return (np.asarray(z) * 3 ** np.arange(2, -1, -1)).sum(axis=1)


# (schedule, t, s): sigma_max = min(1, (1 - a_s)/a_t) is < 1 for the first, = 1 for the others
_STEPS = [(LINEAR, 0.5, 0.3), (LINEAR, 0.9, 0.6), (Cosine(), 0.7, 0.2)]


@pytest.mark.parametrize("sched,t,s", _STEPS)
def test_remdm_posterior_preserves_forward_marginals_exactly(sched, t, s):
    a_t, a_s = 1.0 - float(sched.mask_prob(t)), 1.0 - float(sched.mask_prob(s))
    smax = min(1.0, (1 - a_s) / a_t)
    for sigma in (0.0, 0.3 * smax, 0.8 * smax, smax):
        law = _forward_law(a_t) @ _remdm_kernel(a_t, a_s, sigma)
        np.testing.assert_allclose(law, _forward_law(a_s), atol=1e-12)


@pytest.mark.parametrize("name,kw", [("remdm_cap", {"eta": 0.3}), ("remdm_rescale", {"eta": 1.0}),
                                     ("fb_corrector", {})])
def test_remdm_rule_preserves_forward_marginals_monte_carlo(name, kw):
    rule = M.masked_sampler(name, **kw).bind(2)
    n = 100_000
    state = rule.init_state(jnp.full((3,), 2, jnp.int32))  # nothing fixed

    @jax.jit
    def run(key, t, s):
        k_corrupt, k_step = jax.random.split(key)
        zt = jax.vmap(lambda k: corrupt(k, jnp.asarray(X0), t, LINEAR, 2))(jax.random.split(k_corrupt, n))
        step = lambda z, k: rule.step(LINEAR, _delta_predictor, z, state, t, s, k)[0]
        return zt, jax.vmap(step)(zt, jax.random.split(k_step, n))

    # linear steps only: one compiled program per rule (t, s traced; the schedule is static)
    for i, (_, t, s) in enumerate(step for step in _STEPS if step[0] is LINEAR):
        zt, zs = run(jax.random.key(i), jnp.float32(t), jnp.float32(s))
        counts = np.bincount(_state_index(zs), minlength=27)
        law = _forward_law(1.0 - t)
        law_s = _forward_law(1.0 - s)
        assert counts[law_s == 0].sum() == 0  # revealed tokens are x0 (the predictor's sample)
        for c, p in zip(counts, law_s):
            if p > 0:
                assert _binomial_ok(c, n, p), (name, t, s, counts, law_s * n)
        # the transition really moved mass (not the identity): from z_t's law to z_s's
        assert np.abs(np.bincount(_state_index(zt), minlength=27) / n - law).max() < 0.01


# --------------------------------------------------------------------------------------------------
# Seed contract
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["ancestral", "remdm_cap"])
def test_seed_results_independent_of_batch_size_and_devices(name):
    assert jax.device_count() == 8, "tests/conftest.py should simulate 8 CPU devices"
    big_x, big_s = (np.asarray(a) for a in _smoke_run(name, 3000))
    one_x, one_s = (np.asarray(a) for a in _smoke_run(name, 1))  # same program as the smoke test
    np.testing.assert_array_equal(one_x, big_x[:1])
    np.testing.assert_array_equal(one_s, big_s[:1])
    sharded_x, sharded_s = _smoke_run(name, 3000, mesh=seed_mesh())
    assert len(sharded_x.sharding.device_set) == 8
    np.testing.assert_array_equal(np.asarray(sharded_x), big_x)
    np.testing.assert_array_equal(np.asarray(sharded_s), big_s)


# --------------------------------------------------------------------------------------------------
# Bad input
# --------------------------------------------------------------------------------------------------


def _call(**kw):
    args = dict(key=jax.random.key(0), n_seeds=4, length=4, vocab_size=2)
    args.update(kw)
    ts = args.pop("ts", M.masked_grid(4))
    return M.sample_masked(PARITY, LINEAR, M.masked_sampler("ancestral"), ts, **args)


def test_bad_input_raises_before_compiling():
    with pytest.raises(ValueError, match="longer than the sequence"):
        _call(prompt=[0, 1, 0, 1, 0])
    with pytest.raises(ValueError, match=r"prompt tokens must lie in \[0, vocab_size\)"):
        _call(prompt=[0, 2])
    with pytest.raises(ValueError, match="vocabulary or length mismatch"):
        _call(vocab_size=3)
    with pytest.raises(ValueError, match="prompt_mask has 1 True"):
        _call(prompt=[0, 1], prompt_mask=np.array([True, False, False, False]))
    with pytest.raises(ValueError, match="steps >= 1"):
        _call(ts=jnp.array([1.0]))
    with pytest.raises(ValueError, match="ts\\[-1\\] must be 0"):
        _call(ts=jnp.array([1.0, 0.5]))
    with pytest.raises(ValueError, match="steps must be an int >= 1"):
        M.masked_grid(0)
    for name in ("topk_confidence", "topk_margin", "topk_entropy", "topk_random"):
        with pytest.raises(ValueError, match="k \\(positions revealed per step\\)"):
            M.masked_sampler(name, k=0)
    with pytest.raises(ValueError, match="block_len"):
        M.masked_sampler("semi_ar", block_len=0)
    with pytest.raises(ValueError, match="t_off < t_on"):
        M.masked_sampler("remdm_loop", t_on=0.1, t_off=0.2)
    with pytest.raises(ValueError, match="eta"):
        M.masked_sampler("remdm_cap", eta=1.5)
    with pytest.raises(ValueError, match="bound to mask_id 3"):
        M.masked_sampler("ancestral", mask_id=3).bind(2)
