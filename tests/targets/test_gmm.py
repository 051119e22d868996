"""Gaussian mixture targets: exact scores, densities and samplers against independent references."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats
from scipy.special import logsumexp

from diffserial.processes.gaussian import PROCESSES, SubVP, VEGeometric, VPCosine, VPLinear
from diffserial.targets.gmm import (
    GaussianMixture,
    log_density,
    log_density_fn,
    noised,
    sample,
    sample_at,
    score_fn,
)

TIMES = (1e-3, 0.1, 0.5, 1.0)

PARAMS_2D = dict(
    weights=[0.2, 0.5, 0.3],
    means=[[-2.0, 1.0], [1.5, 0.5], [0.0, -2.5]],
    covs=[[[1.0, 0.6], [0.6, 0.8]], [[0.3, -0.1], [-0.1, 0.5]], [[2.0, 0.0], [0.0, 0.2]]],
)
PARAMS_1D = dict(weights=[0.4, 0.6], means=[[-1.5], [2.0]], covs=[[[0.25]], [[1.5]]])
PARAMS_DIAG = dict(weights=[0.7, 0.3], means=[[1.0, -1.0], [-2.0, 3.0]], variances=[[0.5, 2.0], [1.0, 0.1]])
PARAMS = {"2d_full": PARAMS_2D, "1d": PARAMS_1D, "2d_diag": PARAMS_DIAG}


def _numpy_covs(params):
    if "covs" in params:
        return np.asarray(params["covs"], dtype=np.float64)
    return np.asarray(params["variances"], dtype=np.float64)[:, :, None] * np.eye(len(params["means"][0]))


def _scipy_component_logs(params, x, m, s):
    """(K, n) log w_k + log N(x; m mu_k, m^2 Sigma_k + s^2 I), computed with scipy only."""
    w = np.asarray(params["weights"], dtype=np.float64)
    mu = np.asarray(params["means"], dtype=np.float64)
    eye = np.eye(mu.shape[1])
    return np.stack([
        np.log(w_k) + stats.multivariate_normal(m * mu_k, m**2 * c_k + s**2 * eye).logpdf(x).reshape(-1)
        for w_k, mu_k, c_k in zip(w, mu, _numpy_covs(params))
    ])


def _scipy_log_density(params, x, m=1.0, s=0.0):
    """log p_t(x) of the mixture pushed through x_t = m x_0 + s z."""
    return logsumexp(_scipy_component_logs(params, x, m, s), axis=0)


def _numpy_score(params, x, m, s):
    """grad log p_t(x) = -sum_k r_k(x) C_k^{-1} (x - m mu_k) with numpy solves and scipy responsibilities."""
    logs = _scipy_component_logs(params, x, m, s)
    resp = np.exp(logs - logsumexp(logs, axis=0))  # (K, n)
    mu = np.asarray(params["means"], dtype=np.float64)
    eye = np.eye(mu.shape[1])
    prec_diffs = np.stack([np.linalg.solve(m**2 * c + s**2 * eye, (x - m * mu_k).T).T for mu_k, c in zip(mu, _numpy_covs(params))])
    return -np.einsum("kn,knd->nd", resp, prec_diffs)


def _test_points(params):
    """Points near each mean, between pairs of means (mixed responsibilities) and far away."""
    mu = np.asarray(params["means"], dtype=np.float64)
    rng = np.random.default_rng(0)
    between = [0.5 * (mu[i] + mu[j]) for i in range(len(mu)) for j in range(i + 1, len(mu))]
    near = mu + 0.3 * rng.standard_normal(mu.shape)
    far = 6.0 * rng.standard_normal((2, mu.shape[1]))
    return np.concatenate([near, np.stack(between), far])


# Module-level jitted helpers (the process is static): tests of equal shapes, dtypes and process
# share a compilation, which dominates the run time of this file.
def _over_x_and_t(f):
    return jax.vmap(jax.vmap(f, in_axes=(0, None)), in_axes=(None, 0))


@functools.partial(jax.jit, static_argnames="process")
def _noised_quantities(gmm, process, x, ts):
    """(score_fn, jax.grad of log_density_fn, log_density_fn) at x (n, d) and ts (T,): shapes (T, n, ...)."""
    f, log_p = score_fn(gmm, process), log_density_fn(gmm, process)
    return _over_x_and_t(f)(x, ts), _over_x_and_t(jax.grad(log_p))(x, ts), _over_x_and_t(log_p)(x, ts)


def _quantities_f64(params, process):
    with jax.enable_x64(True):
        gmm = GaussianMixture.create(**params)
        ts = jnp.asarray(TIMES, dtype=jnp.float64)
        out = tuple(np.asarray(v) for v in _noised_quantities(gmm, process, jnp.asarray(_test_points(params)), ts))
        marginals = [tuple(float(v) for v in process.marginal(t)) for t in ts]
    assert all(v.dtype == np.float64 for v in out)
    return out, marginals


@pytest.mark.parametrize("process_cls", list(PROCESSES.values()), ids=list(PROCESSES))
@pytest.mark.parametrize("name", ["2d_full", "1d"])
def test_noised_score_and_log_density(process_cls, name):
    """score_fn == jax.grad(log_density_fn) and log_density_fn == scipy density of m_t x_0 + s_t z."""
    params = PARAMS[name]
    x = _test_points(params)
    (exact, autodiff, log_p), marginals = _quantities_f64(params, process_cls())
    assert exact.shape == (len(TIMES),) + x.shape
    for t, want_grad, got, got_log_p, (m, s) in zip(TIMES, autodiff, exact, log_p, marginals):
        # Requested tolerance 1e-5; in float64 the two computations agree far better, so demand 1e-9.
        np.testing.assert_allclose(got, want_grad, rtol=1e-9, atol=1e-9 * np.abs(want_grad).max(), err_msg=f"t={t}")
        np.testing.assert_allclose(got_log_p, _scipy_log_density(params, x, m, s), rtol=1e-10, err_msg=f"t={t}")


def test_score_matches_numpy_closed_form_and_finite_differences():
    """Independent references for the score of p_t: numpy solves, and central differences of scipy's log p_t."""
    h = 1e-5
    x = _test_points(PARAMS_2D)
    (exact, _, _), marginals = _quantities_f64(PARAMS_2D, VPLinear())  # compiled by the test above
    for t, got, (m, s) in zip(TIMES, exact, marginals):
        np.testing.assert_allclose(got, _numpy_score(PARAMS_2D, x, m, s), rtol=1e-9, atol=1e-12, err_msg=f"t={t}")
        fd = np.stack(
            [(_scipy_log_density(PARAMS_2D, x + h * e, m, s) - _scipy_log_density(PARAMS_2D, x - h * e, m, s)) / (2 * h) for e in np.eye(2)],
            axis=1,
        )
        np.testing.assert_allclose(got, fd, rtol=1e-5, atol=1e-6 * np.abs(got).max(), err_msg=f"t={t}")


@pytest.mark.parametrize("name", ["2d_full", "1d", "2d_diag"])
def test_log_density_matches_scipy_mixture(name):
    with jax.enable_x64(True):
        gmm = GaussianMixture.create(**PARAMS[name])
        x = _test_points(PARAMS[name])
        got = np.asarray(_log_density_batch(gmm, jnp.asarray(x)))
    np.testing.assert_allclose(got, _scipy_log_density(PARAMS[name], x), rtol=1e-11)


_log_density_batch = jax.jit(jax.vmap(log_density, in_axes=(None, 0)))


@functools.partial(jax.jit, static_argnames="process")
def _score_batch(gmm, process, x, t):
    return jax.vmap(score_fn(gmm, process), in_axes=(0, None))(x, t)


def test_float32_score_matches_float64_reference():
    # VE spans the widest range of noise scales (s_t from ~1e-3 to 50 over TIMES).
    # Tolerance 1e-4 relative: float32 solves with covariances of condition number <~ 1e2 (at small
    # t) lose ~1e2 * 6e-8 relative accuracy; responsibilities add a few ulps of exp/logsumexp.
    process = VEGeometric()
    x = _test_points(PARAMS_2D)
    gmm = GaussianMixture.create(**PARAMS_2D)
    for t in TIMES:
        m, s = (float(v) for v in process.marginal(t))
        want = _numpy_score(PARAMS_2D, x, m, s)
        got = np.asarray(_score_batch(gmm, process, jnp.asarray(x, jnp.float32), jnp.float32(t)))
        assert got.dtype == np.float32
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * np.abs(want).max(), err_msg=f"t={t}")


def test_score_fn_is_a_pytree_cached_by_jit():
    """Two mixtures of equal structure share one compilation, and each gets its own (closed-form) score."""
    traces = []

    @jax.jit
    def apply(f, x, t):
        traces.append(None)
        return f(x, t)

    process, t = SubVP(), 0.4
    m, s = (float(v) for v in process.marginal(t))
    x = np.array([0.3, -0.2])
    cov = np.array([[1.0, 0.6], [0.6, 0.8]])
    for mean in ([0.0, 0.0], [1.0, -2.0]):
        f = score_fn(GaussianMixture.create([1.0], [mean], [cov]), process)
        assert len(jax.tree_util.tree_leaves(f)) == 3  # weights, means, covs; the process is static
        want = -np.linalg.solve(m**2 * cov + s**2 * np.eye(2), x - m * np.asarray(mean))
        np.testing.assert_allclose(apply(f, jnp.asarray(x, jnp.float32), jnp.float32(t)), want, rtol=1e-5)
    assert len(traces) == 1


def _mixture_moments(params, m, s):
    """Mean and covariance of m x_0 + s z for x_0 ~ mixture (law of total covariance)."""
    w = np.asarray(params["weights"], dtype=np.float64)
    mu = np.asarray(params["means"], dtype=np.float64)
    mean0 = w @ mu
    cov0 = np.einsum("k,kij->ij", w, _numpy_covs(params) + np.einsum("ki,kj->kij", mu, mu)) - np.outer(mean0, mean0)
    return m * mean0, m**2 * cov0 + s**2 * np.eye(mu.shape[1])


def _assert_moments(x, mean, cov, n_sigma=5.0):
    n = x.shape[0]
    emp_mean = x.mean(axis=0)
    centered = x - emp_mean
    products = np.einsum("ni,nj->nij", centered, centered)
    emp_cov = products.mean(axis=0)
    mean_se = np.sqrt(np.diag(cov) / n)
    cov_se = products.std(axis=0) / np.sqrt(n)
    assert np.all(np.abs(emp_mean - mean) < n_sigma * mean_se), (emp_mean, mean, mean_se)
    assert np.all(np.abs(emp_cov - cov) < n_sigma * cov_se), (emp_cov, cov, cov_se)


# Sampling runs eagerly: jax caches each primitive by shape, so cases of equal shapes compile once.
N_SAMPLES = 200_000


@pytest.mark.parametrize(
    "process, t, name",
    [(VPLinear(), 0.3, "2d_full"), (VEGeometric(), 0.2, "2d_full"), (VPCosine(), 0.05, "2d_full"), (SubVP(), 0.7, "2d_diag")],
)
def test_sample_at_moments(process, t, name):
    gmm = GaussianMixture.create(**PARAMS[name])
    x = np.asarray(sample_at(gmm, process, t, jax.random.key(3), N_SAMPLES), dtype=np.float64)
    assert x.shape == (N_SAMPLES, gmm.dim)
    m, s = (float(v) for v in process.marginal(t))
    _assert_moments(x, *_mixture_moments(PARAMS[name], m, s))


def test_sample_moments_and_component_frequencies():
    x = np.asarray(sample(GaussianMixture.create(**PARAMS_2D), jax.random.key(7), N_SAMPLES), dtype=np.float64)
    _assert_moments(x, *_mixture_moments(PARAMS_2D, 1.0, 0.0))
    # separated 1-D mixture: the fraction below 0 estimates the first weight
    sep = GaussianMixture.create([0.2, 0.8], [[-10.0, 0.0], [10.0, 0.0]], variances=[[1.0, 1.0], [1.0, 1.0]])
    frac = float(np.mean(np.asarray(sample(sep, jax.random.key(8), N_SAMPLES))[:, 0] < 0))
    assert abs(frac - 0.2) < 5 * np.sqrt(0.2 * 0.8 / N_SAMPLES)


def test_noised_at_zero_is_data_law_and_keeps_diagonal_flag():
    gmm = GaussianMixture.create(**PARAMS_DIAG)
    p0 = noised(gmm, VPLinear(), 0.0)
    np.testing.assert_allclose(p0.covs, gmm.covs, atol=1e-7)
    np.testing.assert_allclose(p0.means, gmm.means)
    assert p0.is_diagonal and not noised(GaussianMixture.create(**PARAMS_2D), VPLinear(), 0.5).is_diagonal


def test_create_normalises_weights_and_sets_flags():
    gmm = GaussianMixture.create([0.3, 0.7 + 5e-7], [[0.0], [1.0]], variances=[[1.0], [2.0]])
    assert abs(float(gmm.weights.sum()) - 1.0) < 1e-7
    assert gmm.is_diagonal and gmm.n_components == 2 and gmm.dim == 1
    np.testing.assert_allclose(gmm.covs[:, 0, 0], [1.0, 2.0])
    assert GaussianMixture.create(weights=[1.0], means=[[0.0, 0.0]], covs=[np.eye(2)]).is_diagonal
    assert not GaussianMixture.create(**PARAMS_2D).is_diagonal


EYE = [[[1.0, 0.0], [0.0, 1.0]]]


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(weights=[0.5, 0.6], means=[[0.0], [1.0]], variances=[[1.0], [1.0]]), r"weights must sum to 1.*1\.1"),
        (dict(weights=[-0.5, 1.5], means=[[0.0], [1.0]], variances=[[1.0], [1.0]]), r"weights must all be > 0.*-0\.5"),
        (dict(weights=[np.nan, 1.0], means=[[0.0], [1.0]], variances=[[1.0], [1.0]]), r"weights must be finite.*nan"),
        (dict(weights=[1.0], means=[[0.0, np.nan]], covs=EYE), r"means must be finite"),
        (dict(weights=[0.5, 0.5], means=[[0.0, 0.0]], covs=EYE), r"weights must have shape \(K,\) = \(1,\)"),
        (dict(weights=[1.0], means=[0.0, 0.0], covs=EYE), r"means must be a 2-D array.*\(2,\)"),
        (dict(weights=[1.0], means=[[0.0, 0.0]]), r"exactly one of covs"),
        (dict(weights=[1.0], means=[[0.0, 0.0]], covs=EYE, variances=[[1.0, 1.0]]), r"exactly one of covs"),
        (dict(weights=[1.0], means=[[0.0, 0.0]], covs=[[[1.0, 0.5], [0.0, 1.0]]]), r"covs\[0\] must be symmetric"),
        (dict(weights=[1.0], means=[[0.0, 0.0]], covs=[[[1.0, 2.0], [2.0, 1.0]]]), r"covs\[0\] must be positive definite.*-1"),
        (dict(weights=[1.0], means=[[0.0, 0.0]], covs=[np.eye(3)]), r"covs must have shape \(K, d, d\) = \(1, 2, 2\)"),
        (dict(weights=[1.0], means=[[0.0, 0.0]], covs=[[[np.inf, 0.0], [0.0, 1.0]]]), r"covs must be finite"),
        (dict(weights=[1.0], means=[[0.0, 0.0]], variances=[[1.0, 0.0]]), r"variances must all be > 0"),
        (dict(weights=[1.0], means=[[0.0, 0.0]], variances=[1.0, 1.0]), r"variances must be a 2-D array"),
    ],
)
def test_create_rejects_bad_inputs(kwargs, match):
    with pytest.raises(ValueError, match=match):
        GaussianMixture.create(**kwargs)


def test_make_mixture_is_deterministic_and_diagonal():
    from diffserial.targets.gmm import make_mixture

    a, b = make_mixture(3, 4, seed=7), make_mixture(3, 4, seed=7)
    np.testing.assert_array_equal(np.asarray(a.means), np.asarray(b.means))
    np.testing.assert_array_equal(np.asarray(a.covs), np.asarray(b.covs))
    assert a.is_diagonal and a.dim == 3 and np.asarray(a.weights).shape == (4,)
    assert np.isclose(float(np.asarray(a.weights).sum()), 1.0)
    sd = np.sqrt(np.diagonal(np.asarray(a.covs), axis1=1, axis2=2))
    assert np.all((sd >= 0.3) & (sd <= 0.7))
    assert not np.array_equal(np.asarray(make_mixture(3, 4, seed=8).means), np.asarray(a.means))
