"""46-bit Gumbel and categorical draws (`diffserial.samplers.masked.gumbel`)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from diffserial.samplers.masked import gumbel
from diffserial.targets.discrete import LOG_ZERO


def _binomial_ok(k, n, p, z=5.0):
    return abs(k - n * p) <= z * np.sqrt(n * p * (1 - p)) + 1e-9


def test_sample_categorical_frequencies_and_zero_probability():
    probs = np.array([0.5, 0.25, 0.15, 0.1, 0.0])
    logits = jnp.asarray(np.where(probs > 0, np.log(np.maximum(probs, 1e-300)), LOG_ZERO), jnp.float32)
    n = 200_000
    draws = np.asarray(gumbel.sample_categorical(jax.random.key(0), jnp.broadcast_to(logits, (n, 5))))
    counts = np.bincount(draws, minlength=5)
    assert counts[4] == 0
    for c, p in zip(counts[:4], probs[:4]):
        assert _binomial_ok(c, n, p), (counts, probs * n)
    chi2 = ((counts[:4] - n * probs[:4]) ** 2 / (n * probs[:4])).sum()
    assert stats.chi2.sf(chi2, 3) > 1e-6


def test_gumbel46_law_and_tail():
    g = np.asarray(gumbel.gumbel46(jax.random.key(1), (100_000,)), np.float64)
    assert stats.kstest(g, stats.gumbel_r.cdf).pvalue > 1e-4
    # resolution near v = 0: the largest values are ~ -log(v) up to 47 ln 2, not float32's ~16.6
    top = float(gumbel.gumbel_from_v(gumbel.v_from_bits(jnp.uint32(0), jnp.uint32(0))))
    assert top == pytest.approx(47 * np.log(2), rel=1e-4)
    v = gumbel.v_from_bits(jnp.zeros(3, jnp.uint32), jnp.array([1, 100, 2**22], jnp.uint32))
    np.testing.assert_allclose(v, (np.array([1, 100, 2**22]) + 0.5) * 2.0**-46, rtol=1e-6)
    assert float(gumbel.gumbel_from_v(gumbel.v_from_bits(jnp.uint32(2**23 - 1), jnp.uint32(2**23 - 1)))) > -3.0
