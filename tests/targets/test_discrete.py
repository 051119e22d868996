"""Discrete targets: exact predictors against brute force, and the parity TV of the ancestral sampler
against an exact Markov-chain computation and a plain numpy Monte Carlo sampler."""

import itertools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from diffserial.targets.discrete import (
    LOG_ZERO,
    ExplicitPMF,
    capacity_bounded,
    enumeration_predictor,
    final_reveal_collision_probability,
    odd_rate_lower_bound,
    parity_pmf,
    parity_predictor,
    parity_tv_ancestral,
    parity_tv_ancestral_uniform,
    posterior_marginals,
    sample,
    windowed_parity_predictor,
)

MASK = 2  # parity mask id


def _all_inputs(n, n_symbols):
    return np.array(list(itertools.product(range(n_symbols), repeat=n)), dtype=np.int32)


def _batched(pred, xs, t=0.5):
    return np.asarray(jax.jit(jax.vmap(lambda x: pred(x, t)))(jnp.asarray(xs)))


# --- brute-force references, written independently of the library ---------------------------------


def _brute_posterior(support, probs, x_t, mask_id, v):
    length = len(x_t)
    out = np.zeros((length, v))
    total = 0.0
    for row, p in zip(support, probs):
        if all(x_t[i] == mask_id or x_t[i] == row[i] for i in range(length)):
            total += p
            for i in range(length):
                out[i, row[i]] += p
    if total > 0:
        return out / total
    return np.array([np.full(v, 1.0 / v) if x == mask_id else np.eye(v)[x] for x in x_t])


def _even_strings(n):
    return [s for s in itertools.product((0, 1), repeat=n) if sum(s) % 2 == 0]


def _brute_parity_marginals(x):
    """(n, 2) exact marginals of the even-parity law given x (2 = mask), by enumeration."""
    ok = [s for s in _even_strings(len(x)) if all(xi == MASK or xi == si for xi, si in zip(x, s))]
    p1 = np.array([np.mean([s[i] for s in ok]) for i in range(len(x))])
    return np.stack([1 - p1, p1], axis=1)


def _exact_ancestral_law(n, alphas, marginals):
    """Exact output law of the no-remask ancestral sampler: a Markov chain over partially masked strings."""
    states = {(MASK,) * n: 1.0}
    for k in range(1, len(alphas)):
        r = (alphas[k] - alphas[k - 1]) / (1.0 - alphas[k - 1])
        new = {}
        for x, px in states.items():
            masked = [i for i in range(n) if x[i] == MASK]
            if not masked:
                new[x] = new.get(x, 0.0) + px
                continue
            marg = marginals(x)
            for size in range(len(masked) + 1):
                for subset in itertools.combinations(masked, size):
                    p_subset = r**size * (1 - r) ** (len(masked) - size)
                    if p_subset == 0:
                        continue
                    for bits in itertools.product((0, 1), repeat=size):
                        y = list(x)
                        pb = 1.0
                        for i, b in zip(subset, bits):
                            y[i] = b
                            pb *= marg[i, b]
                        new[tuple(y)] = new.get(tuple(y), 0.0) + px * p_subset * pb
        states = new
    assert all(MASK not in x for x, p in states.items() if p > 0)
    return states


def _tv_to_even(law, n):
    even = set(_even_strings(n))
    tv = 0.0
    for s in itertools.product((0, 1), repeat=n):
        target = 1.0 / len(even) if s in even else 0.0
        tv += abs(law.get(s, 0.0) - target)
    return 0.5 * tv


# --- explicit pmfs and enumeration ------------------------------------------------------------------


def test_enumeration_matches_brute_force():
    rng = np.random.default_rng(0)
    v, length = 3, 4
    all_strings = _all_inputs(length, v)
    support = all_strings[rng.choice(len(all_strings), size=30, replace=False)]
    probs = rng.random(30) * (rng.random(30) > 0.2)  # some zero-probability rows
    probs /= probs.sum()
    pmf = ExplicitPMF.create(support, probs, v)
    xs = _all_inputs(length, v + 1)  # every pattern of tokens and masks (id 3), incl. inconsistent ones
    logp = _batched(enumeration_predictor(pmf, v), xs)
    assert logp.shape == (len(xs), length, v) and logp.dtype == np.float32
    want = np.array([_brute_posterior(support, probs, x, v, v) for x in xs])
    np.testing.assert_allclose(np.exp(logp), want, atol=2e-6)
    np.testing.assert_array_equal(logp <= LOG_ZERO / 2, want == 0)  # zeros -> LOG_ZERO, never -inf / NaN
    assert np.all(np.isfinite(logp))
    x = jnp.array([0, 3, 3, 1])
    np.testing.assert_allclose(posterior_marginals(pmf, x), _brute_posterior(support, probs, x, 3, 3), atol=2e-6)
    assert len(jax.tree_util.tree_leaves(enumeration_predictor(pmf))) == 2  # pmf arrays are traced


def test_create_renormalises_and_samples():
    probs = np.array([0.5, 0.25, 0.25 + 5e-10])
    pmf = ExplicitPMF.create([[0, 1], [1, 1], [1, 0]], probs, 2)
    assert pmf.support.dtype == jnp.int32 and (pmf.n_support, pmf.length) == (3, 2)
    assert float(jnp.sum(pmf.probs)) == pytest.approx(1.0, abs=1e-7)
    draws = np.asarray(sample(pmf, jax.random.PRNGKey(0), 8000))
    freq = [np.mean(np.all(draws == row, axis=1)) for row in ([0, 1], [1, 1], [1, 0])]
    np.testing.assert_allclose(freq, [0.5, 0.25, 0.25], atol=5 * math.sqrt(0.25 / 8000))


# --- parity --------------------------------------------------------------------------------------


@pytest.mark.parametrize("n", [3, 5])
def test_parity_predictor_matches_enumeration(n):
    pmf = parity_pmf(n)
    assert pmf.n_support == 2 ** (n - 1)
    assert np.all(np.asarray(pmf.support).sum(axis=1) % 2 == 0)
    xs = _all_inputs(n, 3)  # every partially masked input (and the unmasked ones)
    closed = _batched(parity_predictor(), xs)
    enum = _batched(enumeration_predictor(pmf, 2), xs)
    np.testing.assert_allclose(np.exp(closed), np.exp(enum), atol=1e-6)
    np.testing.assert_array_equal(closed <= LOG_ZERO / 2, enum <= LOG_ZERO / 2)
    for x in xs[(xs == MASK).any(axis=1)][::7]:  # independent brute force on partially masked inputs
        np.testing.assert_allclose(np.exp(closed[(xs == x).all(axis=1)][0]), _brute_parity_marginals(tuple(x)),
                                   atol=1e-6)


def test_parity_predictor_large_n_against_enumeration():
    n = 16
    rng = np.random.default_rng(1)
    xs = rng.integers(0, 2, size=(24, n))
    for j, x in enumerate(xs):  # 1, 2 or more masks
        x[rng.choice(n, size=1 + j % 3, replace=False)] = MASK
    np.testing.assert_allclose(np.exp(_batched(parity_predictor(), xs)),
                               np.exp(_batched(enumeration_predictor(parity_pmf(n)), xs)), atol=1e-6)


@pytest.mark.parametrize("radius", [0, 1, 2, 3, 4])
def test_windowed_predictor_is_the_capacity_bounded_exact_predictor(radius):
    n = 5
    xs = _all_inputs(n, 3)
    windowed = np.exp(_batched(windowed_parity_predictor(radius), xs))
    np.testing.assert_allclose(windowed, np.exp(_batched(capacity_bounded(parity_predictor(), radius, MASK), xs)),
                               atol=1e-6)
    bounded_enum = capacity_bounded(enumeration_predictor(parity_pmf(n)), radius, MASK)
    np.testing.assert_allclose(windowed, np.exp(_batched(bounded_enum, xs)), atol=1e-6)
    masked = xs == MASK
    if radius >= n - 1:  # every window covers the sequence: the exact predictor
        np.testing.assert_allclose(windowed, np.exp(_batched(parity_predictor(), xs)), atol=1e-6)
    if radius < math.ceil((n - 1) / 2):  # no window covers the sequence: masked positions are always 1/2
        np.testing.assert_allclose(windowed[masked], 0.5)
    np.testing.assert_allclose(windowed[~masked], np.eye(2)[xs[~masked]])


def test_windowed_predictor_is_local():
    n, radius = 9, 2
    rng = np.random.default_rng(2)
    pred = jax.jit(windowed_parity_predictor(radius))
    for _ in range(20):
        x = rng.integers(0, 3, size=n)
        i = int(rng.integers(n))
        y = x.copy()
        far = np.abs(np.arange(n) - i) > radius
        y[far] = rng.integers(0, 3, size=far.sum())
        np.testing.assert_array_equal(pred(jnp.asarray(x), 0.5)[i], pred(jnp.asarray(y), 0.5)[i])


def _table(pred, n):
    """marginals(x) looked up from one batched call of `pred` on all 3^n inputs."""
    xs = _all_inputs(n, 3)
    probs = np.exp(_batched(pred, xs).astype(np.float64))
    table = {tuple(x): p for x, p in zip(xs.tolist(), probs)}
    return lambda x: table[tuple(x)]


def test_windowed_sampler_odd_rate_is_half_the_collision_probability():
    """Exact chain with the windowed predictor, n = 5, radius 2: only the centre's window covers all,
    so P(odd) = P(E)/2 with P(E) = 1 - P(the centre alone is revealed last) = 1 - sum_m (1/T)((m-1)/T)^4.
    With radius 1 no window covers the sequence and P(odd) = 1/2."""
    n, big_t = 5, 3
    alphas = np.arange(big_t + 1) / big_t
    law = _exact_ancestral_law(n, alphas, _table(windowed_parity_predictor(2), n))
    p_odd = sum(p for s, p in law.items() if sum(s) % 2)
    p_e = 1 - sum((1 / big_t) * ((m - 1) / big_t) ** (n - 1) for m in range(1, big_t + 1))
    assert p_odd == pytest.approx(p_e / 2, abs=1e-6)
    law1 = _exact_ancestral_law(n, alphas, _table(windowed_parity_predictor(1), n))
    assert sum(p for s, p in law1.items() if sum(s) % 2) == pytest.approx(0.5, abs=1e-6)


# --- closed-form TV of the ancestral sampler --------------------------------------------------------


@pytest.mark.parametrize("n,big_t", [(1, 3), (2, 1), (2, 3), (3, 2), (3, 4), (4, 1), (4, 3), (4, 4)])
def test_parity_tv_matches_exact_chain(n, big_t):
    alphas = np.arange(big_t + 1) / big_t  # linear schedule on t_k = 1 - k/T
    law = _exact_ancestral_law(n, alphas, _brute_parity_marginals)
    tv = _tv_to_even(law, n)
    assert parity_tv_ancestral_uniform(n, big_t) == pytest.approx(tv, abs=1e-12)
    assert parity_tv_ancestral(n, alphas) == pytest.approx(tv, abs=1e-12)


def test_parity_tv_on_a_cosine_grid_matches_exact_chain():
    n, times = 4, np.array([1.0, 0.7, 0.35, 0.1, 0.0])
    alphas = 1.0 - np.sin(0.5 * np.pi * times)
    alphas[-1] = 1.0
    tv = _tv_to_even(_exact_ancestral_law(n, alphas, _brute_parity_marginals), n)
    assert parity_tv_ancestral(n, alphas) == pytest.approx(tv, abs=1e-12)


def test_collision_probability_special_cases():
    assert final_reveal_collision_probability(1, 10) == 0.0
    assert final_reveal_collision_probability(5, 1) == 1.0
    for big_t in (2, 7, 100):  # two positions collide at the maximum iff they share a step: 1/T
        assert final_reveal_collision_probability(2, big_t) == pytest.approx(1 / big_t, rel=1e-12)
    qs = [final_reveal_collision_probability(8, big_t) for big_t in (1, 2, 4, 16, 256)]
    assert all(a > b for a, b in zip(qs, qs[1:]))


def test_parity_tv_monte_carlo_with_a_numpy_sampler():
    """Plain numpy ancestral sampler with the exact parity oracle, independent of the library."""
    n, big_t, n_samples = 4, 3, 20000
    rng = np.random.default_rng(3)
    x = np.full((n_samples, n), MASK)
    for k in range(1, big_t + 1):
        r = 1.0 / (big_t - k + 1)
        masked = x == MASK
        n_masked = masked.sum(axis=1, keepdims=True)
        parity = np.where(masked, 0, x).sum(axis=1, keepdims=True) % 2
        p1 = np.where(n_masked == 1, parity, 0.5)  # oracle marginal of every masked position
        reveal = masked & (rng.random(x.shape) < r)
        x = np.where(reveal, (rng.random(x.shape) < p1).astype(int), x)
    assert not np.any(x == MASK)
    res = odd_rate_lower_bound(x)
    want = parity_tv_ancestral_uniform(n, big_t)  # = P(odd) for this sampler
    assert abs(res.rate - want) < 5 * math.sqrt(want * (1 - want) / n_samples)
    assert res.lower <= res.rate <= res.upper and res.confidence == 0.95


# --- odd rate and Clopper-Pearson -------------------------------------------------------------------


def test_odd_rate_clopper_pearson():
    big_n = 40
    for k in (0, 1, 13, 39, 40):
        bits = np.zeros((big_n, 3), dtype=np.int32)
        bits[:k, 0] = 1  # k odd rows
        res = odd_rate_lower_bound(bits)
        assert (res.n_odd, res.n_samples, res.rate) == (k, big_n, k / big_n)
        ci = stats.binomtest(k, big_n).proportion_ci(confidence_level=0.95, method="exact")
        assert res.lower == pytest.approx(ci.low, abs=1e-9) and res.upper == pytest.approx(ci.high, abs=1e-9)
    res0 = odd_rate_lower_bound(np.zeros((10, 2)))
    assert res0.lower == 0.0 and res0.upper == pytest.approx(1 - 0.025 ** (1 / 10), rel=1e-9)
    res_all = odd_rate_lower_bound(np.ones((10, 1)))
    assert res_all.lower == pytest.approx(0.025 ** (1 / 10), rel=1e-9) and res_all.upper == 1.0


# --- validation --------------------------------------------------------------------------------------


def test_bad_inputs():
    with pytest.raises(ValueError, match="distinct"):
        ExplicitPMF.create([[0, 1], [0, 1]], [0.5, 0.5], 2)
    with pytest.raises(ValueError, match="support tokens"):
        ExplicitPMF.create([[0, 2]], [1.0], 2)
    with pytest.raises(ValueError, match="sum to 1"):
        ExplicitPMF.create([[0, 1], [1, 1]], [0.5, 0.5 + 1e-6], 2)
    with pytest.raises(ValueError, match=">= 0"):
        ExplicitPMF.create([[0, 1], [1, 1]], [1.5, -0.5], 2)
    with pytest.raises(ValueError, match="shape"):
        ExplicitPMF.create([[0, 1], [1, 1]], [1.0], 2)
    with pytest.raises(ValueError, match="integer"):
        ExplicitPMF.create([[0.0, 1.0]], [1.0], 2)
    with pytest.raises(ValueError, match="vocab_size"):
        ExplicitPMF.create([[0, 1]], [1.0], 0)
    pmf = parity_pmf(3)
    with pytest.raises(ValueError, match="mask_id"):
        enumeration_predictor(pmf, 2, mask_id=1)
    with pytest.raises(ValueError, match="shape"):
        posterior_marginals(pmf, jnp.array([0, 1]))
    with pytest.raises(ValueError, match="tokens"):
        posterior_marginals(pmf, jnp.array([0, 1, 5]))
    with pytest.raises(ValueError, match="tokens"):
        parity_predictor()(jnp.array([0, 3, 1]), 0.5)
    for bad in (0, 17, 2.0):
        with pytest.raises(ValueError, match="n must"):
            parity_pmf(bad)
    with pytest.raises(ValueError, match="radius"):
        windowed_parity_predictor(-1)
    with pytest.raises(ValueError, match="steps"):
        parity_tv_ancestral_uniform(3, 0)
    with pytest.raises(ValueError, match="alphas"):
        parity_tv_ancestral(3, [0.0, 0.5, 0.9])
    with pytest.raises(ValueError, match="bits"):
        odd_rate_lower_bound(np.array([[0, 2]]))
    with pytest.raises(ValueError, match="confidence"):
        odd_rate_lower_bound(np.zeros((3, 2)), confidence=1.0)
    with pytest.raises(ValueError, match="predictor"):
        capacity_bounded(3, 1, MASK)
