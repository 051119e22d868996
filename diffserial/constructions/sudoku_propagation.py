"""A hand-built FIXED-DEPTH Sudoku denoiser: r rounds of constraint propagation as a masked-diffusion
predictor (x, t) -> logits (81, 9). It is not trained and not exact; it stands in for a fixed-depth
network in the Sudoku decoding study (`diffserial.studies.sudoku_decoding`).

Tokens (the masked samplers' convention, vocabulary V = 9, MASK = 9): cell c of the 9 x 9 grid (row-major)
holds token d in 0..8 for the Sudoku digit d + 1, or MASK when it is blank or still masked. `to_tokens` /
`to_grid` convert from / to `diffserial.serial_tasks.sudoku`'s grids (0 = blank, 1..9 = digits).

The predictor. Let N(c) be the 20 peers of cell c (same row, column or box, c excluded) and U the 27 units
(rows, columns, boxes). Known cells start as the unmasked tokens, K^1_{c,d} = [x_c = d] (a zero row where
x_c = MASK). Round j = 1..r:

    S_{c,d}   = [sum_{p in N(c)} K^j_{p,d} >= 1]                  digit d is a peer's known value
    A_{c,.}   = K^j_{c,.} if c is known, else 1 - S_{c,.}         naked candidates
    n_{u,d}   = sum_{c in u} A_{c,d}                              places of d in unit u   (hidden singles,
    H_{c,d}   = A_{c,d} [some unit u containing c has n_{u,d} = 1]  optional)
    C^j_{c,.} = H_{c,.} if any_d H_{c,d} else A_{c,.}             candidates after round j
    K^{j+1}_{c,.} = C^j_{c,.} [sum_d C^j_{c,d} = 1]               cells with one candidate become known

and the output is, per cell, the uniform law on its candidates C^r_{c,.}: logit 0 on a candidate and
NEG_LOGIT (-1e9, "log 0") elsewhere. Known cells (unmasked in x) stay one-hot on their token; a cell with
no candidate left (the partial grid is contradictory) gets the uniform law on all 9 digits. The time t
is ignored. Every step is sound for a consistent partial grid: the solution's digit is always a
candidate, so a singleton is forced. With r large enough (the known set grows in every round that
changes anything, so r = 81 always suffices) the candidates reach the fixed point of naked and hidden
singles, which is the propagation of `sudoku.analyze`: every puzzle of search depth 0 is then fully
determined (with hidden_singles; naked singles alone solve fewer).

Why fixed depth. Each round is a constant-depth threshold circuit on the 81 x 9 candidate bits (an OR
over 20 peers, an "exactly one" over the 9 cells of a unit, a count of 9 bits compared with 1), so the
predictor is a depth-O(r) circuit, like a transformer with O(r) layers, whatever the sampler does. A
masked sampler evaluates it once per step: decoding all cells in one step gets r rounds of propagation,
while T steps that each commit the cells the predictor is sure of compose up to T r rounds (serial
computation bought with steps). The order matters: confidence-ordered decoding commits the cells with
one candidate (probability 1) first, a random order commits cells that are still undetermined, i.e.
guesses. An exact denoiser (the true posterior of the unique solution) would make every order solve
every puzzle; the gap between orders and tokens per step is what a fixed-depth denoiser leaves.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from diffserial.constructions.common import NEG_LOGIT
from diffserial.pytrees import static_dataclass
from diffserial.validation import check_int

Array = jax.Array

N_CELLS = 81
VOCAB_SIZE = 9  # tokens 0..8 = Sudoku digits 1..9
MASK = VOCAB_SIZE


@functools.lru_cache(maxsize=None)
def peer_matrix() -> np.ndarray:
    """(81, 81) float32: 1 where two distinct cells share a row, a column or a 3 x 3 box (20 per row)."""
    row, col = np.divmod(np.arange(N_CELLS), 9)
    box = 3 * (row // 3) + col // 3
    same = (row[:, None] == row) | (col[:, None] == col) | (box[:, None] == box)
    return (same & ~np.eye(N_CELLS, dtype=bool)).astype(np.float32)


@functools.lru_cache(maxsize=None)
def unit_matrix() -> np.ndarray:
    """(27, 81) float32 membership of the 9 rows, 9 columns and 9 boxes (each row of the matrix has 9 ones)."""
    row, col = np.divmod(np.arange(N_CELLS), 9)
    box = 3 * (row // 3) + col // 3
    return np.concatenate([row == np.arange(9)[:, None], col == np.arange(9)[:, None],
                           box == np.arange(9)[:, None]]).astype(np.float32)


def to_tokens(grid):
    """Sudoku grid(s) (..., 81), 0 = blank, 1..9 = digits -> tokens: digit - 1, blank -> MASK (int32)."""
    grid = jnp.asarray(grid, jnp.int32)
    return jnp.where(grid == 0, MASK, grid - 1)


def to_grid(tokens):
    """Tokens (..., 81) -> Sudoku grid(s): token + 1, MASK -> 0 (blank) (int32)."""
    tokens = jnp.asarray(tokens, jnp.int32)
    return jnp.where(tokens == MASK, 0, tokens + 1)


def _round(known: Array, hidden_singles: bool) -> Array:
    """Candidates C (81, 9) bool of one round from known one-hot rows K (81, 9) float32 (module docstring)."""
    is_known = jnp.any(known > 0, axis=-1, keepdims=True)
    seen = jnp.asarray(peer_matrix()) @ known > 0.5
    naked = jnp.where(is_known, known > 0, ~seen)
    if not hidden_singles:
        return naked
    units = jnp.asarray(unit_matrix())
    unique = jnp.abs(units @ naked.astype(jnp.float32) - 1.0) < 0.5  # (27, 9): d has one place in u
    hidden = naked & (units.T @ unique.astype(jnp.float32) > 0.5)
    return jnp.where(jnp.any(hidden, axis=-1, keepdims=True), hidden, naked)


def _singles(cand: Array) -> Array:
    """K^{j+1} (81, 9) float32: the rows of C with exactly one candidate, zero elsewhere."""
    single = jnp.sum(cand, axis=-1, keepdims=True) == 1
    return (cand & single).astype(jnp.float32)


def propagate(x: Array, rounds: int, hidden_singles: bool = True) -> Array:
    """Candidates C^r (81, 9) bool after `rounds` rounds from tokens x (81,) (MASK = unknown); see the module
    docstring. Pure JAX (a `fori_loop` of rounds - 1 rounds, then one more); vmap it over grids."""
    known = jax.nn.one_hot(jnp.asarray(x, jnp.int32), VOCAB_SIZE, dtype=jnp.float32)  # MASK -> zero row
    known = jax.lax.fori_loop(0, rounds - 1, lambda _, k: _singles(_round(k, hidden_singles)), known)
    return _round(known, hidden_singles)


def candidate_logits(cand: Array) -> Array:
    """Logits (81, 9): 0 on candidates, NEG_LOGIT elsewhere; all 0 (uniform) for a cell without candidates."""
    empty = ~jnp.any(cand, axis=-1, keepdims=True)
    return jnp.where(cand | empty, 0.0, NEG_LOGIT).astype(jnp.float32)


@static_dataclass
class SudokuPropagation:
    """The masked-sampler predictor (x (81,) int32 tokens, t) -> logits (81, 9): the uniform law on each cell's
    candidates after `rounds` rounds of propagation (naked singles, plus hidden singles if `hidden_singles`),
    one-hot on known cells (module docstring). Hashable, no traced leaves: the driver compiles once per
    (rounds, hidden_singles)."""

    rounds: int = 1
    hidden_singles: bool = True

    def __post_init__(self):
        check_int("rounds", self.rounds, 1, N_CELLS, note=" (rounds of propagation)")
        if not isinstance(self.hidden_singles, bool):
            raise ValueError(f"hidden_singles must be a bool; got {self.hidden_singles!r}")

    def __call__(self, x: Array, t: Array) -> Array:
        del t
        if jnp.shape(x) != (N_CELLS,):
            raise ValueError(f"x must be one grid of {N_CELLS} tokens; got shape {jnp.shape(x)}")
        return candidate_logits(propagate(x, self.rounds, self.hidden_singles))


__all__ = ["MASK", "N_CELLS", "SudokuPropagation", "VOCAB_SIZE", "candidate_logits", "peer_matrix", "propagate",
           "to_grid", "to_tokens", "unit_matrix"]
