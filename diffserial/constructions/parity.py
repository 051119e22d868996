"""Sampling the even-parity law D_n = Uniform{x in {0,1}^n : x_1 + ... + x_n = 0 mod 2} in O(1) rounds
with revision (Thm 4.1) or remasking (Thm 4.2) of "Diffusion Language Models are Provably Optimal
Parallel Samplers" (ICLR 2026). Without either, Thm 4.5: no DLM with AC0 predictor and unmasking rule
samples D_n in O(1) rounds, because the last token revealed must be the parity of the others.

Vocabulary {0, 1}, MASK = 2, sequence length L = n, no prompt. Every predictor and remasking map below
is NC0: each position's logits read at most 5 positions of x, whatever n. The unmasking decisions never look at the
freshly sampled tokens (only at x and the round index); otherwise the set of revealed positions could
itself carry information and no remasking would be needed. The rules count rounds in their state (one
int32) and do nothing after the last round, so a longer time grid leaves the output unchanged.

Revision (Thm 4.1), `parity_revision(n)`, 2 rounds:
    round 1  unmask all:  x_i = u_i,  u_1..u_n iid fair bits (the predictor is uniform on masked x_i);
    round 2  revise all:  x_i <- u_i XOR u_{i-1}  (cyclic, u_0 := u_n), a deterministic prediction that
             reads positions i and i-1.
  The map u -> x is GF(2)-linear with kernel {0^n, 1^n}, so it is 2-to-1 onto a space of dimension n-1;
  every x in its image has sum_i x_i = 2 sum_i u_i = 0, so the image is the whole even-parity space and
  x is exactly uniform on it. (n = 1: x = 0, the only even string.)

Remasking (Thm 4.2), `parity_remask(n)`, n >= 2, 3 rounds. Blocks B_j = (2j, 2j+1), j < m = floor(n/2),
plus, for odd n, a trailing position n-1.
    round 1  unmask all: every position an independent fair bit; block j holds (a_j, b_j).
    round 2  remask (G, reads one block): remask the second position if a_j = b_j, else the first.
             Block j becomes (a_j, M) or (M, b_j): the mask position records p_j = a_j XOR b_j, the
             kept bit c_j (a_j or b_j) is fair and independent of p_j: (p_j, c_j) is a bijection of
             (a_j, b_j), so p_1..p_m, c_1..c_m are iid fair bits. The trailing bit is kept.
    round 3  rewrite: the masked position of block j gets the deterministic value c_j XOR q_j, where
             q_j = p_j XOR p_{j+1 mod m}  (XOR x_{n-1} for j = m-1 when n is odd)
             reads block j, the mask bit of block j+1 and the trailing bit. Block j ends as the string
             with parity q_j selected by c_j: "(M, c) with q = 0 becomes 00 or 11 with equal
             probability", the remask-and-rewrite step of Thm 4.2.
  Exactness: c, p iid fair (and the trailing bit t fair). (q_j) is the cyclic pair-parity map of p plus t
  on the last coordinate: 2-to-1 from {0,1}^m onto {q : XOR_j q_j = t}, so q is uniform there; given q,
  each block is an independent uniform choice (by c_j) between its two strings of parity q_j. Hence x is
  uniform on {x : parity = XOR_j q_j XOR t = 0}, exactly D_n. Phase 1 samples the pair parities, phase 2
  expands each 2-bit block, as described in the paper; the mask position is what carries p_j.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from diffserial.constructions.common import (
    MASK,
    Construction,
    deterministic_logits,
    sample_tokens,
    uniform_logits,
)
from diffserial.pytrees import static_dataclass
from diffserial.validation import check_int

Array = jax.Array

REVISION_ROUNDS = 2
REMASK_ROUNDS = 3


def _round_counter() -> Array:
    return jnp.zeros((), jnp.int32)


# --- Thm 4.1: revision -------------------------------------------------------------------------------
def revision_predictor(x: Array, t: Array) -> Array:
    """Logits (n, 2): uniform where x_i is masked; deterministic x_i XOR x_{i-1} (cyclic) where x_i and
    x_{i-1} are both revealed. NC0: position i reads positions i and i-1. Time is ignored."""
    del t
    prev = jnp.roll(x, 1)  # prev[i] = x[i-1 mod n]
    ready = (x != MASK) & (prev != MASK)
    value = jnp.where(ready, jnp.bitwise_xor(x, prev), 0)
    return jnp.where(ready[:, None], deterministic_logits(value), uniform_logits(x.shape))


@static_dataclass
class ParityRevisionRule:
    """Round 1: unmask every masked position with a predictor sample. Round 2 (revision): replace every
    token by a predictor sample (revealed tokens may change). Later rounds: no-op. State: rounds done."""

    def init_state(self, x: Array) -> Array:
        return _round_counter()

    def step(self, schedule, predictor, x, state, t, s, key):
        del schedule, s
        sample = sample_tokens(key, predictor(x, t))
        unmasked = jnp.where(x == MASK, sample, x)
        x_new = jnp.where(state == 0, unmasked, jnp.where(state == 1, sample, x))
        return x_new.astype(jnp.int32), state + 1


def parity_revision(n: int) -> Construction:
    """Thm 4.1 construction: exactly D_n (uniform even-parity strings of n >= 1 bits) in 2 rounds."""
    n = check_int("n", n, 1)
    return Construction(predictor=jax.tree_util.Partial(revision_predictor), rule=ParityRevisionRule(),
                        n_rounds=REVISION_ROUNDS, seq_len=n)


# --- Thm 4.2: remasking ------------------------------------------------------------------------------
def _blocks(x: Array) -> tuple[Array, Array, int]:
    m = x.shape[0] // 2
    return x[0:2 * m:2], x[1:2 * m:2], m


def remask_predictor(x: Array, t: Array) -> Array:
    """Logits (n, 2) of the remasking construction. Revealed positions: deterministic, themselves.
    A masked position whose block has its other position revealed, whose next block (cyclic) also has
    exactly one masked position, and (last block, odd n) whose trailing bit is revealed: deterministic
    c_j XOR p_j XOR p_{j+1} (XOR trailing bit), with p_j = [first position of block j masked] and c_j the
    block's revealed bit. Any other masked position: uniform. Time is ignored."""
    del t
    n = x.shape[0]
    first, second, m = _blocks(x)
    mf, ms = first == MASK, second == MASK
    one_masked = mf != ms
    kept = jnp.where(mf, second, first)  # c_j (meaningful where exactly one is masked)
    p = mf.astype(jnp.int32)
    q = jnp.bitwise_xor(p, jnp.roll(p, -1))  # p_j XOR p_{j+1 mod m}
    ready = one_masked & jnp.roll(one_masked, -1)
    if n % 2:
        trailing = x[n - 1]
        last = jnp.arange(m) == m - 1
        q = jnp.where(last, jnp.bitwise_xor(q, jnp.where(trailing == MASK, 0, trailing)), q)
        ready = ready & ~(last & (trailing == MASK))
    fill = jnp.where(ready, jnp.bitwise_xor(kept, q), 0)

    def position_logits(tok, masked):
        det = deterministic_logits(jnp.where(masked, fill, tok))
        use_det = ~masked | ready
        return jnp.where(use_det[:, None], det, uniform_logits(tok.shape))

    pairs = jnp.stack([position_logits(first, mf), position_logits(second, ms)], axis=1).reshape(2 * m, 2)
    if n % 2:
        tail = x[n - 1:]
        tail_logits = jnp.where((tail != MASK)[:, None], deterministic_logits(jnp.where(tail == MASK, 0, tail)),
                                uniform_logits((1,)))
        pairs = jnp.concatenate([pairs, tail_logits], axis=0)
    return pairs


def remask_pattern(x: Array) -> Array:
    """The remasking map G of round 2, bool (n,): in every fully revealed block (a, b) remask the second
    position if a = b, else the first; the trailing bit (odd n) is never remasked. NC0 (reads 2 bits)."""
    n = x.shape[0]
    first, second, m = _blocks(x)
    revealed = (first != MASK) & (second != MASK)
    equal = first == second
    pattern = jnp.stack([revealed & ~equal, revealed & equal], axis=1).reshape(2 * m)
    if n % 2:
        pattern = jnp.concatenate([pattern, jnp.zeros((1,), bool)])
    return pattern


@static_dataclass
class ParityRemaskRule:
    """Round 1: unmask all (predictor samples). Round 2: remask `remask_pattern(x)`. Round 3: unmask all
    (the predictor is deterministic there). Later rounds: no-op. State: rounds done."""

    def init_state(self, x: Array) -> Array:
        return _round_counter()

    def step(self, schedule, predictor, x, state, t, s, key):
        del schedule, s
        sample = sample_tokens(key, predictor(x, t))
        unmasked = jnp.where(x == MASK, sample, x)
        remasked = jnp.where(remask_pattern(x), MASK, x)
        x_new = jnp.where((state == 0) | (state == 2), unmasked, jnp.where(state == 1, remasked, x))
        return x_new.astype(jnp.int32), state + 1


def parity_remask(n: int) -> Construction:
    """Thm 4.2 construction: exactly D_n (uniform even-parity strings of n >= 2 bits) in 3 rounds.

    n = 1 is rejected: blocks need a partner (and D_1 is the point mass on 0)."""
    n = check_int("n", n, 2)
    return Construction(predictor=jax.tree_util.Partial(remask_predictor), rule=ParityRemaskRule(),
                        n_rounds=REMASK_ROUNDS, seq_len=n)
