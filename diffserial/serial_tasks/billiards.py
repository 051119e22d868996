"""Two-dimensional many-body mechanics (paper section 3.2): the billiard ball model cellular automaton
(BBMCA; Margolus 1984), and its closed-form free-flight control.

Model. A grid of occupancy bits on an H x W torus (H, W even) is updated by the Margolus partitioning
scheme: step s uses the partition of phase p = s mod 2 into 2 x 2 blocks whose top-left cells (r, c) have
r = c = p (mod 2), i.e. the even blocks at steps 0, 2, ... and the blocks offset by (1, 1) (wrapping
around the torus) at steps 1, 3, .... Each block (a b / c d) is replaced independently by the BBMCA rule
(Margolus 1984; Toffoli & Margolus, "Cellular Automata Machines", 1987, ch. 18), the same in both phases:

    exactly one particle               -> rotated by 180 degrees: it moves to the diagonally opposite cell
    two particles on one diagonal      -> rotated by 90 degrees: they move to the other diagonal
      (1 0 / 0 1 <-> 0 1 / 1 0)           (a head-on collision; both rotation senses give the same block)
    anything else (none, two adjacent, three, four)  -> unchanged

This is the rule summarized in the task brief. A lone particle flies diagonally, one cell per step: from
(r, c) at step 0 its velocity is v = (1 - 2 (r mod 2), 1 - 2 (c mod 2)) (towards the opposite corner of
its even block), and after each step it sits in the corner of the next partition's block that sends it
on in the same direction. Head-on pairs are deflected by 90 degrees, and particles that meet in a block
left unchanged (two adjacent, three) bounce back: the lattice version of the Fredkin-Toffoli elastic
billiard-ball collisions and mirrors. The BBMCA simulates the billiard ball model of conservative logic
(Fredkin & Toffoli 1982) and so is computation-universal (Margolus 1984); predicting lattice gases that
embed billiard-ball logic is P-complete (Moore & Nordahl 1997), with the grid size and the number of steps
growing together. The default 4 x 4 grid is a small instance of that family (see the caveat below).

Conserved and invariant. Each block keeps its particle count, so the number of particles is conserved.
The block map is an involution of the 16 block states (a 180 degree rotation, or a swap of the
diagonals, done twice is the identity), so the step M_p of each phase is its own inverse and the dynamics
is reversible: grid_0 = M_0 M_1 M_0 ... M_{(T-1) mod 2} grid_T (the rightmost map acts first), i.e. the
inverse runs the same rule with the phases in reverse order (T-1) mod 2, ..., 1, 0. On a finite torus the
dynamics is then a permutation of the 2^(HW) grids, and every orbit is periodic. Caveat: at 4 x 4 the
orbits are short. By exhaustive enumeration of the double step M_1 M_0, a density-0.25 grid recurs within
16 steps with probability 0.78 (mean period 8.7 double steps); a grid of double-step period q has the
same answer at `steps` and at `steps` mod 2q, so the serial depth of the 4 x 4 task saturates after about
a dozen steps. Sampled at density 0.25, the median period is about 600 double steps at 6 x 6 and over
2,000 at 8 x 8.

Free flight (`collisions=False`, the control). Switching the interactions off means applying the
single-particle rule to every block whatever it holds: every block is rotated by 180 degrees. That is a
bijection of the block's cells, so the occupancy stays 0/1 (particles never overlap), a diagonal pair is
left as it is (its particles pass through each other), and adjacent pairs and triples pass through each
other instead of bouncing back. (Removing only the diagonal rule, keeping adjacent pairs and triples
fixed, would leave those reflections in, and has no closed form.) Every particle then keeps the velocity
v above, and rows and columns move independently, so the grid at step t is a row and a column permutation
of the grid at step 0:

    grid_t[r, c] = grid_0[rho_H(r, t), rho_W(c, t)],    rho_n(i, t) = (i - (1 - 2 ((i - t) mod 2)) t) mod n

(the particle arriving in row i at step t started in a row of the parity of i - t, which fixes its row
velocity). Its period is lcm(H, W) steps: at 4 x 4 the answer at steps = 4, 8, ... is the prompt.

Sampling: the H W cells are occupied independently with probability `density` (default 0.25; one 32-bit
word per cell, `common.bernoulli`). Every grid has positive probability, so the prompt space is 2^(HW):
at the default H = W = 4, 2^16 = 65,536 prompts (>= 2^16), of entropy 16 h(0.25) ~ 13.0 bits (density 0.5
makes them uniform, 16 bits); at 6 x 6, 2^36.

Token layout of `BilliardBallTask(steps, height=H, width=W)` (vocab_size = 2; tokens are the bits 0, 1):

    prompt  = the occupancy bits at step 0, row-major                        length H W
    answer  = the occupancy bits after `steps` Margolus steps, row-major     length H W
    cot     = the grids after steps 1 .. steps-1, each row-major             length (steps - 1) H W

The free-flight control has the same prompts and layout (its chain of thought is also by the closed form).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from diffserial.pytrees import static_dataclass
from diffserial.serial_tasks.common import Example, SerialTask, bernoulli, random_words
from diffserial.validation import check_int

Array = jax.Array


def check_even(name: str, value) -> int:
    """`value` if it is an even int >= 2 (2 x 2 blocks must tile the torus); ValueError otherwise."""
    value = check_int(name, value, 2)
    if value % 2:
        raise ValueError(f"{name} must be even (2 x 2 Margolus blocks tile the torus); got {value}")
    return value


def margolus_step(grid: Array, phase, collisions: bool = True) -> Array:
    """One Margolus step of occupancy grids (..., H, W) on the partition of `phase` (0: blocks with top-left
    at even (r, c); 1: offset by (1, 1); an int or traced scalar, taken mod 2). The BBMCA rule per block
    (a b / c d) with n = a + b + c + d particles: n = 1 -> (d c / b a) (rotated 180 degrees); n = 2 and
    a = d (a diagonal pair) -> 1 - block (the other diagonal); otherwise unchanged. With collisions=False
    every block becomes (d c / b a) (free flight)."""
    grid = jnp.asarray(grid)
    h, w = grid.shape[-2:]
    check_even("grid height", h)
    check_even("grid width", w)
    shift = jnp.asarray(phase, jnp.int32) % 2
    aligned = jnp.roll(grid, (-shift, -shift), axis=(-2, -1))
    blocks = aligned.reshape(*aligned.shape[:-2], h // 2, 2, w // 2, 2)  # (..., block row, r, block col, c)
    rotated = blocks[..., ::-1, :, ::-1]
    if collisions:
        count = blocks.sum(axis=(-3, -1), keepdims=True)
        diagonal = (count == 2) & (blocks[..., :1, :, :1] == blocks[..., 1:, :, 1:])
        blocks = jnp.where(count == 1, rotated, jnp.where(diagonal, 1 - blocks, blocks))
    else:
        blocks = rotated
    return jnp.roll(blocks.reshape(aligned.shape), (shift, shift), axis=(-2, -1))


def bbmca_rows(grid0: Array, steps: int, collisions: bool = True) -> Array:
    """(steps, ..., H, W) grids after steps 1 .. steps from grid0 (..., H, W), step s on phase s mod 2,
    by `lax.scan` over `margolus_step`."""
    def body(grid, phase):
        grid = margolus_step(grid, phase, collisions)
        return grid, grid

    _, grids = jax.lax.scan(body, jnp.asarray(grid0, jnp.int32), jnp.arange(steps, dtype=jnp.int32) % 2)
    return grids


def free_flight_source(n: int, time) -> Array:
    """(n,) int32 source index along one axis of length n after `time` free steps:
    rho(i, t) = (i - (1 - 2 ((i - t) mod 2)) t) mod n."""
    i = jnp.arange(n, dtype=jnp.int32)
    time = jnp.asarray(time, jnp.int32)
    return jnp.mod(i - (1 - 2 * jnp.mod(i - time, 2)) * time, n)


def free_flight_grid(grid0: Array, time) -> Array:
    """Closed-form free flight: grid (..., H, W) at step `time` from grid0 (..., H, W),
    grid_t[r, c] = grid_0[rho_H(r, t), rho_W(c, t)] (a row and a column permutation)."""
    grid0 = jnp.asarray(grid0)
    h, w = grid0.shape[-2:]
    return grid0[..., free_flight_source(h, time)[:, None], free_flight_source(w, time)[None, :]]


@static_dataclass
class BilliardBallTask(SerialTask):
    """Occupancy grid after `steps` BBMCA steps on a height x width torus (or free flight with
    collisions=False), particles i.i.d. with probability `density`; see the module docstring for the rule
    and the token layout. cot is None if not with_cot or steps = 1."""

    steps: int
    height: int = 4
    width: int = 4
    density: float = 0.25
    collisions: bool = True
    with_cot: bool = True

    def __post_init__(self):
        check_int("steps", self.steps, 1)
        check_even("height", self.height)
        check_even("width", self.width)
        if not isinstance(self.density, float) or not 0.0 < self.density < 1.0:
            raise ValueError(f"density must be a float in (0, 1); got {self.density!r}")
        if not isinstance(self.collisions, bool):
            raise ValueError(f"collisions must be a bool; got {self.collisions!r}")

    @property
    def vocab_size(self) -> int:
        return 2

    @property
    def prompt_len(self) -> int:
        return self.height * self.width

    @property
    def answer_len(self) -> int:
        return self.height * self.width

    @property
    def cot_len(self) -> int:
        return (self.steps - 1) * self.height * self.width if self.with_cot else 0

    def _grids(self, grid0: Array) -> Array:
        """(steps, H, W) grids after steps 1 .. steps: `lax.scan` with collisions, the closed form without."""
        if self.collisions:
            return bbmca_rows(grid0, self.steps)
        return jax.vmap(free_flight_grid, in_axes=(None, 0))(grid0, jnp.arange(1, self.steps + 1))

    def sample_one(self, key: Array) -> Example:
        """I.i.d. Bernoulli(density) occupancy; answer the grid after `steps` steps; cot steps 1 .. steps-1."""
        prompt = bernoulli(random_words(key, self.prompt_len), self.density)
        if not self.cot_len:
            return Example(prompt=prompt, answer=self.solve(prompt))
        grids = self._grids(prompt.reshape(self.height, self.width)).reshape(self.steps, -1)
        return Example(prompt=prompt, answer=grids[-1], cot=grids[:-1].reshape(-1))

    def solve(self, prompt: Array) -> Array:
        """The row-major grid after `steps` steps from the row-major prompt grid; without collisions by the
        closed form (no simulation)."""
        grid0 = jnp.asarray(prompt, jnp.int32).reshape(self.height, self.width)
        if self.collisions:
            return bbmca_rows(grid0, self.steps)[-1].reshape(-1)
        return free_flight_grid(grid0, self.steps).reshape(-1)


def billiards_free_flight_task(steps: int, **kwargs) -> BilliardBallTask:
    """The control: the same particles with every interaction off (every block rotated 180 degrees),
    closed form."""
    return BilliardBallTask(steps, collisions=False, **kwargs)
