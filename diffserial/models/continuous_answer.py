"""A fixed-depth Transformer as a continuous diffusion model over a quantized answer (the setting of the
serial scaling paper, appendix F.1): the answer tokens a_1..a_La of a prompt x_1..x_Lp are points of R^m, and
the network is the score (here: noise) network f_theta(x, t | x_1..x_Lp) of a Gaussian diffusion on them.

Quantization (`BinaryCode`): token a in {0..V-1} is the codeword c_a in {-1, +1}^m, m = max(1, ceil(log2 V)),

    c_a[j] = 2 bit_j(a) - 1,        bit_j(a) = floor(a / 2^(m - 1 - j)) mod 2   (most significant bit first),

so every coordinate of the data has unit scale (the scale of the VP prior). The region of token a is the
Voronoi cell V_a = {y : ||y - c_a|| <= ||y - c_b|| for all b < V}; since ||c_a||^2 = m for every a,

    decode(y) = argmin_a ||y - c_a||^2 = argmax_a <y, c_a>     (ties to the smallest a),

which for V = 2^m is the sign of each coordinate. An answer of La tokens is a point of R^(La x m).

Network (`ContinuousAnswerTransformer`): the bidirectional pre-LN encoder of `models.transformer` (its
`embed_tokens` and `EncoderBlock`) on the Lp + La positions [prompt, answer]:

    s        = [x_1, ..., x_Lp, MASK, ..., MASK]                  MASK = V marks the La answer slots
    h_0      = E[s] + P[0:Lp+La] + Dense(SiLU(Dense(e(t))))        `transformer.embed_tokens`, time-conditioned
    h_0[Lp+i] += W_in y_t^i + b_in                                y_t^i in R^m: the noisy answer token i
    h        = EncoderBlock^depth(h_0)                              every position sees every other
    eps_theta(y_t, t | x)^i = W_out LN(h[Lp+i]) + b_out             (La, m)

trained with the epsilon parameterisation of denoising score matching (`losses.dsm_objective`):
y_t = m_t c_answer + s_t z, loss = ||eps_theta(y_t, t | x) - z||^2, and sampled with the score
grad log p_t(y | x) = -eps_theta / s_t. Depth is fixed (`depth` blocks) whatever the prompt length.
"""

from __future__ import annotations

import math
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from diffserial.models.transformer import LN_EPS, EncoderBlock, check_tokens, embed_tokens
from diffserial.pytrees import StaticModule, static_dataclass
from diffserial.validation import check_positive_int

Array = jax.Array


@static_dataclass
class BinaryCode:
    """The +-1 binary codebook of V tokens in R^m, m = max(1, ceil(log2 V)), decoded to the nearest codeword
    (see the module docstring). Static: it compiles by value."""

    vocab_size: int

    def __post_init__(self):
        check_positive_int("vocab_size", self.vocab_size)

    @property
    def dim(self) -> int:
        """m = max(1, ceil(log2 V))."""
        return max(1, math.ceil(math.log2(self.vocab_size)))

    def encode(self, tokens: Array) -> Array:
        """c_tokens, float32 (..., m): c_a[j] = 2 bit_j(a) - 1, most significant bit first."""
        tokens = jnp.asarray(tokens)
        if not jnp.issubdtype(tokens.dtype, jnp.integer):
            raise ValueError(f"tokens must be integers, got dtype {tokens.dtype}")
        shifts = jnp.arange(self.dim - 1, -1, -1, dtype=jnp.int32)
        bits = (tokens[..., None].astype(jnp.int32) >> shifts) & 1
        return (2 * bits - 1).astype(jnp.float32)

    def codewords(self) -> Array:
        """(V, m): the codewords c_0, ..., c_{V-1}."""
        return self.encode(jnp.arange(self.vocab_size, dtype=jnp.int32))

    def decode(self, y: Array) -> Array:
        """int32 (...,): the token whose Voronoi cell holds y (..., m), argmax_a <y, c_a> (ties: smallest a)."""
        y = jnp.asarray(y)
        if y.ndim < 1 or y.shape[-1] != self.dim:
            raise ValueError(f"points must have shape (..., {self.dim}); got {y.shape}")
        return jnp.argmax(y @ self.codewords().T, axis=-1).astype(jnp.int32)


class ContinuousAnswerTransformer(nn.Module):
    """(prompt, y_t, t) -> eps_theta (..., La, m); see the module docstring.

    Inputs: prompt (Lp,) or (B, Lp) integer tokens in {0..V-1}; y_t (La, m) or (B, La, m) float, the noisy
    answer; t a scalar or (B,).

    Attributes:
      vocab_size: V (the embedding has V + 1 rows: MASK = V marks the answer slots).
      prompt_len, answer_len: Lp, La.
      code_dim: m, the dimension of one answer token's point.
      width, depth, heads, mlp_ratio: as `transformer.MaskedTransformer` (width even and a multiple of heads).
      time_scale, max_period: see `mlp.sinusoidal_embedding`.
    """

    vocab_size: int
    prompt_len: int
    answer_len: int
    code_dim: int
    width: int = 128
    depth: int = 2
    heads: int = 4
    mlp_ratio: int = 4
    rotary: bool = True  # rotary position embeddings in every block (`transformer.rotary`)
    time_scale: float = 1000.0
    max_period: float = 10_000.0
    time_conditioning = True  # read by transformer.embed_tokens / check_tokens: the score depends on t

    @nn.compact
    def __call__(self, prompt: Array, y: Array, t: Array) -> Array:
        prompt, y = jnp.asarray(prompt), jnp.asarray(y)
        if self.width % self.heads:
            raise ValueError(f"width {self.width} must be a multiple of heads {self.heads}")
        check_tokens(self, prompt, None)
        if prompt.shape[-1] != self.prompt_len:
            raise ValueError(f"prompt must have {self.prompt_len} tokens, got shape {prompt.shape}")
        answer_shape = (self.answer_len, self.code_dim)
        if y.shape != prompt.shape[:-1] + answer_shape or not jnp.issubdtype(y.dtype, jnp.floating):
            raise ValueError(f"y must be a float array of shape {prompt.shape[:-1] + answer_shape} "
                             f"for a prompt of shape {prompt.shape}; got {y.dtype} {y.shape}")
        slots = jnp.full(prompt.shape[:-1] + (self.answer_len,), self.vocab_size, jnp.int32)
        h = embed_tokens(self, jnp.concatenate([prompt.astype(jnp.int32), slots], -1), t,
                         self.prompt_len + self.answer_len)
        answer = h[..., self.prompt_len:, :] + nn.Dense(self.width, name="answer_in")(y)
        h = jnp.concatenate([h[..., :self.prompt_len, :], answer], axis=-2)
        for _ in range(self.depth):
            h = EncoderBlock(self.heads, self.mlp_ratio, self.rotary)(h)
        out = nn.LayerNorm(epsilon=LN_EPS)(h[..., self.prompt_len:, :])
        return nn.Dense(self.code_dim, name="eps")(out)


def _apply(static: StaticModule, params: Any, prompt: Array, y: Array, t: Array) -> Array:
    return static.module.apply({"params": params}, prompt, y, t)


def eps_fn_from(model: nn.Module, params: Any) -> jax.tree_util.Partial:
    """(prompt (Lp,), y (La, m), t) -> eps_theta (La, m) for ONE prompt, as a `Partial` whose leaves are
    `params` (the module is static structure), like `mlp.score_fn_from`: the conditional samplers
    (`samplers.continuous.conditional`) compile once per architecture and reuse the program for new weights."""
    return jax.tree_util.Partial(_apply, StaticModule(model), params)


__all__ = ["BinaryCode", "ContinuousAnswerTransformer", "eps_fn_from"]
