"""The reveal-by-score family of masked rules: exactly k_t masked positions revealed per step.

Reveal-by-score family: reveal exactly k_t masked positions, chosen by a score (fixed shapes: a stable
argsort with non-candidates at -inf and random tie-breaking), filled with the candidate tokens.

    first_hitting    k_t = 1, uniformly random position (Zheng et al. 2024, one first-hitting event per step)
    topk_confidence  k_t = #masked(t) - round(n_gen m_s); score = probability of the sampled token (LLaDA,
                     Nie et al. 2025, "low_confidence" remasking)
    topk_margin      same count; score = top1 - top2 probability (Kim et al. 2025, "margin")
    topk_entropy     same count; score = -entropy of x_theta (Ben-Hamu et al. 2025 / Dream "entropy")
    topk_random      same count; random positions (LLaDA "random" remasking)
    maskgit          #masked after the step = floor(n_gen cos(pi/2 (1 - s))); score = log p(token) +
                     temperature s Gumbel (Chang et al. 2022, MaskGIT, Sec. 3.2)
    semi_ar          consecutive blocks of block_len generated positions; time divided equally among
                     blocks; topk_confidence inside the current block (LLaDA semi-autoregressive remasking)
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from diffserial.samplers.masked.gumbel import gumbel_from_words, random_words, uniform_from_words
from diffserial.samplers.masked.state import MaskedRule, draw_tokens, predict_logp, select_top
from diffserial.validation import check_positive_int, check_real

Array = jax.Array


@dataclasses.dataclass(frozen=True, kw_only=True)
class _RevealByScore(MaskedRule):
    """One predictor call at (x_t, t); candidate tokens drawn from it; `_quota` masked positions per group
    with the highest `_score` are revealed with their candidate tokens; nothing else changes."""

    def _score(self, logp, tokens, p_tok, noise, t, s):
        """Higher = revealed first; noise: (2, L) random uint32 words for rules with random scores."""
        raise NotImplementedError

    def _count(self, schedule, t, s, n_gen, n_masked):
        """Number of positions to reveal (single group)."""
        raise NotImplementedError

    def _quota(self, schedule, x, state, t, s):
        masked = x == self.bound_mask_id()
        n_masked = jnp.sum(masked, dtype=jnp.int32)
        n_gen = jnp.sum(~state.fixed, dtype=jnp.int32)
        k = jnp.clip(self._count(schedule, t, s, n_gen, n_masked), 0, n_masked).astype(jnp.int32)
        zeros = jnp.zeros(x.shape, jnp.int32)
        return zeros + k, zeros, zeros

    def step(self, schedule, predictor, x, state, t, s, key):
        mask_id = self.bound_mask_id()
        n = x.shape[0]
        tok_words, noise, tie = random_words(key, (2, n, mask_id), (2, n), (n,))
        logp = predict_logp(predictor, x, t, mask_id)
        tokens, p_tok = draw_tokens(tok_words, logp)
        quota, group, start = self._quota(schedule, x, state, t, s)
        chosen = select_top(self._score(logp, tokens, p_tok, noise, t, s), x == mask_id, quota, group,
                             start, tie)
        return (jnp.where(chosen, tokens, x).astype(jnp.int32),
                state._replace(psi=jnp.where(chosen, p_tok, state.psi)))


def _schedule_count(schedule, s, n_gen, n_masked, k):
    """k_t = #masked(t) - round(n_gen (1 - alpha_s)), or min(k, #masked) for a fixed k; all at s = 0."""
    if k is None:
        target = jnp.round(n_gen * schedule.mask_prob(s)).astype(jnp.int32)
        return jnp.where(s > 0, n_masked - target, n_masked)
    return jnp.where(s > 0, jnp.minimum(k, n_masked), n_masked)


@dataclasses.dataclass(frozen=True, kw_only=True)
class _TopK(_RevealByScore):
    """Count k_t = #masked(t) - round(n_gen (1 - alpha_s)) (n_gen = non-prompt positions), so the number
    of masked positions follows the schedule; with `k` set, exactly k per step instead. The last step
    (s = 0) reveals all remaining positions."""

    k: int | None = None

    def __post_init__(self):
        if self.k is not None:
            check_positive_int("k (positions revealed per step)", self.k)

    def _count(self, schedule, t, s, n_gen, n_masked):
        return _schedule_count(schedule, s, n_gen, n_masked, self.k)


@dataclasses.dataclass(frozen=True, kw_only=True)
class TopKConfidence(_TopK):
    """Reveal the k_t masked positions whose sampled token has the highest probability (LLaDA,
    Nie et al. 2025, Alg. "low_confidence" remasking: sample x0 ~ p, rank by p(x0))."""

    def _score(self, logp, tokens, p_tok, noise, t, s):
        return p_tok


@dataclasses.dataclass(frozen=True, kw_only=True)
class TopKMargin(_TopK):
    """Reveal the k_t masked positions with the largest top1 - top2 probability margin (Kim et al. 2025,
    "Train for the worst, plan for the best", margin-based adaptive order); tokens sampled."""

    def _score(self, logp, tokens, p_tok, noise, t, s):
        p = jnp.exp(logp)
        if p.shape[-1] == 1:
            return p[:, 0]
        top2 = jax.lax.top_k(p, 2)[0]
        return top2[:, 0] - top2[:, 1]


@dataclasses.dataclass(frozen=True, kw_only=True)
class TopKEntropy(_TopK):
    """Reveal the k_t masked positions of lowest predictive entropy (Ben-Hamu et al. 2025; Dream's
    "entropy" order); tokens sampled."""

    def _score(self, logp, tokens, p_tok, noise, t, s):
        p = jnp.exp(logp)
        return jnp.sum(jnp.where(p > 0, p * logp, 0.0), axis=-1)  # -entropy


@dataclasses.dataclass(frozen=True, kw_only=True)
class TopKRandom(_TopK):
    """Reveal k_t uniformly random masked positions (LLaDA "random" remasking); tokens sampled."""

    def _score(self, logp, tokens, p_tok, noise, t, s):
        return uniform_from_words(noise[0])


@dataclasses.dataclass(frozen=True, kw_only=True)
class FirstHitting(TopKRandom):
    """One reveal event per step at a uniformly random masked position, token from the predictor: the
    first-hitting sampler of Zheng et al. 2024 (arXiv 2409.02908, Alg. 1) with the event times replaced
    by the grid (the grid times only matter through s = 0). With fewer steps than masked positions, the
    last step (s = 0) reveals all remaining positions at once; with more, the extra steps do nothing."""

    def __post_init__(self):
        if self.k is not None:
            raise ValueError("first_hitting reveals exactly one position per step; use topk_random for k > 1")

    def _count(self, schedule, t, s, n_gen, n_masked):
        return _schedule_count(schedule, s, n_gen, n_masked, 1)


@dataclasses.dataclass(frozen=True, kw_only=True)
class MaskGIT(_RevealByScore):
    """MaskGIT iterative decoding (Chang et al. 2022, Sec. 3.2 and its reference code), with progress
    r = 1 - s (= (k + 1)/T on the uniform grid):

        #masked after the step  n = floor(n_gen cos(pi/2 r)), clipped to [1, #masked(t) - 1] (0 at s = 0),
        scores                  log p(sampled token) + temperature (1 - r) G,   G ~ Gumbel (gumbel46),

    revealing the #masked(t) - n best-scored masked positions (at least one per step). temperature = 4.5
    is MaskGIT's choice temperature."""

    temperature: float = 4.5

    def __post_init__(self):
        check_real("temperature", self.temperature, 0.0)

    def _count(self, schedule, t, s, n_gen, n_masked):
        target = jnp.floor(n_gen * jnp.cos(0.5 * jnp.pi * (1.0 - s))).astype(jnp.int32)
        target = jnp.where(s > 0, jnp.clip(target, 1, n_masked - 1), 0)
        return n_masked - jnp.maximum(target, 0)

    def _score(self, logp, tokens, p_tok, noise, t, s):
        logp_tok = jnp.take_along_axis(logp, tokens[:, None], axis=-1)[:, 0]
        return logp_tok + self.temperature * s * gumbel_from_words(noise)


@dataclasses.dataclass(frozen=True, kw_only=True)
class SemiAR(_RevealByScore):
    """LLaDA semi-autoregressive remasking (Nie et al. 2025, Sec. 2.4 / App. B): the generated (non-prompt)
    positions, in order, form B = ceil(n_gen / block_len) consecutive blocks; block b is decoded while the
    progress r = 1 - t runs through [b/B, (b+1)/B] (so on a uniform grid with T a multiple of B every
    block gets T/B steps), and within it the number of masked positions falls linearly:

        #masked in block b after the step = round(size_b (1 - clip(B (1 - s) - b, 0, 1))),

    the positions revealed being the block's highest-confidence ones (probability of the sampled token,
    as topk_confidence). Blocks not yet started are untouched, finished blocks are complete. Deviation:
    LLaDA spreads the remainder of size_b / steps over the first steps; here the count is rounded."""

    block_len: int = 32

    def __post_init__(self):
        check_positive_int("block_len", self.block_len)

    def _score(self, logp, tokens, p_tok, noise, t, s):
        return p_tok

    def _quota(self, schedule, x, state, t, s):
        n = x.shape[0]
        gen = ~state.fixed
        n_gen = jnp.sum(gen, dtype=jnp.int32)
        block = jnp.where(gen, (jnp.cumsum(gen, dtype=jnp.int32) - 1) // self.block_len, n)
        n_blocks = jnp.maximum((n_gen + self.block_len - 1) // self.block_len, 1)
        size = jnp.clip(n_gen - block * self.block_len, 0, self.block_len)
        progress = jnp.clip(n_blocks * (1.0 - s) - block, 0.0, 1.0)
        target = jnp.where(s > 0, jnp.round(size * (1.0 - progress)).astype(jnp.int32), 0)
        masked_in = jax.ops.segment_sum((x == self.bound_mask_id()).astype(jnp.int32), block, num_segments=n + 1)[block]
        quota = jnp.maximum(masked_in - target, 0)
        return quota, block, jnp.where(gen, block * self.block_len, 0)


__all__ = ["FirstHitting", "MaskGIT", "SemiAR", "TopKConfidence", "TopKEntropy", "TopKMargin", "TopKRandom"]
