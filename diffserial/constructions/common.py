"""Shared pieces of the theorem-built constructions: the `Construction` triple, deterministic and
uniform logits, token sampling, a round counter, and `run_rounds`, a driver-free scan over the rounds.

Token conventions (shared with the masked samplers): vocabulary ids 0..V-1, MASK id V; a sequence x is
int32 (L,); a predictor maps ONE sequence and a time, (x, t) -> logits (L, V). Every construction here
uses the binary vocabulary V = 2, MASK = 2.

Deterministic predictions use logits (0, -1e9): softmax gives probabilities exactly (1, 0) in float32,
so categorical sampling returns the predicted token with probability 1 and the confidence (largest
probability) is exactly 1, while a uniform prediction (logits 0) has confidence 1 / V. Large finite
logits rather than -inf keep log-probabilities and KL terms free of NaN.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Callable

import jax
import jax.numpy as jnp

from diffserial.pytrees import static_dataclass

Array = jax.Array
Predictor = Callable[[Array, Array], Array]

VOCAB_SIZE = 2  # binary vocabulary {0, 1}
MASK = VOCAB_SIZE  # the mask token id
NEG_LOGIT = -1e9  # logit of an impossible token in a deterministic prediction


def deterministic_logits(tokens: Array, vocab_size: int = VOCAB_SIZE) -> Array:
    """Logits (..., V) putting probability 1 on `tokens` (...,): 0 on the token, NEG_LOGIT elsewhere.

    `tokens` must lie in 0..V-1 where the result is used; callers select it with `jnp.where`."""
    hit = tokens[..., None] == jnp.arange(vocab_size, dtype=tokens.dtype)
    return jnp.where(hit, 0.0, NEG_LOGIT).astype(jnp.float32)


def uniform_logits(shape: tuple[int, ...], vocab_size: int = VOCAB_SIZE) -> Array:
    """Logits (*shape, V) of the uniform law on the vocabulary (all zero)."""
    return jnp.zeros((*shape, vocab_size), jnp.float32)


def sample_tokens(key: Array, logits: Array) -> Array:
    """One token per position from softmax(logits) (L, V), independently across positions: the
    factorized law p(x_0 | x_t) = prod_i p_i(x_0^i | x_t) of a masked-diffusion predictor."""
    return jax.random.categorical(key, logits, axis=-1).astype(jnp.int32)


def confidence(logits: Array) -> Array:
    """Largest predicted probability per position, max_v softmax(logits)_v, shape (L,)."""
    return jnp.max(jax.nn.softmax(logits, axis=-1), axis=-1)


def positions_in_use(x: Array, n_prompt: int = 0, mask_id: int = MASK) -> Array:
    """Number of unmasked non-prompt positions of x (..., L): the working memory a sequence occupies
    (prompt positions hold the input and are never masked, so they are not counted)."""
    return jnp.sum(x[..., n_prompt:] != mask_id, axis=-1)


@functools.partial(jax.tree_util.register_dataclass, data_fields=["predictor"],
                   meta_fields=["rule", "n_rounds", "seq_len", "n_prompt", "vocab_size"])
@dataclasses.dataclass(frozen=True)
class Construction:
    """A hand-built DLM: run `rule` with `predictor` for `n_rounds` rounds from `initial_sequence(...)`.

    predictor: (x, t) -> logits (seq_len, vocab_size) for one sequence; a `jax.tree_util.Partial`
        whose arrays (e.g. a circuit's wiring) are pytree leaves.
    rule: frozen, hashable update rule with `init_state(x)` and
        `step(schedule, predictor, x, state, t, s, key) -> (x, state)`.
    n_rounds: the number of rounds after which the output is exact; further rounds leave it unchanged.
    seq_len: L;  n_prompt: leading prompt positions (given, never masked);  vocab_size: V (MASK = V).
    """

    predictor: Predictor
    rule: Any
    n_rounds: int
    seq_len: int
    n_prompt: int = 0
    vocab_size: int = VOCAB_SIZE

    @property
    def mask_id(self) -> int:
        return self.vocab_size

    def initial_sequence(self, prompt: Array | None = None) -> Array:
        """x_0 = (prompt, MASK, ..., MASK), int32 (seq_len,). `prompt` must have shape (n_prompt,)
        (it may be traced, e.g. under vmap over inputs; its values are not checked)."""
        n_free = self.seq_len - self.n_prompt
        if self.n_prompt == 0:
            if prompt is not None and jnp.shape(prompt) != (0,):
                raise ValueError(f"prompt must be None for a construction with n_prompt=0; got shape {jnp.shape(prompt)}")
            return jnp.full((self.seq_len,), self.mask_id, jnp.int32)
        if prompt is None or jnp.shape(prompt) != (self.n_prompt,):
            got = None if prompt is None else jnp.shape(prompt)
            raise ValueError(f"prompt must have shape (n_prompt,) = ({self.n_prompt},); got {got}")
        prompt = jnp.asarray(prompt, jnp.int32)
        return jnp.concatenate([prompt, jnp.full((n_free,), self.mask_id, jnp.int32)])


def round_times(n_rounds: int) -> tuple[Array, Array]:
    """Dummy uniform grid t_k = 1 - k / n_rounds, k = 0..n_rounds-1, and s_k = t_{k+1}."""
    n = max(int(n_rounds), 1)
    k = jnp.arange(n_rounds, dtype=jnp.float32)
    return 1.0 - k / n, 1.0 - (k + 1.0) / n


def _scan_rounds(rule, predictor, x0, key, n_rounds, keep):
    if not isinstance(n_rounds, int) or n_rounds < 0:
        raise ValueError(f"n_rounds must be a Python int >= 0; got {n_rounds!r}")
    x0 = jnp.asarray(x0, jnp.int32)
    ts, ss = round_times(n_rounds)

    def body(carry, inputs):
        x, state = carry
        k, t, s = inputs
        x, state = rule.step(None, predictor, x, state, t, s, jax.random.fold_in(key, k))
        return (x, state), (x if keep else None)

    ks = jnp.arange(n_rounds, dtype=jnp.int32)
    (x, _), xs = jax.lax.scan(body, (x0, rule.init_state(x0)), (ks, ts, ss))
    return x, xs


def run_rounds(rule, predictor: Predictor, x0: Array, key: Array, n_rounds: int) -> Array:
    """Final sequence after `n_rounds` scan steps of `rule.step` from x0 (L,), for one seed.

    Round k uses key fold_in(key, k) and dummy times t_k = 1 - k / n_rounds > s_k = 1 - (k+1) / n_rounds,
    schedule None (every construction here ignores time). Pure JAX: jit and vmap over keys (or over
    x0 / predictor leaves) freely; `n_rounds` is static.
    """
    return _scan_rounds(rule, predictor, x0, key, n_rounds, keep=False)[0]


def run_rounds_trajectory(rule, predictor: Predictor, x0: Array, key: Array, n_rounds: int) -> Array:
    """(n_rounds + 1, L): x0 followed by the sequence after each round, as in `run_rounds`."""
    x0 = jnp.asarray(x0, jnp.int32)
    _, xs = _scan_rounds(rule, predictor, x0, key, n_rounds, keep=True)
    return jnp.concatenate([x0[None], xs.reshape((n_rounds,) + x0.shape)], axis=0)


def peak_positions_in_use(construction: Construction, key: Array, prompt: Array | None = None,
                          n_rounds: int | None = None) -> Array:
    """max over x_0 and the sequence after each round of `positions_in_use` (non-prompt, unmasked), for
    one seed; `n_rounds` defaults to `construction.n_rounds`."""
    n_rounds = construction.n_rounds if n_rounds is None else n_rounds
    xs = run_rounds_trajectory(construction.rule, construction.predictor,
                               construction.initial_sequence(prompt), key, n_rounds)
    return jnp.max(positions_in_use(xs, construction.n_prompt, construction.mask_id))
