"""Benchmark of the pinball machine: seeds x SDE steps per second through the driver vs a numpy loop.

    python -m benchmarks.pinball [--quick] [--repeats R]

The program is `multiply` on a^10 b^10 (242 machine steps, d = 7, 8 lanes), compiled at L = 8 with the
default forces. Both sides run the same Euler-Maruyama loop x <- x + (x/2 + f(x)) h + sqrt(h) z for
`steps` steps from the start point over B seeds (the first `steps` of the run; a whole run at L = 8
takes 5.2e5 steps, too long for the numpy side):

    driver   `force_field.simulate` (one vmapped block of B / devices seeds per device), on one XLA device
             and sharded over every local device (this script, like `sample.py`, exposes one per CPU core)
    numpy    `numpy_drift` below (the same field, written for a (B, d) batch in numpy) in a Python loop

Metric: B x steps / median wall time (compilation excluded: each callable runs once first), and the
ratio driver / numpy; target >= 10. The script also prints max |f_numpy - f_jax| on random points
(the two implementations must agree; float32 vs float64). `--quick` shrinks B, steps and repeats.
"""

from __future__ import annotations

import os

if "xla_force_host_platform_device_count" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") +
                               f" --xla_force_host_platform_device_count={os.cpu_count() or 1}").strip()

import dataclasses  # noqa: E402
import math  # noqa: E402

import jax  # noqa: E402
import numpy as np  # noqa: E402

from benchmarks.timing import Row, median_times, parse_cli, print_table  # noqa: E402
from diffserial.pinball import force_field as ff  # noqa: E402
from diffserial.pinball.programs import multiply  # noqa: E402
from diffserial.samplers import seed_mesh  # noqa: E402

WORD = "a" * 10 + "b" * 10


@dataclasses.dataclass(frozen=True)
class Config:
    """Sizes of one benchmark run."""

    batches: tuple[int, ...] = (64, 256, 2048)
    steps: int = 1000
    repeats: int = 3


QUICK = Config(batches=(256,), steps=100, repeats=2)


def _smooth(u):
    s = np.clip(0.5 * (u + 1.0), 0.0, 1.0)
    return s * s * s * (s * (6.0 * s - 15.0) + 10.0)


def _centred(u):
    hi, lo = math.cos(2 * math.pi * ff.GATE_OPEN), math.cos(2 * math.pi * ff.GATE_SHUT)
    return _smooth((np.cos(2 * np.pi * u) - 0.5 * (hi + lo)) / (0.5 * (hi - lo)))


def _two_cells(y, n, b):
    c = np.clip(np.floor(y), 0, n - 2).astype(np.int64)
    return c, _smooth((y - c - 0.5) / b)


def numpy_drift(field: dict, x: np.ndarray) -> np.ndarray:
    """x/2 + f(x) for a batch x (B, d): `force_field.groove_drift` transcribed to numpy (float64)."""
    L, b, v, kappa = field["cell"], field["blend"], field["speed"], field["kappa"]
    lane_delta, lane_target, lane_table = field["lane_delta"], field["lane_target"], field["lane_table"]
    tape, bits = field["tape_symbols"], field["pattern_bits"]
    k1 = lane_delta.shape[1]
    k, n_lanes, n_tape = k1 - 1, lane_delta.shape[0] + 1, tape.shape[0]
    n_ins, n_sym, n_pat = lane_table.shape
    y = x / L
    counters, pc, lane, phase = y[:, :k1], y[:, k1], y[:, k1 + 1], y[:, k1 + 2]
    s0, s1 = _smooth((phase - 0.5) / b), _smooth((phase - 1.5) / b)
    pi0, pi1, pi2 = 1.0 - s0, s0 - s1, s1
    j0, w_lane = _two_cells(lane, n_lanes, b)
    lanes = np.stack([j0, j0 + 1], 1)
    lam = np.stack([1.0 - w_lane, w_lane], 1)
    lam0 = np.sum(lam * (lanes == 0), 1)
    i0, w_pc = _two_cells(pc, n_ins, b)
    deltas = np.concatenate([np.zeros((1, k1)), lane_delta])[lanes]                       # (B, 2, k1)
    p = np.clip(phase, 0.0, 1.0)
    shift, rate = _smooth(2.0 * phase - 1.0), 30.0 * p * p * (1 - p) * (1 - p)
    frames = counters[:, None, :] - deltas * shift[:, None, None]
    h0, w_head = _two_cells(frames[:, :, k], n_tape, b)                                   # (B, 2)
    nonzero = _smooth((frames[:, :, :k] - 0.5) / b)
    pattern = np.prod(np.where(bits[None, None] > 0, nonzero[:, :, None, :], 1.0 - nonzero[:, :, None, :]), 3)
    pcs = np.stack([i0, i0 + 1], 1)                                                       # (B, p)
    symbols = tape[np.stack([h0, h0 + 1], 2)]                                             # (B, j, h)
    rule_lane = lane_table[pcs[:, None, :, None, None], symbols[:, :, None, :, None],
                           np.arange(n_pat)[None, None, None, None, :]]                   # (B, j, p, h, z)
    weight = (np.stack([1.0 - w_pc, w_pc], 1)[:, None, :, None, None]
              * np.stack([1.0 - w_head, w_head], 2)[:, :, None, :, None] * pattern[:, :, None, None, :])
    here = lanes[:, :, None, None, None]
    lam5 = lam[:, :, None, None, None]
    up = np.sum(lam5 * weight * (rule_lane > here), (1, 2, 3, 4))
    down = np.sum(lam5 * weight * (rule_lane < here), (1, 2, 3, 4))
    diag = lam * np.sum(weight * (rule_lane == here), (2, 3, 4)) * (lanes > 0)
    on_lane = lam * (lanes > 0)
    target = np.concatenate([[0], lane_target])[lanes]
    below = (1.0 - w_pc)[:, None] * (i0[:, None] < target) + w_pc[:, None] * (i0[:, None] + 1 < target)
    at = (1.0 - w_pc)[:, None] * (i0[:, None] == target) + w_pc[:, None] * (i0[:, None] + 1 == target)
    pc_up, pc_down = np.sum(on_lane * below, 1), np.sum(on_lane * (1.0 - below - at), 1)
    phase_on = np.sum(on_lane * at, 1)
    g = _centred(y)
    g_counters = np.prod(g[:, :k1], 1)
    g_pc, g_lane, g_phase = g[:, k1], g[:, k1 + 1], g[:, k1 + 2]
    g_diag = g_pc[:, None] * g_lane[:, None] * np.prod(_centred(frames), 2)
    d_lane = (pi0 * (up - down) - pi2 * (1.0 - lam0)) * g_counters * g_pc * g_phase
    a_lane = pi0 * (up + down) + pi2 * (1.0 - lam0)
    d_pc, a_pc = pi1 * (pc_up - pc_down) * g_counters * g_lane * g_phase, pi1 * (pc_up + pc_down)
    d_phase = pi0 * np.sum(diag * g_diag, 1) + (pi1 * (phase_on - lam0) - pi2 * lam0) * g_counters * g_pc * g_lane
    a_phase = pi0 * np.sum(diag, 1) + pi1 * (phase_on + lam0) + pi2 * lam0
    conf = lambda u: -(kappa * L / (2 * np.pi)) * np.sin(2 * np.pi * u)
    phase_drift = v * d_phase + (1.0 - a_phase) * conf(phase)
    counters_drift = np.einsum("nj,njc->nc", lam, deltas * (rate * phase_drift)[:, None, None] + conf(frames))
    rest = np.stack([v * d_pc + (1.0 - a_pc) * conf(pc), v * d_lane + (1.0 - a_lane) * conf(lane), phase_drift], 1)
    return np.concatenate([counters_drift, rest], 1)


def numpy_loop(field: dict, start: np.ndarray, batch: int, steps: int, h: float, seed: int = 0) -> np.ndarray:
    """The Euler-Maruyama loop over a batch in numpy (one vectorised step per iteration)."""
    rng = np.random.default_rng(seed)
    x = np.tile(start.astype(np.float64), (batch, 1))
    for _ in range(steps):
        x = x + numpy_drift(field, x) * h + math.sqrt(h) * rng.standard_normal(x.shape)
    return x


def main() -> None:
    args, cfg, _ = parse_cli(__doc__.splitlines()[0], ("throughput",), Config(), QUICK)
    device = jax.devices()[0]
    print(f"jax {jax.__version__}; device {device.platform}:{device.device_kind} (x{jax.device_count()}); "
          f"CPUs {os.cpu_count()}; {'QUICK' if args.quick else 'full'} run, median of {cfg.repeats}")
    compiled = ff.compile_machine(multiply(), WORD, ff.PinballParams(cell=8.0))
    field = {f.name: np.asarray(getattr(compiled.field, f.name), np.float64)
             for f in dataclasses.fields(compiled.field)}
    for name in ("lane_target", "lane_table", "tape_symbols"):
        field[name] = field[name].astype(np.int64)
    sde = ff.PinballSDE()
    rng = np.random.default_rng(1)
    points = rng.uniform(-0.5, 1.0, (512, compiled.field.dim)) * compiled.field.cell * np.array(
        [3, 3, 3, 22, 6, len(compiled.lanes) + 1, 3])
    jax_f = np.asarray(jax.vmap(ff.groove_drift, (None, 0))(compiled.field, points.astype(np.float32)))
    print(f"max |f_numpy - f_jax| on 512 random points: {np.max(np.abs(numpy_drift(field, points) - jax_f)):.2e}")
    meshes = {"driver 1 device": seed_mesh(jax.devices()[:1]), "driver all devices": seed_mesh()}
    rows = []
    for batch in cfg.batches:
        fns = {name: (lambda m=mesh: ff.simulate(compiled, cfg.steps, key=jax.random.key(0), n_seeds=batch, sde=sde,
                                                 mesh=m, block_size=-(-batch // m.size))[0])
               for name, mesh in meshes.items()}
        fns["numpy"] = lambda: numpy_loop(field, compiled.start(), batch, cfg.steps, sde.step_size)
        t = median_times(fns, cfg.repeats)
        for name in meshes:
            setting = f"multiply a^10b^10 L=8 B={batch} steps={cfg.steps} {name}"
            print(f"  {setting}: {batch * cfg.steps / t[name] / 1e6:.3f} M seed-steps/s; numpy "
                  f"{batch * cfg.steps / t['numpy'] / 1e6:.4f} M seed-steps/s")
            rows.append(Row("speed-up vs numpy loop", setting, t["numpy"] / t[name], ">=", 10.0))
    print()
    print_table(rows)


if __name__ == "__main__":
    main()
