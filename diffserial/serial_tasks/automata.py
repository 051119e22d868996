"""Elementary cellular automata (Rule 110 by default): predict a row, or its middle cell, after N steps.

One step of the elementary CA with Wolfram code `rule` maps a row x (width w, bits) to

    x'[i] = bit (4 x[i-1] + 2 x[i] + x[i+1]) of `rule`,

with periodic boundary (indices mod w) or a zero boundary (x[-1] = x[w] = 0). Rule 110 is Turing complete
(Cook 2004; Woods & Neary 2009), and predicting it is P-complete: the paper's section 3.1 example of an
inherently serial problem.

`ElementaryCATask(width, steps)`: prompt = row 0 (w uniform bits); answer = row N = `steps` (readout
"row", w tokens) or its middle cell x_N[w // 2] (readout "cell", 1 token); chain of thought = the
intermediate rows 1 .. N-1 flattened row by row ((N - 1) w tokens; None for N = 1), and with readout "cell" also
the w // 2 cells of row N before the middle one, so that the answer is the next cell in the same raster order:
in the sequence [prompt, cot, answer] every generated cell i (row r >= 1) has its parents at offsets w + 1, w,
w - 1 before it (w - 1, w and 2 w - 1 at the wrapped ends), the answer included; read off after the full last
row, the answer would need a parent offset of its own (README, "Rule 110's light cone"). Tokens: the bits 0, 1;
vocab_size 2. With readout "cell" and w >= 2N + 1 the middle cell's light cone never wraps around.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from diffserial.pytrees import static_dataclass
from diffserial.serial_tasks.common import Example, SerialTask, random_words, top_bit
from diffserial.validation import check_choice, check_int

Array = jax.Array

BOUNDARIES = ("periodic", "zero")
READOUTS = ("row", "cell")


def ca_step(row: Array, rule: int, boundary: str = "periodic") -> Array:
    """One elementary-CA step of a row (w,): x'[i] = (rule >> (4 x[i-1] + 2 x[i] + x[i+1])) & 1."""
    if boundary == "periodic":
        left, right = jnp.roll(row, 1), jnp.roll(row, -1)
    else:
        padded = jnp.pad(row, 1)
        left, right = padded[:-2], padded[2:]
    return (jnp.int32(rule) >> (4 * left + 2 * row + right)) & 1


def ca_rows(row0: Array, steps: int, rule: int, boundary: str = "periodic") -> Array:
    """(steps, w) rows 1 .. steps of the CA started from row0 (w,), by `lax.scan`."""
    def body(row, _):
        row = ca_step(row, rule, boundary)
        return row, row

    _, rows = jax.lax.scan(body, jnp.asarray(row0, jnp.int32), None, length=steps)
    return rows


@static_dataclass
class ElementaryCATask(SerialTask):
    """Row or middle cell after `steps` steps of elementary CA `rule` (default 110) of width `width`;
    see the module docstring for the token layout."""

    width: int
    steps: int
    rule: int = 110
    readout: str = "row"
    boundary: str = "periodic"
    with_cot: bool = True

    def __post_init__(self):
        check_int("width", self.width, 3)
        check_int("steps", self.steps, 1)
        check_int("rule", self.rule, 0, 255)
        check_choice("readout", self.readout, READOUTS)
        check_choice("boundary", self.boundary, BOUNDARIES)

    @property
    def vocab_size(self) -> int:
        return 2

    @property
    def prompt_len(self) -> int:
        return self.width

    @property
    def answer_len(self) -> int:
        return self.width if self.readout == "row" else 1

    @property
    def _cot_last_row_cells(self) -> int:
        """Cells of row N in the cot: those before the middle one for readout "cell", none for "row"."""
        return self.width // 2 if self.readout == "cell" else 0

    @property
    def cot_len(self) -> int:
        if not self.with_cot or self.steps == 1:
            return 0
        return (self.steps - 1) * self.width + self._cot_last_row_cells

    def _read(self, last_row: Array) -> Array:
        return last_row if self.readout == "row" else last_row[self.width // 2][None]

    def sample_one(self, key: Array) -> Example:
        """Uniform row 0; answer read from row `steps`; cot rows 1 .. steps-1 (and, readout "cell", the last
        row's cells before the middle one)."""
        row0 = top_bit(random_words(key, self.width))
        rows = ca_rows(row0, self.steps, self.rule, self.boundary)
        cot = (jnp.concatenate([rows[:-1].reshape(-1), rows[-1, :self._cot_last_row_cells]]) if self.cot_len
               else None)
        return Example(prompt=row0, answer=self._read(rows[-1]), cot=cot)

    def solve(self, prompt: Array) -> Array:
        """The row (or middle cell) after `steps` steps from the prompt row."""
        return self._read(ca_rows(prompt, self.steps, self.rule, self.boundary)[-1])


def rule110_task(width: int, steps: int, **kwargs) -> ElementaryCATask:
    """Rule 110 (P-complete to predict) of the given width and number of steps."""
    return ElementaryCATask(width, steps, 110, **kwargs)


def rule110_cell_task(steps: int, **kwargs) -> ElementaryCATask:
    """The middle cell of Rule 110 after N = `steps` steps from its light cone: a row of width 2N + 1 (2^(2N+1)
    prompts), one answer bit x_N[N]. The input grows with N, so a fixed-depth model meets a serial depth that
    grows with its input (the TC0-vs-P picture); the chain of thought is the N - 1 intermediate rows and the
    first N cells of row N."""
    return ElementaryCATask(2 * steps + 1, steps, 110, readout="cell", **kwargs)
