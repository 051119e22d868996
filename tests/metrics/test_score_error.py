"""metrics.score_error against closed forms."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from diffserial.metrics.score_error import score_error


def _gaussian_samples(t, key, n):
    """Draws of N(0, v_t I_2) with v_t = 1 + t."""
    return jnp.sqrt(1.0 + t) * jax.random.normal(key, (n, 2))


def _exact(x, t):
    return -x / (1.0 + t)


def test_constant_offset_gives_its_norm():
    c = jnp.array([0.3, -0.4])
    out = score_error(lambda x, t: _exact(x, t) + c, _exact, _gaussian_samples, [0.1, 0.5, 1.0],
                      jax.random.key(0), 256)
    np.testing.assert_allclose(out["eps_score"], 0.5, rtol=1e-5)
    np.testing.assert_allclose(out["per_time"], [0.25] * 3, rtol=1e-5)


def test_zero_score_matches_closed_form():
    """s_theta = 0: E ||x / v_t||^2 = d / v_t, averaged over the times."""
    ts = np.array([0.2, 0.6, 1.0])
    out = score_error(lambda x, t: jnp.zeros_like(x), _exact, _gaussian_samples, ts, jax.random.key(1), 200_000)
    np.testing.assert_allclose(out["per_time"], 2.0 / (1.0 + ts), rtol=0.02)
    np.testing.assert_allclose(out["eps_score"], np.sqrt(np.mean(2.0 / (1.0 + ts))), rtol=0.01)


def test_bad_inputs():
    with pytest.raises(ValueError, match="ts"):
        score_error(_exact, _exact, _gaussian_samples, [0.0, 0.5], jax.random.key(0), 8)
    with pytest.raises(ValueError, match="n must"):
        score_error(_exact, _exact, _gaussian_samples, [0.5], jax.random.key(0), 0)
