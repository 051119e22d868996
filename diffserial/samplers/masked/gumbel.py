"""Categorical draws of the masked family: Gumbel-max with a 46-bit uniform, and random words.

    sample_categorical(key, logits) = argmax(logits + G),  G = -log(-log1p(-v)),
    v = (b1 + (b2 + 1/2) 2^-23) 2^-23 from two 23-bit words b1, b2   (`gumbel46`)

A step draws all its randomness in ONE `jax.random.bits` call (`random_words`) and turns words into
Gumbels (`gumbel_from_words`) and uniforms (`uniform_from_words`).
"""

from __future__ import annotations

import math
from typing import Sequence

import jax
import jax.numpy as jnp

Array = jax.Array

_TWO_M23 = 2.0**-23
_ONE_MINUS_ULP = 1.0 - 2.0**-24  # largest float32 below 1


def v_from_bits(b1: Array, b2: Array) -> Array:
    """v = (b1 + (b2 + 1/2) 2^-23) 2^-23 in (0, 1) from two 23-bit integers: a uniform with 46 bits of
    resolution near 0 (smallest value 2^-47), computed in float32 (whose relative precision near 0 keeps
    every bit that matters)."""
    v = (b1.astype(jnp.float32) + (b2.astype(jnp.float32) + 0.5) * _TWO_M23) * _TWO_M23
    return jnp.minimum(v, _ONE_MINUS_ULP)


def gumbel_from_v(v: Array) -> Array:
    """G = -log(-log(1 - v)) = -log(-log1p(-v)): the upper tail of G is resolved by v near 0."""
    return -jnp.log(-jnp.log1p(-v))


def gumbel46(key: Array, shape: Sequence[int]) -> Array:
    """Standard Gumbel noise (float32) whose upper tail reaches 47 ln 2 ~ 32.6 instead of ~16.6.

    A float32 uniform u has 24 bits, so G = -log(-log u) <= -log(-log(1 - 2^-24)) ~ 16.6: every event of
    probability < ~6e-8 per draw is cut, which biases Gumbel-max against rare tokens over a large
    vocabulary and long sequences (the float32 Gumbel issue of Zheng et al. 2024, arXiv 2409.02908, fixed
    in MDLM/ReMDM by float64 noise). Here v = 1 - u is built from two 23-bit draws b1, b2:
    v = (b1 + (b2 + 1/2) 2^-23) 2^-23, so P(v < x) = x down to x ~ 2^-46, and G = -log(-log1p(-v)).
    The lower tail is capped at v <= 1 - 2^-24 (G >= -2.8, an event of probability 6e-8), as with float32.
    """
    return gumbel_from_words(jax.random.bits(key, (2,) + tuple(shape), jnp.uint32))


def gumbel_from_words(words: Array) -> Array:
    """`gumbel46` from random uint32 words of shape (2, *shape) (the top 23 bits of each are used)."""
    return gumbel_from_v(v_from_bits(words[0] >> 9, words[1] >> 9))


def uniform_from_words(words: Array) -> Array:
    """U[0, 1) float32 with 24 bits from random uint32 words (as jax.random.uniform)."""
    return (words >> 8).astype(jnp.float32) * jnp.float32(2.0**-24)


def random_words(key: Array, *shapes: Sequence[int]) -> list[Array]:
    """Random uint32 arrays of the given shapes from ONE `jax.random.bits` call: a step draws all its
    randomness at once (each threefry call costs XLA compile time on CPU)."""
    sizes = [math.prod(shape) for shape in shapes]
    flat = jax.random.bits(key, (sum(sizes),), jnp.uint32)
    out, offset = [], 0
    for shape, size in zip(shapes, sizes):
        out.append(flat[offset:offset + size].reshape(tuple(shape)))
        offset += size
    return out


def sample_categorical(key: Array, logits: Array) -> Array:
    """One draw per row of softmax(logits) (last axis) by Gumbel-max with `gumbel46`: argmax(logits + G).

    logits: (..., V) float, unnormalised log-probabilities; entries of -1e9 (`LOG_ZERO`) are never drawn
    while any row entry is finite and > -1e9 + 33. Returns int32 of shape logits.shape[:-1].
    """
    logits = jnp.asarray(logits, jnp.float32)
    return jnp.argmax(logits + gumbel46(key, logits.shape), axis=-1).astype(jnp.int32)


__all__ = ["gumbel46", "gumbel_from_v", "gumbel_from_words", "random_words", "sample_categorical",
           "uniform_from_words", "v_from_bits"]
