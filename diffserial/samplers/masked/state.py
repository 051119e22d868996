"""Shared pieces of every masked rule: the carry, the base class, the predictor call, the candidate
draw and the fixed-shape top-k selection.

Conventions (`diffserial.processes.masked`): tokens are int32 (L,), the vocabulary is {0, ..., V-1},
MASK = V; a predictor (x, t) -> logits or log-probabilities (L, V) of p(x_0^i = . | x) for ONE
sequence; time runs from t = 1 (all masked) to t = 0 (clean) on a grid ts decreasing from 1 to
exactly 0. Every rule is a frozen dataclass deriving from `MaskedRule` (a `diffserial.samplers.rule.Rule`)
with

    nfe_per_step: ClassVar[int]                                         predictor evaluations per step
    init_state(x) -> MaskedRuleState(fixed, psi)               fixed = positions unmasked at init (prompt)
    step(schedule, predictor, x, state, t, s, key) -> (x, state)

plugged into `diffserial.samplers.loop.run_chain` (one `lax.scan` over steps, vmapped over seeds,
seed contract and sharding from the loop). A rule never changes a `fixed` position: the prompt is
given, never masked, never revised. Rules need the MASK id, held in their `mask_id` field;
`sample_masked` binds it (`rule.bind(V)`). Notation for one step t -> s < t: a_t = alpha_t,
m_t = 1 - a_t (the schedule's `mask_prob`, no cancellation), x_theta = the predictor's marginals at
(x_t, t), one draw per position from x_theta is the "candidate token". The last step (s = 0) leaves no
position masked, for every rule but `ReMDMLoop(convention="reference")` on a grid whose last step starts
inside its loop.
"""

from __future__ import annotations

import dataclasses
from typing import Callable, ClassVar, NamedTuple

import jax
import jax.numpy as jnp

from diffserial.samplers.masked.gumbel import gumbel_from_words
from diffserial.validation import check_positive_int

Array = jax.Array
Predictor = Callable[[Array, Array], Array]


class MaskedRuleState(NamedTuple):
    """Carry of every masked rule: `fixed` (L,) bool, the positions unmasked at init (prompt), which no
    rule changes; `psi` (L,) float32, the predictor's probability of each position's token when it was
    last drawn (1 at init; read by remdm_conf and by revision's threshold mode)."""

    fixed: Array
    psi: Array


def predict_logp(predictor: Predictor, x: Array, t: Array, mask_id: int) -> Array:
    """Normalised float32 log-probabilities (L, V) of the predictor at (x, t); V must equal mask_id."""
    out = predictor(x, t)
    if out.shape != (x.shape[0], mask_id):
        raise ValueError(f"predictor returns shape {out.shape} for a sequence of length {x.shape[0]}; "
                         f"expected (L, vocab_size) = ({x.shape[0]}, {mask_id}) (MASK id = vocab_size = {mask_id})")
    return jax.nn.log_softmax(out.astype(jnp.float32), axis=-1)


def draw_tokens(words: Array, logp: Array) -> tuple[Array, Array]:
    """Candidate tokens (L,) drawn from exp(logp) by Gumbel-max (words: (2, L, V) uint32) and their
    probabilities (L,)."""
    tokens = jnp.argmax(logp + gumbel_from_words(words), axis=-1).astype(jnp.int32)
    return tokens, jnp.exp(jnp.take_along_axis(logp, tokens[:, None], axis=-1)[:, 0])


PAIRWISE_MAX_LEN = 256


def select_top(score: Array, candidate: Array, quota: Array, group: Array, start: Array, tie: Array) -> Array:
    """Boolean (L,): in each group, the `quota` candidates of highest score (ties broken at random).

    Fixed shapes. A position's place in the order (group ascending, score descending, tie ascending;
    non-candidates at score -inf, so last in their group) minus `start` (where its group begins) is its
    rank. For L <= PAIRWISE_MAX_LEN the place is counted by pairwise comparison (O(L^2) vectorised
    work, several times faster than XLA's CPU sort at L = 64); longer sequences use one
    lexicographic `lax.sort`. quota, group, start: (L,) int32, the values of each position's group;
    tie: (L,) random values (any order type) breaking ties at random.
    """
    n = score.shape[0]
    key_score = jnp.where(candidate, score, -jnp.inf)
    if n <= PAIRWISE_MAX_LEN:
        g_i, g_j = group[:, None], group[None, :]
        s_i, s_j = key_score[:, None], key_score[None, :]
        before = (g_j < g_i) | ((g_j == g_i) & ((s_j > s_i) | ((s_j == s_i) & (tie[None, :] < tie[:, None]))))
        rank = jnp.sum(before, axis=1, dtype=jnp.int32) - start
    else:
        iota = jnp.arange(n, dtype=jnp.int32)
        *_, order = jax.lax.sort((group, -key_score, tie, iota), num_keys=3)
        rank = jnp.zeros((n,), jnp.int32).at[order].set(iota) - start
    return candidate & (rank < quota)


@dataclasses.dataclass(frozen=True, kw_only=True)
class MaskedRule:
    """Base of the masked update rules. `mask_id` (= vocab_size) is bound by `sample_masked`."""

    mask_id: int | None = None
    nfe_per_step: ClassVar[int] = 1

    def bind(self, vocab_size: int) -> "MaskedRule":
        """This rule with mask_id = vocab_size (ValueError if it is already bound to another id)."""
        check_positive_int("vocab_size", vocab_size)
        if self.mask_id is not None and self.mask_id != vocab_size:
            raise ValueError(f"rule is bound to mask_id {self.mask_id}, but vocab_size is {vocab_size}")
        return dataclasses.replace(self, mask_id=int(vocab_size))

    def bound_mask_id(self) -> int:
        if self.mask_id is None:
            raise ValueError(f"{type(self).__name__} has no mask_id: use sample_masked or rule.bind(vocab_size)")
        return self.mask_id

    def init_state(self, x: Array) -> MaskedRuleState:
        return MaskedRuleState(fixed=x != self.bound_mask_id(), psi=jnp.ones(x.shape, jnp.float32))

    def step(self, schedule, predictor, x, state, t, s, key):
        raise NotImplementedError


__all__ = ["PAIRWISE_MAX_LEN", "MaskedRule", "MaskedRuleState", "Predictor", "draw_tokens", "predict_logp",
           "select_top"]
