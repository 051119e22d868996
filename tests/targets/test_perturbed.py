"""Score perturbations of prescribed size."""

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from diffserial.processes.gaussian import VPLinear
from diffserial.targets.gmm import GaussianMixture, score_fn
from diffserial.targets.perturbed import perturbation_fn, perturbed_score_fn


def _zero_score(x, t):
    return jnp.zeros_like(x)


def _points(dim, seed, scale=10.0):
    """(64, dim) test points; one shape per dim so that `_evaluate` compiles once per dim and mode."""
    return scale * jax.random.normal(jax.random.key(seed), (64, dim))


@functools.partial(jax.jit, static_argnames="with_jacobian")
def _evaluate(f, x, t, with_jacobian=False):
    """f over a batch x (n, d) at time t, and optionally its Jacobians (n, d, d)."""
    values = jax.vmap(f, in_axes=(0, None))(x, t)
    if not with_jacobian:
        return values
    return values, jax.vmap(jax.jacfwd(f), in_axes=(0, None))(x, t)


@pytest.mark.parametrize("dim", [2, 3, 16])
def test_norm_is_eps_everywhere_and_jacobian_norm_is_eps_times_frequency(dim):
    eps, frequency = 0.37, 2.5
    x = _points(dim, seed=dim)
    delta = perturbation_fn(eps, dim, seed=dim, frequency=frequency)
    for t in (1e-3, 0.5, 1.0):
        values, jac = (np.asarray(v, dtype=np.float64) for v in _evaluate(delta, x, t, with_jacobian=True))
        np.testing.assert_allclose(np.linalg.norm(values, axis=1), eps, rtol=1e-6)
        # delta is smooth: its Jacobian eps (-sin(.) a + cos(.) b) w^T has spectral norm eps |w| exactly.
        assert np.all(np.isfinite(jac))
        np.testing.assert_allclose(np.linalg.norm(jac, ord=2, axis=(1, 2)), eps * frequency, rtol=1e-5)
    # not a constant vector field: directions vary with x
    assert np.ptp(np.asarray(values), axis=0).max() > 0.1 * eps


def test_one_dimensional_mean_square_over_a_period_is_eps_squared():
    eps, frequency = 0.2, 3.0
    delta = perturbation_fn(eps, 1, seed=4, frequency=frequency)
    period = 2 * math.pi / frequency
    x = jnp.linspace(0.0, 7 * period, 7 * 1000, endpoint=False)[:, None]
    values = np.asarray(_evaluate(delta, x, 0.3), dtype=np.float64)[:, 0]
    assert abs(np.mean(values**2) - eps**2) < 1e-4 * eps**2
    assert abs(np.max(np.abs(values)) - math.sqrt(2) * eps) < 1e-3 * eps


def test_perturbed_score_adds_delta_to_a_jitted_mixture_score():
    gmm = GaussianMixture.create([0.5, 0.5], [[-1.0, 0.0], [1.0, 1.0]], variances=[[1.0, 0.5], [0.3, 1.0]])
    exact = score_fn(gmm, VPLinear())
    perturbed = perturbed_score_fn(exact, 0.05, 2, seed=1)
    # leaves: the mixture's 3 arrays, then eps, w, phi, a, b -- all traced, nothing baked in
    assert len(jax.tree_util.tree_leaves(perturbed)) == 8
    x = _points(2, seed=0, scale=1.0)
    for t in (0.01, 0.5):
        diff = np.asarray(_evaluate(perturbed, x, t)) - np.asarray(_evaluate(exact, x, t))
        np.testing.assert_allclose(np.linalg.norm(diff, axis=1), 0.05, rtol=1e-4)
        np.testing.assert_allclose(diff, _evaluate(perturbation_fn(0.05, 2, seed=1), x, t), atol=1e-6)


def test_zero_eps_gives_exact_score_and_plain_callables_are_accepted():
    x = _points(3, seed=1)
    values, jac = _evaluate(perturbed_score_fn(_zero_score, 0.0, 3, seed=5), x, 0.2, with_jacobian=True)
    assert np.all(np.asarray(values) == 0.0) and np.all(np.asarray(jac) == 0.0)


def test_deterministic_in_seed():
    x = _points(2, seed=2)
    a1, a2, b = (np.asarray(_evaluate(perturbation_fn(0.1, 2, seed=s), x, 0.5)) for s in (7, 7, 8))
    np.testing.assert_array_equal(a1, a2)
    assert not np.allclose(a1, b)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(eps_score=-0.1, dim=2), r"eps_score must be finite and >= 0; got -0\.1"),
        (dict(eps_score=float("nan"), dim=2), r"eps_score must be finite and >= 0; got nan"),
        (dict(eps_score=float("inf"), dim=2), r"eps_score must be finite and >= 0; got inf"),
        (dict(eps_score="big", dim=2), r"eps_score must be a real number; got 'big'"),
        (dict(eps_score=0.1, dim=0), r"dim must be an int >= 1; got 0"),
        (dict(eps_score=0.1, dim=2.0), r"dim must be an int >= 1; got 2\.0"),
        (dict(eps_score=0.1, dim=2, seed=1.5), r"seed must be an int; got 1\.5"),
        (dict(eps_score=0.1, dim=2, frequency=-1.0), r"frequency must be finite and >= 0; got -1\.0"),
    ],
)
def test_bad_inputs_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        perturbed_score_fn(_zero_score, **kwargs)
