"""A residual MLP score (or noise-prediction) network for R^d targets, in `flax.linen`.

    e(t)  = sinusoidal_embedding(t)                                  (embed_dim,)
    c     = Dense(SiLU(Dense(e(t))))                                 (hidden,)   time conditioning
    h     = Dense(x)                                                 (hidden,)   input projection
    h    <- h + Dense(SiLU(Dense(LayerNorm(h)) + Dense_b(c)))        n_blocks residual blocks
    out   = Dense(h)                                                 (d,)

The time embedding is the Transformer one (Vaswani et al. 2017, sec. 3.5) applied to a rescaled time
tau = time_scale * t (t in [0, 1]; time_scale = 1000 matches DDPM's integer step index):

    e(t)_k        = sin(tau w_k),   e(t)_{half+k} = cos(tau w_k),   k = 0, ..., half - 1,
    w_k           = max_period^(-k / half),   half = embed_dim / 2,

log-spaced frequencies from 1 down to max_period^(-(half-1)/half). The network's output is whatever it
was trained to predict (the score, or the noise eps with score = -eps / s(t)); `score_fn_from`
hands it to the sampler as is.
"""

from __future__ import annotations

import math
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from diffserial.pytrees import StaticModule

Array = jax.Array


def sinusoidal_embedding(t: Array, dim: int, time_scale: float = 1000.0, max_period: float = 10_000.0) -> Array:
    """Transformer-style embedding (..., dim) of times t (...,); see the module docstring."""
    if dim % 2:
        raise ValueError(f"embedding dimension must be even, got {dim}")
    half = dim // 2
    freqs = jnp.exp(-math.log(max_period) * jnp.arange(half, dtype=jnp.float32) / half)
    angles = time_scale * jnp.asarray(t, jnp.float32)[..., None] * freqs
    return jnp.concatenate([jnp.sin(angles), jnp.cos(angles)], axis=-1)


class ResidualBlock(nn.Module):
    """h + Dense(SiLU(Dense(LayerNorm(h)) + Dense(c))), c the time conditioning."""

    hidden: int

    @nn.compact
    def __call__(self, h: Array, c: Array) -> Array:
        u = nn.Dense(self.hidden)(nn.LayerNorm()(h)) + nn.Dense(self.hidden)(c)
        return h + nn.Dense(self.hidden)(nn.silu(u))


class ScoreMLP(nn.Module):
    """(x, t) -> output of x's shape; x (d,) with scalar t, or (B, d) with t scalar or (B,).

    Attributes:
      hidden: width of the residual stream and of the time conditioning.
      n_blocks: number of residual blocks.
      embed_dim: dimension of the sinusoidal time embedding (even).
      time_scale, max_period: see `sinusoidal_embedding`.
    """

    hidden: int = 128
    n_blocks: int = 2
    embed_dim: int = 64
    time_scale: float = 1000.0
    max_period: float = 10_000.0

    @nn.compact
    def __call__(self, x: Array, t: Array) -> Array:
        t = jnp.broadcast_to(jnp.asarray(t, jnp.float32), x.shape[:-1])
        e = sinusoidal_embedding(t, self.embed_dim, self.time_scale, self.max_period)
        c = nn.Dense(self.hidden)(nn.silu(nn.Dense(self.hidden)(e)))
        h = nn.Dense(self.hidden)(x)
        for _ in range(self.n_blocks):
            h = ResidualBlock(self.hidden)(h, c)
        return nn.Dense(x.shape[-1])(h)


def _apply(static: StaticModule, params: Any, x: Array, t: Array) -> Array:
    return static.module.apply({"params": params}, x, t)


def score_fn_from(model: nn.Module, params: Any) -> jax.tree_util.Partial:
    """(x, t) -> model(x, t) as a `Partial` whose leaves are `params` (the "params" collection).

    The module is static structure (compared by its configuration) and the parameters are traced, so
    the sampling driver compiles once per architecture and reuses the program for new weights.
    """
    return jax.tree_util.Partial(_apply, StaticModule(model), params)
