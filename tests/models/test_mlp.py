"""ScoreMLP: shapes, the time embedding formula, and use as a traced score_fn in the driver."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from diffserial.models.mlp import ScoreMLP, score_fn_from, sinusoidal_embedding
from diffserial.processes.gaussian import VPLinear
from diffserial.samplers import compiled_programs, continuous_grid, continuous_sampler, sample_continuous

MODEL = ScoreMLP(hidden=32, n_blocks=2, embed_dim=16)
DIM = 3
_init = jax.jit(MODEL.init)


def _params(seed):
    return _init(jax.random.key(seed), jnp.zeros(DIM), 0.5)["params"]


@jax.jit
def _calls(params, x, t):
    """One sample, a batch with per-sample t, vmapped single calls, a batch with scalar t and repeated t."""
    variables = {"params": params}
    apply = MODEL.apply
    return (apply(variables, x[0], t[0]), apply(variables, x, t), jax.vmap(apply, (None, 0, 0))(variables, x, t),
            apply(variables, x, t[0]), apply(variables, x, jnp.full_like(t, t[0])))


def test_single_and_batched_calls_agree():
    x = jax.random.normal(jax.random.key(1), (5, DIM))
    one, batched, vmapped, scalar_t, repeated_t = _calls(_params(0), x, jnp.linspace(0.1, 0.9, 5))
    assert one.shape == (DIM,) and batched.shape == (5, DIM)
    np.testing.assert_allclose(batched, vmapped, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(one, vmapped[0], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(scalar_t, repeated_t, rtol=1e-6)


def test_time_embedding_matches_the_formula():
    t = np.array([0.0, 1e-3, 0.25, 1.0])
    dim, scale, period = 8, 1000.0, 10_000.0
    half = dim // 2
    w = period ** (-np.arange(half) / half)
    expected = np.concatenate([np.sin(scale * t[:, None] * w), np.cos(scale * t[:, None] * w)], axis=1)
    embedding = jax.jit(sinusoidal_embedding, static_argnums=(1, 2, 3))(t, dim, scale, period)
    np.testing.assert_allclose(embedding, expected, rtol=1e-5, atol=1e-5)
    assert w[0] == 1.0 and math.isclose(w[-1], period ** (-(half - 1) / half))
    with pytest.raises(ValueError, match="must be even"):
        sinusoidal_embedding(t, 7)


def test_driver_reuses_the_program_for_new_weights():
    process = VPLinear()
    ts = continuous_grid("uniform", process, 5)
    rule = continuous_sampler("euler_maruyama")
    kw = dict(key=jax.random.key(0), n_seeds=8, shape=(DIM,), block_size=4)
    first = sample_continuous(score_fn_from(MODEL, _params(0)), process, rule, ts, **kw)
    size = compiled_programs()
    second = sample_continuous(score_fn_from(MODEL, _params(1)), process, rule, ts, **kw)
    assert compiled_programs() == size
    assert first.shape == (8, DIM) and np.all(np.isfinite(second))
    assert not np.array_equal(np.asarray(first), np.asarray(second))
