"""Compile a counter machine into a smooth force field f: R^d -> R^d for dx = (x/2 + f(x)) dt + dW.

The ball's position x, divided by the cell side L, is y = x / L; every integer point of y is the centre
of a cubic cell of side L. Coordinates (d = k + 4):

    y_0 .. y_{k-1}   the registers r_0 .. r_{k-1}
    y_k              the tape head (tape index; 0 = ^, n + 1 = $)
    y_{k+1}          the program counter (instruction index)
    y_{k+2}          the lane (the essay's jump coordinate)
    y_{k+3}          the phase (a second jump coordinate; see "Deviations")

Machine configuration (r, head, pc) rests at the lattice point (r, head, pc, lane 0, phase 0). One
instruction whose firing rule has register/head change delta and target t is the closed walk through
lattice points (one leg per line; lane l >= 1 is the lane of the pair (t, delta), a number fixed at
compile time):

    1. phase 0: lane 0 -> l                      (+lane; the rule is read from r, head symbol, pc)
    2. lane l:  (r, head, phase 0) -> (r + delta, phase 1)      (one diagonal leg)
    3. phase 1, lane l: pc -> t                  (+-pc, one cell at a time)
    4. pc t, lane l: phase 1 -> 2
    5. phase 2: lane l -> 0                      (-lane)
    6. lane 0: phase 2 -> 0                      (back at rest: the next instruction starts)

At a HALT instruction the rest point is an attractor. The field is a function of position alone:
every lattice point Q on these walks has one unit move D(Q) (the table above: in the phase-0 plane,
+lane below the rule's lane, the diagonal at it, -lane above it; in the phase-1 plane, -phase at
lane 0, else +-pc toward the lane's target and +phase at it; in the phase-2 plane, -lane, and -phase
at lane 0). No two walks share a segment with different directions: the lane names (target, delta),
so rows of the phase-1 plane never overlap with different targets, and the diagonals at one
(pc, lane) all have the same delta (parallel, a cell apart).

The field at y averages the legs of the nearby lattice points with a smooth partition of unity:

    f(x) = -x/2 + sum_Q W_Q(y) F_Q(x),   W_Q = prod_coords I_{Q_c}(y_c),
    I_n(y) = S((y - n + 1/2) / b) - S((y - n - 1/2) / b)     (the end cells extend to +-infinity),

S the quintic smoothstep 6u^5 - 15u^4 + 10u^3 of (u + 1)/2 clipped to [0, 1] (C^2), b = `blend` the
half-width (in cells) of the switch between neighbouring cells (b < 1/2, so at most two cells per
coordinate carry weight: `two_cells`). F_Q has three parts:

  * drive: the coordinate that moves on Q's leg gets `speed` (x-units per unit time) in its
    direction, times the gates G(u) of every confined coordinate, G = 1 within 1/4 cell of the centre
    line and 0 beyond 0.4 cell (`centred`, a C^2 function of cos 2 pi u): a leg starts only once the
    ball has settled onto its line, so a corner never hands the ball to the next leg half-way;
  * confinement: every coordinate that does not move gets C(u) = -(kappa L / 2 pi) sin(2 pi u)
    (x-units; u its offset in cells; slope -kappa at the centre, periodic, so it does not depend on
    Q itself, only on whether the coordinate moves);
  * the diagonal (leg 2) is the curve counters = c + delta s(phase), s(p) = 6p^5 - 15p^4 + 10p^3 on
    [0, 1] (0 below, 1 above; `frame_shift`): the counters are confined in their lane's frame,
    u = counters - delta_l s(phase), and driven at delta_l s'(phase) x (the phase's drift), so u is
    only confined. The rule is read in the same frame (the configuration before the change), so it
    cannot change mid-leg, and since s = 1 for phase >= 1 the frame equals the plain lattice after.

The sum over Q reduces to per-coordinate weights: registers enter through their zero weights I_0
(r <= 0 counts as zero), the head through the symbol it reads ((1 - w) onehot(tape_c) + w
onehot(tape_{c+1})), pc and lane through their two cells; the rule (pc, symbol, zero pattern) -> lane
is the compiled transition table. -x/2 in f cancels the SDE's +x/2 exactly (`groove_drift` is
x/2 + f; `force` subtracts x/2 back for the rule, which adds it again).

Choices (defaults in `PinballParams`): speed 2, kappa 4, blend b = 0.2 (forces O(1); the Lipschitz
constant of f + x/2 is O(kappa + speed / (b L)), bounded for L >= 1). Corners are cut: once the ball
crosses the half-way point of a leg, the next lattice point's leg takes over, its confinement pulls
the ball onto the next line and the gates hold the next drive until it is there. A confined
coordinate sits in a well of C with barrier kappa L^2 / (2 pi^2); with noise dW (generator
Laplacian / 2) Kramers' escape rate over it is ~ exp(-kappa L^2 / pi^2): the essay's e^{-L^2}
leakage. The study fits ln P(leak) against L^2 and compares the slope with -kappa / pi^2 (leaks at
the corners, where the ball passes half-way points, can make the measured slope shallower).

Tape: the input word is compiled into the field (like a score network conditioned on the prompt,
f(x | a_1..a_n)); the head position is one more counter coordinate that the rule moves by -1/0/+1,
and the symbol under it is read from the head's cell. The tape is padded with $ to a fixed length
so that words up to that length share one compiled program.

Deviations from the essay's sketch (stated, not hidden):
  * the essay's else-branch example zeroes r_1; it should keep it (the rule only tests r_1 != 0):
    its second path should read (r_1, r_2, ..) -> (r_1, r_2, .., 32, 32) -> .. ; here delta is
    exactly the rule's change;
  * one jump coordinate is not enough without crossings: in the plane (pc, jump), the essay's paths
    go up column i, along row i to column t and down column t, so the up and down paths of one
    column overlap with opposite directions, and rows cross columns; for crossing jumps
    (s < s' < t < t') no assignment of row heights avoids it (the jump graph need not be planar).
    A second jump coordinate (the phase) separates going out (phase 0), travelling (phase 1) and
    coming back (phase 2), so d = k + 4 with the head (the essay's k + 2, plus head and phase);
  * the essay's jump coordinate holds the source line; here the lane holds (target, delta), one
    lane per distinct pair, so a walk climbs up to E lanes (E = number of pairs, 6 to 8 here).

Integration is Euler-Maruyama with a fixed step h = 0.05 (`PinballSDE.step_size`), the same h for
every L (kappa h = 0.2; speed h = 0.1 x-units per step against a blend zone 2 b L = 1.6 x-units
wide at L = 4, the smallest L the study uses); a leg of one cell takes L / speed time units, so the SDE steps per
machine step grow linearly in L: `steps_needed` gives 1.5 x (walk cells + 2) x L / (speed h).
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np

from diffserial.pinball.counter_machine import CounterMachine, tape, transition_table, zero_patterns
from diffserial.pytrees import static_dataclass
from diffserial.samplers import ContinuousRule, constant, run_chain

Array = jax.Array
GATE_OPEN, GATE_SHUT = 0.25, 0.4  # cells from the centre line where a leg's drive is fully on / off


@dataclasses.dataclass(frozen=True)
class PinballParams:
    """Geometry and force magnitudes (see the module docstring): cell side L, speed, kappa, blend b."""

    cell: float = 8.0
    speed: float = 2.0
    kappa: float = 4.0
    blend: float = 0.2

    def check(self) -> None:
        """Raise ValueError unless every parameter is finite and in range (L >= 1, 0 < b < 1/2)."""
        if not (math.isfinite(self.cell) and self.cell >= 1.0):
            raise ValueError(f"cell side L must be finite and >= 1, got {self.cell}")
        for name in ("speed", "kappa"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be finite and > 0, got {value}")
        if not 0.0 < self.blend < 0.5:
            raise ValueError(f"blend must lie in (0, 1/2) cells, got {self.blend}")


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class PinballField:
    """A compiled machine + input + parameters; every leaf is an array, so new words and new L reuse
    the program compiled for the same machine and tape length."""

    lane_table: Array     # (N, A, 2^k) int: the lane each (pc, symbol, zero pattern) selects (0 = halt)
    lane_target: Array    # (E,) target instruction of lanes 1..E
    lane_delta: Array     # (E, k + 1) register and head change of lanes 1..E
    tape_symbols: Array   # (n_tape,) int: symbol index (into machine.symbols) at each tape position
    pattern_bits: Array   # (2^k, k) 1 where the pattern says "non-zero"
    halting: Array        # (N,) bool
    accepting: Array      # (N,) bool
    cell: Array
    speed: Array
    kappa: Array
    blend: Array

    @property
    def dim(self) -> int:
        return self.lane_delta.shape[1] + 3


@dataclasses.dataclass(frozen=True)
class Compiled:
    """The field plus host-side facts: lanes as (target, delta) pairs and the walk length of a run."""

    field: PinballField
    machine: CounterMachine
    word: str
    lanes: tuple[tuple[int, tuple[int, ...]], ...]
    n_tape: int

    def start(self) -> np.ndarray:
        """The starting point x_0: registers 0, head on tape index 1, pc 0, lane 0, phase 0 (x-units)."""
        y = np.zeros(self.field.dim, np.float32)
        y[self.machine.n_registers] = 1.0
        return y * np.float32(self.field.cell)


def compile_machine(machine: CounterMachine, word: str, params: PinballParams = PinballParams(),
                    tape_length: int | None = None) -> Compiled:
    """Compile (machine, input word) into a `PinballField`; the tape ^word$ is padded with $ to
    `tape_length` cells (default len(word) + 2)."""
    params.check()
    cells = tape(machine, word)
    n_tape = len(cells) if tape_length is None else int(tape_length)
    if n_tape < len(cells):
        raise ValueError(f"tape_length {n_tape} < len(^word$) = {len(cells)}")
    delta, goto, halting, accepting = transition_table(machine)
    n, a, p, _ = delta.shape
    lanes: dict[tuple[int, tuple[int, ...]], int] = {}
    lane_of = np.zeros((n, a, p), np.int32)
    for i, s, z in np.ndindex(n, a, p):
        if not halting[i]:
            lane_of[i, s, z] = lanes.setdefault((int(goto[i, s, z]), tuple(int(v) for v in delta[i, s, z])),
                                                len(lanes) + 1)
    pairs = tuple(sorted(lanes, key=lanes.get))
    symbols = machine.symbols
    padded = cells + (cells[-1],) * (n_tape - len(cells))
    field = PinballField(
        lane_table=jnp.asarray(lane_of),
        lane_target=jnp.asarray(np.array([t for t, _ in pairs], np.int32)),
        lane_delta=jnp.asarray(np.array([d for _, d in pairs], np.float32).reshape(len(pairs), delta.shape[-1])),
        tape_symbols=jnp.asarray(np.array([symbols.index(c) for c in padded], np.int32)),
        pattern_bits=jnp.asarray(np.array([[not z for z in pat] for pat in zero_patterns(machine.n_registers)],
                                          np.float32)),
        halting=jnp.asarray(halting), accepting=jnp.asarray(accepting),
        cell=jnp.float32(params.cell), speed=jnp.float32(params.speed), kappa=jnp.float32(params.kappa),
        blend=jnp.float32(params.blend))
    return Compiled(field, machine, word, pairs, n_tape)


def smoothstep(u: Array) -> Array:
    """S(u): 0 for u <= -1, 1 for u >= 1, the quintic 6s^5 - 15s^4 + 10s^3 of s = (u + 1) / 2 between (C^2)."""
    s = jnp.clip(0.5 * (u + 1.0), 0.0, 1.0)
    return s * s * s * (s * (6.0 * s - 15.0) + 10.0)


def cell_weights(y: Array, n: int, blend: Array) -> Array:
    """(n,) partition of unity I_0..I_{n-1} of the scalar y over cells 0..n-1 (end cells extended)."""
    steps = smoothstep((y - jnp.arange(n - 1, dtype=y.dtype) - 0.5) / blend)
    return jnp.concatenate([1.0 - steps[:1], steps[:-1] - steps[1:], steps[-1:]]) if n > 1 else jnp.ones(1, y.dtype)


def confine(u: Array, cell: Array, kappa: Array) -> Array:
    """C(u) = -(kappa L / 2 pi) sin(2 pi u): the pull toward the nearest integer u, slope -kappa in x-units."""
    return -(kappa * cell / (2.0 * jnp.pi)) * jnp.sin(2.0 * jnp.pi * u)


def centred(u: Array) -> Array:
    """Gate G(u) = S((cos 2 pi u - m) / w): 1 within 1/4 cell of an integer, 0 beyond 0.4 cells (periodic, C^2);
    m, w the mid-point and half-range of cos 2 pi u over those radii."""
    hi, lo = math.cos(2 * math.pi * GATE_OPEN), math.cos(2 * math.pi * GATE_SHUT)
    return smoothstep((jnp.cos(2.0 * jnp.pi * u) - 0.5 * (hi + lo)) / (0.5 * (hi - lo)))


def frame_shift(phase: Array) -> tuple[Array, Array]:
    """(s, ds/dphase) with s = S(2 phase - 1): 0 for phase <= 0, 1 for phase >= 1 (C^2); the diagonal leg
    of lane j is the curve counters = c + delta_j s(phase)."""
    u = jnp.clip(phase, 0.0, 1.0)
    return smoothstep(2.0 * phase - 1.0), 30.0 * u * u * (1.0 - u) * (1.0 - u)


def two_cells(y: Array, n: int, blend: Array) -> tuple[Array, Array]:
    """The cells carrying the weights `cell_weights` gives y: (lower cell c, weight w of cell c + 1),
    c = clip(floor y, 0, n - 2); I_c = 1 - w and I_{c+1} = w, every other I vanishes (blend < 1/2)."""
    c = jnp.clip(jnp.floor(y), 0, n - 2).astype(jnp.int32)
    return c, smoothstep((y - c - 0.5) / blend)


def groove_drift(field: PinballField, x: Array) -> Array:
    """x/2 + f(x): the grooves' drive plus confinement (the module docstring's sum over Q).

    Only two cells of each coordinate carry weight, so the sums over lattice points Q run over the two
    lanes j in {c, c + 1} of `two_cells(lane)` and the two instructions of `two_cells(pc)`."""
    k1 = field.lane_delta.shape[1]
    k = k1 - 1
    n_lanes = field.lane_delta.shape[0] + 1
    n_ins, n_tape = field.halting.shape[0], field.tape_symbols.shape[0]
    y = x / field.cell
    counters, pc, lane, phase = y[:k1], y[k1], y[k1 + 1], y[k1 + 2]
    b = field.blend
    pi0, pi1, pi2 = cell_weights(phase, 3, b)
    j0, w_lane = two_cells(lane, n_lanes, b)
    lanes = jnp.stack([j0, j0 + 1])                                            # (2,)
    lam = jnp.stack([1.0 - w_lane, w_lane])
    lam0 = jnp.sum(lam * (lanes == 0))
    i0, w_pc = two_cells(pc, n_ins, b)
    # The phase-0 plane read in the frame of lane j: on lane j's diagonal the configuration the rule was
    # read from is counters - delta_j s(phase) (lane 0: no change).
    deltas = jnp.concatenate([jnp.zeros((1, k1), x.dtype), field.lane_delta])[lanes]   # (2, k + 1)
    shift, shift_rate = frame_shift(phase)
    frames = counters[None, :] - deltas * shift
    h0, w_head = jax.vmap(lambda h: two_cells(h, n_tape, b))(frames[:, k])
    nonzero = smoothstep((frames[:, :k] - 0.5) / b)                                   # (2, k)
    pattern = jnp.prod(jnp.where(field.pattern_bits[None] > 0, nonzero[:, None, :], 1.0 - nonzero[:, None, :]),
                       axis=2)                                                         # (2, 2^k)
    # every (pc cell p, head cell h, zero pattern z) the weights touch, per frame j: its rule's lane and weight
    pcs = jnp.stack([i0, i0 + 1])
    symbols = field.tape_symbols[jnp.stack([h0, h0 + 1], axis=1)]                      # (j, h)
    n_sym, n_pat = field.lane_table.shape[1:]
    flat = ((pcs[None, :, None, None] * n_sym + symbols[:, None, :, None]) * n_pat
            + jnp.arange(n_pat)[None, None, None, :])
    rule_lane = jnp.take(field.lane_table.reshape(-1), flat.reshape(-1)).reshape(flat.shape)  # (j, p, h, z)
    weight = (jnp.stack([1.0 - w_pc, w_pc])[None, :, None, None]
              * jnp.stack([1.0 - w_head, w_head], axis=1)[:, None, :, None] * pattern[:, None, None, :])
    here = lanes[:, None, None, None]
    up = jnp.sum(lam[:, None, None, None] * weight * (rule_lane > here))
    down = jnp.sum(lam[:, None, None, None] * weight * (rule_lane < here))
    diag = lam * jnp.sum(weight * (rule_lane == here), axis=(1, 2, 3)) * (lanes > 0)   # (2,)
    on_lane = lam * (lanes > 0)
    target = jnp.concatenate([jnp.zeros(1, jnp.int32), field.lane_target])[lanes]
    rho_below = (1.0 - w_pc) * (i0 < target) + w_pc * (i0 + 1 < target)
    rho_at = (1.0 - w_pc) * (i0 == target) + w_pc * (i0 + 1 == target)
    pc_up = jnp.sum(on_lane * rho_below)
    pc_down = jnp.sum(on_lane * (1.0 - rho_below - rho_at))
    phase_on = jnp.sum(on_lane * rho_at)
    g = centred(y)                                                       # (d,) gates of every coordinate
    g_counters = jnp.prod(g[:k1])
    g_pc, g_lane, g_phase = g[k1], g[k1 + 1], g[k1 + 2]
    g_diag = g_pc * g_lane * jnp.prod(centred(frames), axis=1)           # (2,)
    d_lane = (pi0 * (up - down) - pi2 * (1.0 - lam0)) * g_counters * g_pc * g_phase
    a_lane = pi0 * (up + down) + pi2 * (1.0 - lam0)
    d_pc = pi1 * (pc_up - pc_down) * g_counters * g_lane * g_phase
    a_pc = pi1 * (pc_up + pc_down)
    d_phase = pi0 * jnp.sum(diag * g_diag) + (pi1 * (phase_on - lam0) - pi2 * lam0) * g_counters * g_pc * g_lane
    a_phase = pi0 * jnp.sum(diag) + pi1 * (phase_on + lam0) + pi2 * lam0
    conf = lambda u: confine(u, field.cell, field.kappa)
    phase_drift = field.speed * d_phase + (1.0 - a_phase) * conf(phase)
    # registers and head follow their lane's frame: counters - delta_j s(phase) is confined to the lattice
    counters_drift = lam @ (deltas * (shift_rate * phase_drift) + conf(frames))
    rest = jnp.stack([field.speed * d_pc + (1.0 - a_pc) * conf(pc),
                      field.speed * d_lane + (1.0 - a_lane) * conf(lane),
                      phase_drift])
    return jnp.concatenate([counters_drift, rest])


def force(field: PinballField, x: Array, t: Array | None = None) -> Array:
    """f(x) = -x/2 + groove_drift(x) for ONE point x (d,); time-independent (t is ignored)."""
    return groove_drift(field, x) - 0.5 * x


@static_dataclass
class PinballSDE:
    """The SDE dx = (x/2 + f(x)) dt + noise dW integrated with a fixed step h (static: no traced leaves)."""

    step_size: float = 0.05
    noise: float = 1.0


@dataclasses.dataclass(frozen=True)
class ForwardEulerMaruyama(ContinuousRule):
    """x <- x + (x/2 + f(x)) h + noise sqrt(h) z, z ~ N(0, I); h from the `PinballSDE` passed as the
    driver's dynamics (the driver's grid times t, s only index the steps). One force evaluation a step
    and no carry (`ContinuousRule`'s declarations)."""

    def step(self, sde: PinballSDE, force_fn, x, state, t, s, key):
        z = jax.random.normal(key, x.shape, x.dtype)
        h = sde.step_size
        return x + (0.5 * x + force_fn(x, t)) * h + (sde.noise * math.sqrt(h)) * z, state


def simulate(compiled: Compiled, n_steps: int, *, key: Array, n_seeds: int, sde: PinballSDE = PinballSDE(),
             snapshot_steps=(), mesh=None, block_size: int = 256, pad_to: int | None = None):
    """Final positions (n_seeds, d) (and snapshots) of `n_steps` Euler-Maruyama steps from the start point,
    through `run_chain` (seed i depends only on (key, i))."""
    if not (sde.step_size > 0 and math.isfinite(sde.step_size)) or not sde.noise >= 0:
        raise ValueError(f"step_size must be finite and > 0 and noise >= 0, got {sde}")
    ts = np.linspace(1.0, 0.0, int(n_steps) + 1)
    fn = jax.tree_util.Partial(force, compiled.field)
    init = constant(compiled.start())
    d = compiled.field.dim
    return run_chain(fn, sde, ForwardEulerMaruyama(), ts, key=key, n_seeds=n_seeds, init_fn=init,
                     shape=(d,), fn_out_shape=(d,), snapshot_steps=snapshot_steps, mesh=mesh,
                     block_size=block_size, pad_to=pad_to)


@dataclasses.dataclass(frozen=True)
class Decoded:
    """What the ball's position says, per seed: nearest lattice point and whether it is a HALT rest point."""

    registers: np.ndarray  # (n, k)
    head: np.ndarray       # (n,)
    pc: np.ndarray         # (n,)
    halted: np.ndarray     # (n,) bool: at lane 0, phase 0, on a HALT instruction
    accepted: np.ndarray   # (n,) bool (meaningful where halted)


def decode(compiled: Compiled, x) -> Decoded:
    """Read registers, head, program counter and halting state from positions x (n, d)."""
    q = np.rint(np.asarray(x, np.float64) / float(compiled.field.cell)).astype(np.int64)
    k = compiled.machine.n_registers
    n_ins = len(compiled.machine.instructions)
    pc = q[:, k + 1]
    safe = np.clip(pc, 0, n_ins - 1)
    halting, accepting = np.asarray(compiled.field.halting), np.asarray(compiled.field.accepting)
    at_rest = (q[:, k + 2] == 0) & (q[:, k + 3] == 0) & (pc == safe)
    return Decoded(q[:, :k], q[:, k], pc, at_rest & halting[safe], at_rest & halting[safe] & accepting[safe])


def walk_cells(compiled: Compiled, trace) -> int:
    """Cells the ball travels along the walks of a run's `trace` (configurations from `run`):
    per instruction 2 l + |t - i| + 4 (lane up and down, the diagonal, pc, phase 1 -> 2 -> 0)."""
    lane_of = {pair: j + 1 for j, pair in enumerate(compiled.lanes)}
    total = 0
    for before, after in zip(trace[:-1], trace[1:]):
        delta = tuple(b - a for a, b in zip(before.registers, after.registers)) + (after.head - before.head,)
        total += 2 * lane_of[(after.pc, delta)] + abs(after.pc - before.pc) + 4
    return total


def steps_needed(compiled: Compiled, trace, sde: PinballSDE, margin: float = 1.5, settle_cells: float = 2.0) -> int:
    """SDE steps for the run: margin x (walk cells + settle_cells) x L / speed / h."""
    cells = walk_cells(compiled, trace) + settle_cells
    return int(math.ceil(margin * cells * float(compiled.field.cell) / float(compiled.field.speed) / sde.step_size))
