"""diffserial.losses against independent numpy computations on fixed keys.

The random draws (t, z, mask uniforms) are regenerated here from jax with the sampling rule documented
in `diffserial.losses`; all loss arithmetic (process coefficients, model, weights, log-softmax) is numpy
float64 from closed forms written out below, not from the library.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from diffserial.losses import antithetic_times, dsm_batch_loss, dsm_loss, eps_to_score, masked_nelbo, score_fn_from_eps
from diffserial.models.mlp import ScoreMLP
from diffserial.processes.gaussian import VEGeometric, VPLinear
from diffserial.processes.masked import Cosine, Linear

B, D = 8, 3
V, L = 4, 6  # vocabulary {0..3}, MASK = 4


# ---------------------------------------------------------------------------------- tiny models
def linear_apply(params, x, t):
    return x @ params["W"] + params["b"] + t[:, None] * params["c"]


def linear_params():
    rng = np.random.default_rng(0)
    return {
        "W": jnp.asarray(rng.normal(size=(D, D)) * 0.5, jnp.float32),
        "b": jnp.asarray(rng.normal(size=(D,)) * 0.1, jnp.float32),
        "c": jnp.asarray(rng.normal(size=(D,)), jnp.float32),
    }


def table_apply(params, x, t):
    """logits[b, j] = E[x_t[b, j]] + t_b * c: a token-wise (x, t) -> logits lookup."""
    return params["E"][x] + t[:, None, None] * params["c"]


def table_params():
    rng = np.random.default_rng(1)
    return {"E": jnp.asarray(rng.normal(size=(V + 1, V)), jnp.float32), "c": jnp.asarray(rng.normal(size=(V,)), jnp.float32)}


def x0_gauss():
    return jnp.asarray(np.random.default_rng(2).normal(size=(B, D)), jnp.float32)


def x0_tokens():
    return jnp.asarray(np.random.default_rng(3).integers(0, V, size=(B, L)), jnp.int32)


# ---------------------------------------------------------------------------------- numpy references
def np_coeffs(process, t):
    """(m, s, g^2) in float64 from the closed forms."""
    if isinstance(process, VPLinear):
        bmin, bmax = process.beta_min, process.beta_max
        logm = -0.25 * t**2 * (bmax - bmin) - 0.5 * t * bmin
        m = np.exp(logm)
        return m, np.sqrt(1.0 - m**2), bmin + t * (bmax - bmin)
    smin, smax = process.sigma_min, process.sigma_max
    sig = smin * (smax / smin) ** t
    return np.ones_like(t), np.sqrt(sig**2 - smin**2), sig**2 * 2.0 * np.log(smax / smin)


def np_dsm(process, key, parameterization, weighting, t_min):
    key_t, key_z = jax.random.split(key)
    t = np.float64(t_min) + (1.0 - t_min) * np.asarray(jax.random.uniform(key_t, (B,)), np.float64)
    z = np.asarray(jax.random.normal(key_z, (B, D)), np.float64)
    p = {k: np.asarray(v, np.float64) for k, v in linear_params().items()}
    x0 = np.asarray(x0_gauss(), np.float64)
    m, s, g2 = np_coeffs(process, t)
    x_t = m[:, None] * x0 + s[:, None] * z
    out = x_t @ p["W"] + p["b"] + t[:, None] * p["c"]
    lam = {"sigma2": s**2, "likelihood": g2, "uniform": np.ones_like(t)}[weighting]
    score = -out / s[:, None] if parameterization == "eps" else out
    per = lam * np.sum((score + z / s[:, None]) ** 2, axis=1)
    return per.mean(), per, t


def np_log_softmax(a):
    a = a - a.max(-1, keepdims=True)
    return a - np.log(np.exp(a).sum(-1, keepdims=True))


# ---------------------------------------------------------------------------------- DSM
@pytest.mark.parametrize("process", [VPLinear(), VEGeometric()], ids=["vp", "ve"])
@pytest.mark.parametrize("parameterization", ["eps", "score"])
@pytest.mark.parametrize("weighting", ["sigma2", "likelihood", "uniform"])
def test_dsm_matches_numpy(process, parameterization, weighting):
    key = jax.random.PRNGKey(7)
    t_min = 0.05
    loss, aux = dsm_loss(linear_apply, linear_params(), process, x0_gauss(), key,
                         parameterization=parameterization, weighting=weighting, t_min=t_min)
    ref, per, t = np_dsm(process, key, parameterization, weighting, t_min)
    np.testing.assert_allclose(np.asarray(aux["t"]), t, rtol=1e-6)
    np.testing.assert_allclose(np.asarray(aux["per_example"]), per, rtol=2e-4)
    np.testing.assert_allclose(float(loss), ref, rtol=2e-4)
    assert np.all(t >= t_min) and np.all(t < 1.0)


def test_dsm_eps_sigma2_is_plain_noise_mse():
    key = jax.random.PRNGKey(3)
    loss, aux = dsm_loss(linear_apply, linear_params(), VPLinear(), x0_gauss(), key,
                         parameterization="eps", weighting="sigma2", t_min=1e-3)
    key_t, key_z = jax.random.split(key)
    t = 1e-3 + (1 - 1e-3) * np.asarray(jax.random.uniform(key_t, (B,)), np.float64)
    z = np.asarray(jax.random.normal(key_z, (B, D)), np.float64)
    m, s, _ = np_coeffs(VPLinear(), t)
    p = {k: np.asarray(v, np.float64) for k, v in linear_params().items()}
    x_t = m[:, None] * np.asarray(x0_gauss(), np.float64) + s[:, None] * z
    eps = x_t @ p["W"] + p["b"] + t[:, None] * p["c"]
    np.testing.assert_allclose(float(loss), np.mean(np.sum((eps - z) ** 2, 1)), rtol=2e-4)


def test_dsm_perfect_eps_model_has_zero_loss():
    """For a point mass at 0, x_t = s_t z, so eps = x_t / s_t is exact: loss 0 for every weighting."""
    proc = VPLinear()

    def perfect(params, x, t):
        return params * x / proc.marginal(t)[1][:, None]

    for w in ("sigma2", "likelihood", "uniform"):
        loss, _ = dsm_loss(perfect, jnp.float32(1.0), proc, jnp.zeros((B, D)), jax.random.PRNGKey(0), weighting=w)
        assert float(loss) < 1e-6


def test_dsm_batch_loss_per_example_noise_is_each_example_own_draw():
    """The batched per-example loss == the mean of dsm_loss on each example alone with key
    fold_in(key, index[i]), and its per-example losses do not depend on the batch's other rows."""
    model = ScoreMLP(hidden=16, n_blocks=1, embed_dim=8)
    apply_fn = lambda p, x, t: model.apply({"params": p}, x, t)
    params = jax.jit(model.init)(jax.random.PRNGKey(0), jnp.zeros((1, 2)), jnp.zeros((1,)))["params"]
    n = 32
    batch = {"x": 0.5 + 2.0 * jax.random.normal(jax.random.PRNGKey(1), (n, 2)), "index": jnp.arange(n, dtype=jnp.int32)}
    loss_fn = jax.jit(dsm_batch_loss(apply_fn, VPLinear(), per_example_noise=True))
    key = jax.random.PRNGKey(7)
    loss, aux = loss_fn(params, batch, key)
    # each example alone, as one program (not op by op)
    single = jax.jit(lambda x, i: dsm_loss(apply_fn, params, VPLinear(), x, jax.random.fold_in(key, i))[0])
    x, index = np.asarray(batch["x"]), np.asarray(batch["index"])
    singles = [float(single(x[i:i + 1], index[i])) for i in range(n)]
    np.testing.assert_allclose(aux["per_example"], singles, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(loss, np.mean(singles), rtol=1e-5)
    half = jax.tree.map(lambda x: x[n // 2:], batch)
    np.testing.assert_allclose(loss_fn(params, half, key)[1]["per_example"], aux["per_example"][n // 2:],
                               rtol=1e-5, atol=1e-6)


def test_eps_to_score_and_partial():
    proc = VEGeometric()
    t = jnp.asarray([0.2, 0.7])
    eps = jnp.asarray([[1.0, -2.0], [0.5, 3.0]])
    _, s, _ = np_coeffs(proc, np.asarray(t, np.float64))
    np.testing.assert_allclose(np.asarray(eps_to_score(eps, proc, t)), -np.asarray(eps) / s[:, None], rtol=1e-5)
    np.testing.assert_allclose(np.asarray(eps_to_score(eps[0], proc, 0.2)), -np.asarray(eps[0]) / s[0], rtol=1e-5)
    fn = score_fn_from_eps(jax.tree_util.Partial(lambda x, t: 2.0 * x), proc)
    out = jax.jit(lambda f, x, t: f(x, t))(fn, eps[0], jnp.float32(0.2))
    np.testing.assert_allclose(np.asarray(out), -2.0 * np.asarray(eps[0]) / s[0], rtol=1e-5)


@pytest.mark.parametrize("parameterization", ["eps", "score"])
def test_dsm_gradients_flow(parameterization):
    f = lambda p: dsm_loss(linear_apply, p, VPLinear(), x0_gauss(), jax.random.PRNGKey(1),
                           parameterization=parameterization, weighting="likelihood")[0]
    g = jax.jit(jax.grad(f))(linear_params())
    for leaf in jax.tree_util.tree_leaves(g):
        assert np.all(np.isfinite(leaf)) and np.any(np.asarray(leaf) != 0)


def test_dsm_bad_inputs():
    args = (linear_apply, linear_params(), VPLinear(), x0_gauss(), jax.random.PRNGKey(0))
    with pytest.raises(ValueError, match="parameterization"):
        dsm_loss(*args, parameterization="v")
    with pytest.raises(ValueError, match="weighting"):
        dsm_loss(*args, weighting="snr")
    for bad in (0.0, 1.0, -0.1, 1.5, float("nan")):
        with pytest.raises(ValueError, match="t_min"):
            dsm_loss(*args, t_min=bad)


# ---------------------------------------------------------------------------------- masked NELBO
def np_nelbo(schedule, key, prompt=None, t_min=1e-4, antithetic=True):
    key_t, key_m = jax.random.split(key)
    if antithetic:
        u = float(jax.random.uniform(key_t, ()))
        t = t_min + (1 - t_min) * np.mod(u + np.arange(B) / B, 1.0)
    else:
        t = t_min + (1 - t_min) * np.array([float(jax.random.uniform(jax.random.fold_in(key_t, i), ()))
                                            for i in range(B)])
    keys = [jax.random.fold_in(key_m, i) for i in range(B)]
    unif = np.stack([np.asarray(jax.random.uniform(k, (L,)), np.float64) for k in keys])
    if isinstance(schedule, Linear):
        alpha, w = 1 - t, -1.0 / t
    else:
        alpha, w = 1 - np.sin(np.pi * t / 2), -(np.pi / 2) / np.tan(np.pi * t / 2)
    prompt = np.zeros((B, L), bool) if prompt is None else np.broadcast_to(prompt, (B, L))
    masked = (unif >= alpha[:, None]) & ~prompt
    x0 = np.asarray(x0_tokens())
    x_t = np.where(masked, V, x0)
    p = {k: np.asarray(v, np.float64) for k, v in table_params().items()}
    logp = np_log_softmax(p["E"][x_t] + t[:, None, None] * p["c"])
    lp_x0 = np.take_along_axis(logp, x0[..., None], -1)[..., 0]
    per = w * np.sum(np.where(masked, lp_x0, 0.0), axis=1)
    return per.mean(), per, t, masked, per.sum() / (~prompt).sum()


@pytest.mark.parametrize("schedule", [Linear(), Cosine()], ids=["linear", "cosine"])
@pytest.mark.parametrize("antithetic", [True, False])
def test_masked_nelbo_matches_numpy(schedule, antithetic):
    key = jax.random.PRNGKey(11)
    loss, aux = masked_nelbo(table_apply, table_params(), schedule, x0_tokens(), key, mask_id=V, antithetic=antithetic)
    ref, per, t, masked, per_tok = np_nelbo(schedule, key, antithetic=antithetic)
    np.testing.assert_allclose(np.asarray(aux["t"]), t, rtol=1e-5)
    np.testing.assert_array_equal(np.asarray(aux["x_t"]) == V, masked)
    np.testing.assert_array_equal(np.asarray(aux["n_masked"]), masked.sum(1))
    np.testing.assert_allclose(np.asarray(aux["per_example"]), per, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(float(loss), ref, rtol=1e-4)
    np.testing.assert_allclose(float(aux["per_token"]), per_tok, rtol=1e-4)
    assert float(loss) >= 0 and np.all(np.asarray(aux["per_example"]) >= 0)
    assert 0 < masked.sum() < masked.size  # the fixed key exercises both cases


def test_masked_nelbo_prompt_positions_never_scored():
    prompt = np.array([True, True, False, False, False, False])
    key = jax.random.PRNGKey(5)
    loss, aux = masked_nelbo(table_apply, table_params(), Linear(), x0_tokens(), key, mask_id=V,
                             prompt_mask=jnp.asarray(prompt))
    ref, per, _, masked, per_tok = np_nelbo(Linear(), key, prompt=prompt)
    x_t = np.asarray(aux["x_t"])
    np.testing.assert_array_equal(x_t[:, :2], np.asarray(x0_tokens())[:, :2])
    np.testing.assert_allclose(float(loss), ref, rtol=1e-4)
    np.testing.assert_allclose(float(aux["per_token"]), per_tok, rtol=1e-4)


def test_antithetic_times_are_stratified():
    t_min = 1e-4
    for seed in range(5):
        for batch in (1, 4, 7, 16):
            t = np.asarray(antithetic_times(jax.random.PRNGKey(seed), np.arange(batch), batch, t_min), np.float64)
            assert np.all(t >= t_min) and np.all(t <= 1.0)
            bins = np.floor((t - t_min) / (1 - t_min) * batch + 1e-6).astype(int) % batch
            assert sorted(bins.tolist()) == list(range(batch))


def test_masked_nelbo_perfect_predictor_is_zero():
    """Point-mass data x0 = x*: logits huge on x* regardless of input give NELBO ~ 0."""
    x_star = jnp.asarray([2, 0, 3, 1, 1, 2], jnp.int32)
    x0 = jnp.broadcast_to(x_star, (B, L))
    perfect = lambda p, x, t: p * jax.nn.one_hot(jnp.broadcast_to(x_star, x.shape), V)
    loss, aux = masked_nelbo(perfect, jnp.float32(1e4), Cosine(), x0, jax.random.PRNGKey(0), mask_id=V)
    assert 0.0 <= float(loss) < 1e-6
    assert int(np.sum(aux["n_masked"])) > 0


def test_masked_nelbo_gradients_flow_and_jit():
    f = lambda p: masked_nelbo(table_apply, p, Linear(), x0_tokens(), jax.random.PRNGKey(2), mask_id=V)[0]
    g = jax.jit(jax.grad(f))(table_params())
    for leaf in jax.tree_util.tree_leaves(g):
        assert np.all(np.isfinite(leaf)) and np.any(np.asarray(leaf) != 0)
    np.testing.assert_allclose(float(jax.jit(f)(table_params())), float(f(table_params())), rtol=1e-5)


def test_masked_nelbo_bad_inputs():
    args = (table_apply, table_params(), Linear(), x0_tokens(), jax.random.PRNGKey(0))
    for bad in (0.0, 1.0, -1e-3, 2.0):
        with pytest.raises(ValueError, match="t_min"):
            masked_nelbo(*args, mask_id=V, t_min=bad)
    with pytest.raises(ValueError, match="prompt_mask"):
        masked_nelbo(*args, mask_id=V, prompt_mask=jnp.zeros((L,), jnp.int32))
    with pytest.raises(ValueError, match="x0"):
        masked_nelbo(*args[:3], x0_tokens() + V, args[4], mask_id=V)
    with pytest.raises(ValueError, match="logits"):
        masked_nelbo(table_apply, table_params(), Linear(), x0_tokens(), jax.random.PRNGKey(0), mask_id=V + 1)


@pytest.mark.parametrize("antithetic", [True, False])
def test_masked_nelbo_split_batch_matches_whole(antithetic):
    """Halves of a batch with their global indices draw the same (t, x_t) as the whole batch."""
    key = jax.random.PRNGKey(3)
    kw = dict(mask_id=V, antithetic=antithetic)
    _, whole = masked_nelbo(table_apply, table_params(), Cosine(), x0_tokens(), key, **kw)
    h = B // 2
    for rows in (slice(0, h), slice(h, B)):
        _, part = masked_nelbo(table_apply, table_params(), Cosine(), x0_tokens()[rows], key,
                               index=jnp.arange(B)[rows], global_batch=B, **kw)
        np.testing.assert_array_equal(np.asarray(part["t"]), np.asarray(whole["t"])[rows])
        np.testing.assert_array_equal(np.asarray(part["x_t"]), np.asarray(whole["x_t"])[rows])
        np.testing.assert_allclose(np.asarray(part["per_example"]), np.asarray(whole["per_example"])[rows],
                                   rtol=1e-6)
    with pytest.raises(ValueError, match="global_batch"):
        masked_nelbo(table_apply, table_params(), Cosine(), x0_tokens(), key, mask_id=V, global_batch=B - 1)
    with pytest.raises(ValueError, match="index"):
        masked_nelbo(table_apply, table_params(), Cosine(), x0_tokens(), key, mask_id=V, index=jnp.arange(B + 1))


def test_masked_supervised_loss_is_cross_entropy_of_the_fully_masked_answer():
    """Against numpy: every non-prompt position replaced by MASK, -sum log softmax at the true tokens."""
    from diffserial.losses import masked_supervised_loss

    rng = np.random.default_rng(3)
    V, L, B = 3, 5, 4
    table = rng.normal(size=(V + 1, L, V))  # logits depend on (token, position): a toy apply_fn
    apply_fn = lambda p, x, t: jnp.asarray(table)[x, jnp.arange(L)] * p
    x0 = rng.integers(0, V, size=(B, L))
    prompt = np.arange(L) < 2
    loss, aux = masked_supervised_loss(apply_fn, 1.5, jnp.asarray(x0), jnp.asarray(prompt), mask_id=V)
    seen = np.where(prompt, x0, V)
    logits = table[seen, np.arange(L)] * 1.5
    logp = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    nll = -np.take_along_axis(logp, x0[..., None], -1)[..., 0]
    expected = np.where(prompt, 0.0, nll).sum(-1)
    np.testing.assert_allclose(float(loss), expected.mean(), rtol=1e-5)
    np.testing.assert_allclose(float(aux["per_token"]), expected.sum() / (B * 3), rtol=1e-5)
