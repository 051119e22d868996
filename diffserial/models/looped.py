"""A looped (weight-tied) Transformer for masked-token prediction: serial depth is a knob, parameters are not.

Same interface as `transformer.MaskedTransformer`: tokens x in {0, ..., V} of shape (L,) or (B, L),
L <= max_len, MASK = V; optionally a time t (scalar or (B,)); output logits (L, V) or (B, L, V) of
p(x_0^i = . | x_t) over the V real tokens. The embeddings and the output head are MaskedTransformer's;
the `depth` distinct blocks are replaced by ONE `transformer.EncoderBlock` B_theta applied `loops` times
with the same parameters theta:

    e        = E[x] + P[0:L]                                 E: (V + 1, D) token table, P: (max_len, D) learned
    e       <- e + Dense(SiLU(Dense(emb(t))))                only with time_conditioning (`mlp.sinusoidal_embedding`)
    with input injection (default):      h_0 = 0,  h_k = B_theta(h_{k-1} + e)        k = 1, ..., loops
    without:                             h_0 = e,  h_k = B_theta(h_{k-1})             k = 1, ..., loops
    logits   = Dense_V(LN(h_loops))                          (L, V)

Input injection re-adds the input embedding before every pass (Giannou et al. 2023, "Looped Transformers
as Programmable Computers"; Yang et al. 2024, "Looped Transformers are Better at Learning Learning
Algorithms", which start from h_0 = 0 as here; Saunshi et al. 2025, "Reasoning with Latent Thoughts").
Either way h_1 = B_theta(e), so loops = 1 is a depth-1 MaskedTransformer. The serial depth is `loops`
blocks while the parameter count does not depend on `loops`; the loop is one `flax.linen.scan` (a
`lax.scan` with the block's parameters broadcast), so compile time does not grow with `loops` either.
Every block attends over all positions, so after one pass every output depends on every input token.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from diffserial.models.transformer import EncoderBlock, check_tokens, embed_tokens, token_logits
from diffserial.validation import check_positive_int

Array = jax.Array


def _tied_block_step(block: EncoderBlock, h: Array, injected: Array) -> tuple[Array, None]:
    """One pass of the shared block: h <- B_theta(h + injected) (injected = e, or 0 without injection)."""
    return block(h + injected), None


class LoopedTransformer(nn.Module):
    """(x, t) -> logits (..., L, V) for tokens x (L,) or (B, L) in {0, ..., V} (V = MASK), with one
    encoder block applied `loops` times; see the module docstring.

    Attributes:
      vocab_size: V, the number of real tokens; the embedding has V + 1 rows (MASK = V included) and the
        output V logits.
      max_len: longest sequence (rows of the learned positional embedding); any L <= max_len works.
      width: D, the residual stream width (a multiple of heads; even with time_conditioning).
      loops: number of passes through the shared block (>= 1): the serial depth.
      heads: H, attention heads (head size D / H).
      mlp_ratio: hidden width of the block MLP over D.
      rotary: rotary position embeddings on q and k (`transformer.rotary`; on by default, see there).
      input_injection: add the input embedding e before every pass (h_0 = 0); otherwise h_0 = e.
      time_conditioning: add Dense(SiLU(Dense(emb(t)))) to the input embedding; otherwise t is ignored.
      time_scale, max_period: see `mlp.sinusoidal_embedding`.
    """

    vocab_size: int
    max_len: int
    width: int = 128
    loops: int = 2
    heads: int = 4
    mlp_ratio: int = 4
    rotary: bool = True
    input_injection: bool = True
    time_conditioning: bool = False
    time_scale: float = 1000.0
    max_period: float = 10_000.0

    @nn.compact
    def __call__(self, x: Array, t: Array | None = None) -> Array:
        x = jnp.asarray(x)
        check_positive_int("loops", self.loops)
        if self.width % self.heads:
            raise ValueError(f"width {self.width} must be a multiple of heads {self.heads}")
        check_tokens(self, x, self.max_len)
        e = embed_tokens(self, x, t, self.max_len)
        if self.input_injection:
            h, injected = jnp.zeros_like(e), e
        else:
            h, injected = e, jnp.zeros_like(e)
        loop = nn.scan(_tied_block_step, variable_broadcast="params", split_rngs={"params": False},
                       in_axes=nn.broadcast, length=self.loops)
        h, _ = loop(EncoderBlock(self.heads, self.mlp_ratio, self.rotary, name="block"), h, injected)
        return token_logits(self, h)


__all__ = ["LoopedTransformer"]
