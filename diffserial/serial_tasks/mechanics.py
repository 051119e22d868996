"""Many-body mechanics (paper section 3.2) as exact integer lattice dynamics: N equal hard point masses on a
segment of G cells with reflecting walls, and its free-flight control.

Model. Particle i has an integer position x_i in 0..G-1 and velocity v_i in {-1, 0, +1}; time advances in
ticks of one unit, and between ticks every particle moves continuously at its velocity. A particle
reaching a wall (0 or G-1) reflects elastically (v -> -v). Two particles that meet (in a cell at a tick,
or between two cells at a half tick) collide elastically; with equal masses a 1-D elastic collision
exchanges their velocities, so particles never pass each other: their left-to-right order is preserved.

Free flight (`collisions=False`, the control) lets particles pass through one another; only the walls act.
Its solution is closed form, by unfolding the reflections onto a circle of period P = 2(G-1):

    u = (x_0 + v T) mod P,        x_T = u if u <= G-1 else P - u.

With collisions, the dynamics is computed by `lax.scan`, one tick at a time: every particle takes a free
step (a wall reflection included), then the particles are re-labelled in order of position. This is
exact: exchanging the velocities of two equal masses is the same as letting them pass through each other
and swapping their labels (Jepsen 1965), so the unlabelled state is always the free-flight one and the
labels ride on it in the order they started in. The recorded state at a tick is the one *before* the
events at that instant ("arriving" velocities): a particle that just reached a wall still has its outward
velocity, and two particles in one cell are listed with the larger velocity on the left (the one that
arrived from the left). Ties are ordered by (position, -velocity) and resolved deterministically.

Caveat (known physics): equal-mass hard-point dynamics in 1-D is integrable. The labelled answer with
collisions equals the sorted free-flight positions, permuted by the particles' initial ranks:
answer_i = sort(free-flight x_T)[rank_i], so an O(N log N) shortcut exists; the collisional task differs
from the control by exactly this sort-and-relabel. Conserved: the particle count, the multiset of speeds
|v_i| (hence the kinetic energy sum v_i^2), the left-to-right order of the labels, and the multiset of
(position, velocity) pairs equals that of free flight at every tick. Momentum is not conserved (walls).

Sampling: the N initial positions are distinct, uniform over the ordered N-subsets of the G cells (the
first N entries of the argsort of G random words; ties among 32-bit words are negligible), listed in a
uniform random order (the order is the particles' labels); velocities uniform on {-1, 0, +1}
(`common.below`). Prompts at the defaults G = 16, N = 4: 16 * 15 * 14 * 13 * 3^4 = 3,538,080 (~2^21.8).

Token layout of `MechanicsTask(steps, n_particles=N, cells=G)` (vocab_size = G + 3):

    x              position x in 0..G-1
    G + 1 + v      velocity v in {-1, 0, +1} (tokens G, G+1, G+2)

    prompt  = (x_0, v_0), (x_1, v_1), ..., (x_{N-1}, v_{N-1}) at tick 0, as token pairs     length 2 N
    answer  = x_0, ..., x_{N-1} at tick T = steps (label = prompt order)                    length N
    cot     = the state (x_i, v_i pairs, as in the prompt) after each tick 1 .. T-1          length 2 N (T - 1)

The free-flight control has the same layout (its chain of thought is also by the closed form).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from diffserial.pytrees import static_dataclass
from diffserial.serial_tasks.common import Example, SerialTask, below, random_words
from diffserial.validation import check_int

Array = jax.Array

MAX_CELLS = 61  # vocab_size = cells + 3 <= 64


def free_flight_states(x0: Array, v0: Array, cells: int, times: Array) -> tuple[Array, Array]:
    """Closed-form free flight with reflecting walls: (x, v) int32 (len(times), N) at ticks `times` (>= 1).
    Position by unfolding onto the circle of period P = 2(G-1); velocity = the one of the last unit interval
    (t-1, t): v0 times the slope (+1 on [0, G-1), -1 on [G-1, P)) of the fold on that interval."""
    period = 2 * (cells - 1)
    times = jnp.asarray(times, jnp.int32)[:, None]
    u = jnp.mod(x0 + v0 * times, period)
    x = jnp.where(u <= cells - 1, u, period - u)
    segment = jnp.mod(jnp.minimum(x0 + v0 * (times - 1), x0 + v0 * times), period)
    v = v0 * jnp.where(segment < cells - 1, 1, -1)
    return x.astype(jnp.int32), v.astype(jnp.int32)


def free_step(x: Array, v: Array, cells: int) -> tuple[Array, Array]:
    """One tick of free flight from the recorded (arriving) state: move by v, reflect at the walls."""
    y = x + v
    out = (y < 0) | (y > cells - 1)
    y = jnp.where(y < 0, -y, jnp.where(y > cells - 1, 2 * (cells - 1) - y, y))
    return y, jnp.where(out, -v, v)


def collisional_states(x0: Array, v0: Array, cells: int, steps: int) -> tuple[Array, Array]:
    """(x, v) int32 (steps, N) at ticks 1..steps with elastic equal-mass collisions, by `lax.scan`: per tick
    a free step of every particle, then the particles re-labelled in (position, -velocity) order; labels
    keep their initial left-to-right rank (stable argsort, so duplicate positions in a malformed prompt
    still give a deterministic result)."""
    order = jnp.argsort(x0, stable=True)
    rank = jnp.argsort(order, stable=True)

    def body(state, _):
        x, v = free_step(*state, cells)
        resort = jnp.argsort(3 * x + (1 - v), stable=True)
        x, v = x[resort], v[resort]
        return (x, v), (x[rank], v[rank])

    _, (xs, vs) = jax.lax.scan(body, (x0[order], v0[order]), None, length=steps)
    return xs, vs


@static_dataclass
class MechanicsTask(SerialTask):
    """Positions after `steps` ticks of N = n_particles equal masses on G = cells lattice cells with
    reflecting walls, with elastic collisions (or free flight through each other with collisions=False);
    see the module docstring for the model and the token layout. cot is None if not with_cot or steps = 1."""

    steps: int
    n_particles: int = 4
    cells: int = 16
    collisions: bool = True
    with_cot: bool = True

    def __post_init__(self):
        check_int("steps", self.steps, 1)
        check_int("cells", self.cells, 2, MAX_CELLS)
        check_int("n_particles", self.n_particles, 1, self.cells)
        if not isinstance(self.collisions, bool):
            raise ValueError(f"collisions must be a bool; got {self.collisions!r}")

    @property
    def vocab_size(self) -> int:
        return self.cells + 3

    @property
    def prompt_len(self) -> int:
        return 2 * self.n_particles

    @property
    def answer_len(self) -> int:
        return self.n_particles

    @property
    def cot_len(self) -> int:
        return 2 * self.n_particles * (self.steps - 1) if self.with_cot else 0

    def _encode(self, x: Array, v: Array) -> Array:
        """(..., N) positions and velocities -> (..., 2N) interleaved tokens (x_i, G + 1 + v_i)."""
        return jnp.stack([x, self.cells + 1 + v], axis=-1).reshape(*x.shape[:-1], -1).astype(jnp.int32)

    def _decode(self, prompt: Array) -> tuple[Array, Array]:
        """Inverse of `_encode` on a prompt (2N,); out-of-range tokens are clipped (this runs under jit)."""
        pairs = prompt.reshape(self.n_particles, 2)
        return jnp.clip(pairs[:, 0], 0, self.cells - 1), jnp.clip(pairs[:, 1] - (self.cells + 1), -1, 1)

    def _states(self, x0: Array, v0: Array, steps: int) -> tuple[Array, Array]:
        if self.collisions:
            return collisional_states(x0, v0, self.cells, steps)
        return free_flight_states(x0, v0, self.cells, jnp.arange(1, steps + 1))

    def sample_one(self, key: Array) -> Example:
        """Distinct uniform positions in random label order, uniform velocities; answer the positions at
        tick `steps`; cot the states at ticks 1 .. steps-1."""
        words = random_words(key, self.cells + self.n_particles)
        x0 = jnp.argsort(words[:self.cells])[:self.n_particles].astype(jnp.int32)
        v0 = below(words[self.cells:], 3) - 1
        if self.cot_len:
            xs, vs = self._states(x0, v0, self.steps)
            answer, cot = xs[-1], self._encode(xs[:-1], vs[:-1]).reshape(-1)
        else:
            answer, cot = self.solve_state(x0, v0), None
        return Example(prompt=self._encode(x0, v0), answer=answer, cot=cot)

    def solve_state(self, x0: Array, v0: Array) -> Array:
        """Positions (N,) at tick `steps` from (x0, v0): the closed form for free flight (no simulation),
        the `lax.scan` simulation with collisions."""
        if self.collisions:
            return collisional_states(x0, v0, self.cells, self.steps)[0][-1]
        return free_flight_states(x0, v0, self.cells, jnp.array([self.steps]))[0][0]

    def solve(self, prompt: Array) -> Array:
        """Decode the initial state and return the positions at tick `steps`."""
        return self.solve_state(*self._decode(prompt))


def free_flight_task(steps: int, **kwargs) -> MechanicsTask:
    """The control: the same particles passing through each other (reflecting walls only), closed form."""
    return MechanicsTask(steps, collisions=False, **kwargs)
