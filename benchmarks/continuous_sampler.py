"""Benchmarks of the continuous-state sampling driver with a small MLP score network.

    python -m benchmarks.continuous_sampler [--quick]

Every ratio is measured side by side in one process: each compared callable is called once first
(compilation excluded), then all are timed in interleaved rounds and the median wall time of each is
kept. Metrics (see benchmarks/README.md):

    efficiency   T t_forward(B) / t_sample(B, T)                          target >= 0.95
    speed-up     t_python_loop(B, T) / t_sample(B, T)                     target >= 3
    throughput   t_diffrax(B, T) / t_sample(B, T), equal NFE, same grid   target >= 1.1
    memory       compiled bytes (T = 1000) / compiled bytes (T = 10)      target <= 1.1

Beside each throughput row the script times two references from the same initial draws: a bare
`jax.jit(lax.scan(vmapped rule step))` (the ceiling any loop around the same step can reach:
t_diffrax / t_bare) and a scan of the score forwards alone (t_forward_scan / t_bare: the fraction of
a step spent in the score). Sections `tiny` and `gmm` repeat the loop and diffrax rows with a width-16
MLP and with the exact score of a 2-component Gaussian mixture (cheap scores: the loop's own cost shows).

The driver runs with block_size = min(B, 1024) unless a row says otherwise. `--quick` shrinks the batch
sizes, step counts and repeats to check the script in well under a minute; its numbers are not the
benchmark's.
"""

from __future__ import annotations

import dataclasses
import functools
import os

import diffrax
import jax
import jax.numpy as jnp
import lineax
import numpy as np

from benchmarks.timing import Row, median_times, parse_cli, print_table
from diffserial.models.mlp import ScoreMLP, score_fn_from
from diffserial.processes.gaussian import VPLinear
from diffserial.samplers import DEFAULT_BLOCK_SIZE, continuous_grid, continuous_sampler, sample_continuous
from diffserial.targets import gmm

PROCESS = VPLinear()
MODEL = ScoreMLP(hidden=128, n_blocks=2, embed_dim=64)
# A much smaller net for the dispatch-bound regime the Python-loop and diffrax targets describe: on a
# CPU the width-128 forward alone costs about as much as a host dispatch per step.
TINY_MODEL = ScoreMLP(hidden=16, n_blocks=1, embed_dim=16)
DIM = 2
# An exact score as cheap as a score gets (a few dozen flops per sample).
EXACT_TARGET = dict(weights=[0.3, 0.7], means=[[-2.0, 0.0], [1.5, 1.0]], variances=[[0.25, 0.5], [0.5, 0.3]])
KEY = jax.random.key(0)
GRID = "uniform"


@dataclasses.dataclass(frozen=True)
class Config:
    """Sizes of one benchmark run."""

    eff_batches: tuple[int, ...] = (1024, 16384)
    eff_steps: tuple[int, ...] = (64, 512)
    loop_batch: int = 64
    loop_steps: int = 512
    diffrax_batches: tuple[int, ...] = (64, 1024)
    diffrax_steps: int = 256
    memory_batch: int = 16384
    memory_steps: tuple[int, int] = (10, 1000)
    repeats: int = 5


QUICK = Config(eff_batches=(2048,), eff_steps=(8,), loop_batch=64, loop_steps=64, diffrax_batches=(64,),
               diffrax_steps=32, repeats=2)


def relative_difference(a, b) -> float:
    """max |a - b| / max |b|: how far two runs of the same computation drift apart in float32."""
    a, b = np.asarray(a), np.asarray(b)
    return float(np.max(np.abs(a - b)) / np.max(np.abs(b)))


def make_score_fn(model: ScoreMLP = MODEL) -> jax.tree_util.Partial:
    """A score network with random weights, as a traced-params score_fn."""
    params = jax.jit(model.init)(jax.random.key(1), jnp.zeros(DIM), 0.5)["params"]
    return score_fn_from(model, params)


def driver_call(score_fn, rule_name: str, batch: int, steps: int, block_size: int | None = None):
    """A thunk sampling `batch` seeds over a `steps`-step grid with the driver."""
    ts = continuous_grid(GRID, PROCESS, steps)
    rule = continuous_sampler(rule_name)
    block = block_size or min(batch, DEFAULT_BLOCK_SIZE)
    return lambda: sample_continuous(score_fn, PROCESS, rule, ts, key=KEY, n_seeds=batch, shape=(DIM,),
                                 block_size=block)


@jax.jit
def _forward(score_fn, x, t):
    """Batched forward of the score network: score_fn vmapped over x at one time t, as in a step."""
    return jax.vmap(score_fn, (0, None))(x, t)


def efficiency_rows(score_fn, cfg: Config) -> list[Row]:
    """T t_forward(B) / t_sample(B, T) for pf_euler and euler_maruyama, block_size min(B, 1024) and B."""
    rows = []
    for batch in cfg.eff_batches:
        x = jax.random.normal(jax.random.key(2), (batch, DIM))
        for steps in cfg.eff_steps:
            for rule_name in ("pf_euler", "euler_maruyama"):
                blocks = sorted({min(batch, DEFAULT_BLOCK_SIZE), batch})
                fns = {"forward": lambda: _forward(score_fn, x, jnp.float32(0.5))}
                fns |= {b: driver_call(score_fn, rule_name, batch, steps, b) for b in blocks}
                t = median_times(fns, cfg.repeats)
                for b in blocks:
                    value = steps * t["forward"] / t[b]
                    setting = f"{rule_name} B={batch} T={steps} block={b}"
                    print(f"  {setting}: forward {1e3 * t['forward']:.3f} ms, sample {1e3 * t[b]:.1f} ms")
                    rows.append(Row("efficiency", setting, value, ">=", 0.95))
    return rows


@functools.partial(jax.jit, static_argnames=("n_seeds", "shape", "rule"))
def initial_draws(key, *, n_seeds, shape, rule):
    """Initial x, rule state and per-seed step keys of seeds 0..n-1, by the driver's seed contract."""
    seed_keys = jax.vmap(jax.random.fold_in, (None, 0))(key, jnp.arange(n_seeds, dtype=jnp.uint32))
    x = jax.vmap(lambda k: PROCESS.prior_sample(jax.random.fold_in(k, 0), shape))(seed_keys)
    step_keys = jax.vmap(jax.random.fold_in, (0, None))(seed_keys, 1)
    return x, jax.vmap(rule.init_state)(x), step_keys


@functools.partial(jax.jit, static_argnames=("rule",))
def _loop_step(score_fn, x, state, step_keys, k, t, s, *, rule):
    """Step k of `rule` from t to s for every seed (vmapped), with the driver's step keys."""
    def one(x, state, step_key):
        return rule.step(PROCESS, score_fn, x, state, t, s, jax.random.fold_in(step_key, k))

    return jax.vmap(one)(x, state, step_keys)


def python_loop_call(score_fn, rule_name: str, batch: int, steps: int):
    """A thunk running the same update rule from a Python for-loop: one jitted call per step."""
    ts = np.asarray(continuous_grid(GRID, PROCESS, steps))
    rule = continuous_sampler(rule_name)

    def run():
        x, state, step_keys = initial_draws(KEY, n_seeds=batch, shape=(DIM,), rule=rule)
        for k in range(steps):
            x, state = _loop_step(score_fn, x, state, step_keys, k, ts[k], ts[k + 1], rule=rule)
        return x

    return run


def python_loop_rows(score_fn, cfg: Config, net: str = "mlp128x2") -> list[Row]:
    """t_python_loop / t_sample at (loop_batch, loop_steps); also how far apart the two results are."""
    rows = []
    for rule_name in ("pf_euler", "euler_maruyama"):
        fns = {"loop": python_loop_call(score_fn, rule_name, cfg.loop_batch, cfg.loop_steps),
               "driver": driver_call(score_fn, rule_name, cfg.loop_batch, cfg.loop_steps)}
        t = median_times(fns, cfg.repeats)
        diff = relative_difference(fns["loop"](), fns["driver"]())
        setting = f"{rule_name} {net} B={cfg.loop_batch} T={cfg.loop_steps}"
        print(f"  {setting}: loop {1e3 * t['loop']:.1f} ms, driver {1e3 * t['driver']:.1f} ms, "
              f"relative difference {diff:.1e}")
        rows.append(Row("speed-up vs Python loop", setting, t["loop"] / t["driver"], ">=", 3.0))
    return rows


# rule -> (diffrax solver, whether the reverse SDE (else the probability-flow ODE) is solved).
DIFFRAX_SOLVERS = {"euler_maruyama": (diffrax.Euler, True), "pf_euler": (diffrax.Euler, False),
                   "pf_heun": (diffrax.Heun, False)}


def _diffrax_terms(score_fn, stochastic: bool, key):
    """dx = (f x - g^2 score) dt + g dW (reverse SDE) or dx/dt = f x - g^2 score / 2, integrated from 1 down.

    diffrax integrates backwards in time (t0 > t1) by negating t, so Euler is `euler_maruyama` / `pf_euler`
    step for step; the Brownian increments come from an `UnsafeBrownianPath` (fixed steps, no adjoint).
    """
    def velocity(t, x, args):
        drift = PROCESS.reverse_drift if stochastic else PROCESS.pf_drift
        return drift(x, t, score_fn(x, t))

    if not stochastic:
        return diffrax.ODETerm(velocity)

    def diffusion(t, x, args):
        return lineax.DiagonalLinearOperator(jnp.full_like(x, PROCESS.diffusion(t)))

    brownian = diffrax.UnsafeBrownianPath(shape=(DIM,), key=key)
    return diffrax.MultiTerm(diffrax.ODETerm(velocity), diffrax.ControlTerm(diffusion, brownian))


@functools.partial(jax.jit, static_argnames=("rule_name",))
def _diffrax_sample(score_fn, x1, keys, ts, *, rule_name):
    """diffeqsolve vmapped over seeds, stepping to exactly the grid ts, with the forward-mode adjoint
    (`diffrax.ForwardMode`: a plain lax.while_loop, no checkpointing)."""
    solver, stochastic = DIFFRAX_SOLVERS[rule_name]

    def solve(x, key):
        sol = diffrax.diffeqsolve(
            _diffrax_terms(score_fn, stochastic, key), solver(), ts[0], ts[-1], dt0=None, y0=x,
            stepsize_controller=diffrax.StepTo(ts), adjoint=diffrax.ForwardMode(),
            saveat=diffrax.SaveAt(t1=True), max_steps=ts.shape[0] - 1)
        return sol.ys[-1]

    return jax.vmap(solve)(x1, keys)


def diffrax_call(score_fn, rule_name: str, batch: int, steps: int):
    """A thunk solving the same problem with diffrax from the driver's initial draws (drawn beforehand)."""
    x1, _, keys = initial_draws(KEY, n_seeds=batch, shape=(DIM,), rule=continuous_sampler(rule_name))
    ts = continuous_grid(GRID, PROCESS, steps)
    return lambda: _diffrax_sample(score_fn, x1, keys, ts, rule_name=rule_name)


@functools.partial(jax.jit, static_argnames=("rule",))
def _bare_scan(score_fn, x, state, step_keys, ts, *, rule):
    """`rule` vmapped over seeds in one `lax.scan` over the grid, with the driver's step keys: the
    driver's loop without its blocks, sharding, traced step count or initial draws."""
    def body(carry, inputs):
        k, t, s = inputs
        return _loop_step(score_fn, *carry, step_keys, k, t, s, rule=rule), None

    (x, _), _ = jax.lax.scan(body, (x, state), (jnp.arange(ts.shape[0] - 1), ts[:-1], ts[1:]))
    return x


def bare_scan_call(score_fn, rule_name: str, batch: int, steps: int):
    """A thunk running `_bare_scan` from the driver's initial draws (drawn beforehand)."""
    rule = continuous_sampler(rule_name)
    x1, state, keys = initial_draws(KEY, n_seeds=batch, shape=(DIM,), rule=rule)
    ts = continuous_grid(GRID, PROCESS, steps)
    return lambda: _bare_scan(score_fn, x1, state, keys, ts, rule=rule)


@jax.jit
def _forward_scan(score_fn, x, times):
    """x <- score_fn(x, t) vmapped over seeds, for t in `times`: the score forwards of a run alone."""
    def body(x, t):
        return jax.vmap(score_fn, (0, None))(x, t), None

    return jax.lax.scan(body, x, times)[0]


def forward_scan_call(score_fn, rule_name: str, batch: int, steps: int):
    """A thunk running the nfe_per_step x steps score forwards of a run, at the grid's times."""
    rule = continuous_sampler(rule_name)
    x1, _, _ = initial_draws(KEY, n_seeds=batch, shape=(DIM,), rule=rule)
    times = jnp.repeat(continuous_grid(GRID, PROCESS, steps)[:-1], rule.nfe_per_step)
    return lambda: _forward_scan(score_fn, x1, times)


def diffrax_rows(score_fn, cfg: Config, net: str = "mlp128x2") -> list[Row]:
    """t_diffrax / t_sample at equal NFE, with the bare-scan ceiling t_diffrax / t_bare and the score's
    share t_forward_scan / t_bare; how far the driver is from the bare scan (bitwise: 0) and, for the
    ODEs, from diffrax."""
    rows = []
    for batch in cfg.diffrax_batches:
        for rule_name in DIFFRAX_SOLVERS:
            steps = cfg.diffrax_steps
            fns = {"diffrax": diffrax_call(score_fn, rule_name, batch, steps),
                   "driver": driver_call(score_fn, rule_name, batch, steps),
                   "bare": bare_scan_call(score_fn, rule_name, batch, steps),
                   "forward": forward_scan_call(score_fn, rule_name, batch, steps)}
            t = median_times(fns, cfg.repeats)
            setting = f"{rule_name} {net} B={batch} T={steps}"
            check = f"driver vs bare {relative_difference(fns['bare'](), fns['driver']()):.1e}"
            if not DIFFRAX_SOLVERS[rule_name][1]:
                check += f", vs diffrax {relative_difference(fns['diffrax'](), fns['driver']()):.1e}"
            print(f"  {setting}: " + ", ".join(f"{name} {1e6 * v / steps:.1f}" for name, v in t.items())
                  + f" us/step; diffrax/bare {t['diffrax'] / t['bare']:.3f}, bare/driver "
                  f"{t['bare'] / t['driver']:.3f}, forward/bare {t['forward'] / t['bare']:.3f}; "
                  f"relative difference {check}")
            rows.append(Row("throughput vs diffrax", setting, t["diffrax"] / t["driver"], ">=", 1.1))
    return rows


def compiled_bytes(score_fn, rule_name: str, batch: int, steps: int) -> int:
    """Argument + output + temporary bytes of the compiled sampling program (compiled, not run).

    `sample_continuous` is jitted as a whole with the grid and key concrete, so the loop's program compiles
    inline with the very arguments `sample_continuous` prepares; score_fn (the weights) stays an argument.
    """
    ts = continuous_grid(GRID, PROCESS, steps)
    rule = continuous_sampler(rule_name)
    block = min(batch, DEFAULT_BLOCK_SIZE)

    def run(score_fn):
        return sample_continuous(score_fn, PROCESS, rule, ts, key=KEY, n_seeds=batch, shape=(DIM,), block_size=block)

    stats = jax.jit(run).lower(score_fn).compile().memory_analysis()
    return stats.argument_size_in_bytes + stats.output_size_in_bytes + stats.temp_size_in_bytes


def memory_rows(score_fn, cfg: Config) -> list[Row]:
    """Compiled bytes at the longest grid over those at the shortest."""
    rows = []
    short, long = cfg.memory_steps
    for rule_name in ("euler_maruyama", "pf_heun"):
        small, big = (compiled_bytes(score_fn, rule_name, cfg.memory_batch, steps) for steps in (short, long))
        setting = f"{rule_name} B={cfg.memory_batch} T={long} vs {short}"
        print(f"  {setting}: {small / 2**20:.3f} MiB -> {big / 2**20:.3f} MiB")
        rows.append(Row("memory ratio", setting, big / small, "<=", 1.1))
    return rows


def main() -> None:
    args, cfg, sections = parse_cli(__doc__.splitlines()[0],
                                    ("efficiency", "loop", "diffrax", "memory", "tiny", "gmm"), Config(), QUICK)
    device = jax.devices()[0]
    print(f"jax {jax.__version__}, diffrax {diffrax.__version__}; device {device.platform}:{device.device_kind} "
          f"(x{jax.device_count()}); CPUs {os.cpu_count()}; {'QUICK' if args.quick else 'full'} run, "
          f"median of {cfg.repeats}")
    score_fn = make_score_fn()
    rows = []
    for name, title, measure in (("efficiency", "efficiency", efficiency_rows),
                                 ("loop", "speed-up vs Python loop", python_loop_rows),
                                 ("diffrax", "throughput vs diffrax", diffrax_rows), ("memory", "memory", memory_rows)):
        if name in sections:
            print(f"{title}:")
            rows += measure(score_fn, cfg)
    cheap_scores = {"tiny": ("mlp16x1", lambda: make_score_fn(TINY_MODEL)),
                    "gmm": ("gmm2", lambda: gmm.score_fn(gmm.GaussianMixture.create(**EXACT_TARGET), PROCESS))}
    for section, (net, make) in cheap_scores.items():
        if section in sections:
            cheap = make()
            for title, measure in (("speed-up vs Python loop", python_loop_rows),
                                   ("throughput vs diffrax", diffrax_rows)):
                print(f"{title} ({net}):")
                rows += measure(cheap, cfg, net)
    print()
    print_table(rows)


if __name__ == "__main__":
    main()
