"""Benchmarks of the masked (absorbing-state) samplers with a small Transformer predictor, and of the
histogram behind the TV metric.

    python -m benchmarks.masked_sampler [--quick] [--repeats R]

Every ratio is measured side by side in one process: each compared callable is called once first
(compilation excluded), then all are timed in interleaved rounds and the median wall time of each is
kept. Metrics (see benchmarks/README.md):

    per-step cost    t_sample(B, T) / (T t_forward(B)), ancestral and topk_confidence     target <= 1.10
    remasking cost   t(rule) / t(ancestral) at equal B, L, T, same predictor               target <= 1.15
                     for remdm_rescale, remdm_conf, revision (revision: 2 NFE per step; its
                     cost per NFE, t(revision) / (2 t(ancestral)), is reported as well)
    histogram        t(np.bincount(cells, minlength=K)) / t(metrics.tv.histogram(cells, K)),
                     10^7 int64 cells, K = 2^16                                            target >= 1.0

The predictor is `diffserial.models.transformer.MaskedTransformer` (time-free, random weights) passed as
a traced `predictor_from` Partial; the schedule is linear, the grid uniform, block_size min(B, 1024). The
warm-up call of each sampler compiles its program on a 1-step grid padded to T steps (`pad_to`: the
same program, one step run), so the warm-up costs a compilation, not a whole sampling run; the script
checks that the timed calls compile nothing new. `--quick` shrinks the sizes to check the script in
under a minute; its numbers are not the benchmark's.
"""

from __future__ import annotations

import dataclasses
import os
import time

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks.timing import Row, median_times, parse_cli, print_table
from diffserial.metrics.tv import histogram
from diffserial.models.transformer import MaskedTransformer, predictor_from
from diffserial.processes.masked import Linear
from diffserial.samplers import compiled_programs, masked_grid, masked_sampler, sample_masked

SCHEDULE = Linear()
KEY = jax.random.key(0)
BLOCK_SIZE = 1024


@dataclasses.dataclass(frozen=True)
class Config:
    """Sizes of one benchmark run."""

    batch: int = 4096
    length: int = 64
    vocab_size: int = 2
    width: int = 32
    depth: int = 2
    heads: int = 4
    mlp_ratio: int = 4
    step_steps: int = 16         # T of the per-step-cost rows
    remask_steps: int = 8        # T of the remasking rows
    repeats: int = 3
    hist_samples: int = 10**7
    hist_cells: int = 2**16
    hist_repeats: int = 7


QUICK = Config(batch=256, step_steps=4, remask_steps=4, repeats=2, hist_samples=10**6, hist_repeats=3)


def make_predictor(cfg: Config) -> jax.tree_util.Partial:
    """The benchmark's Transformer with random weights, as a traced-params predictor."""
    model = MaskedTransformer(vocab_size=cfg.vocab_size, max_len=cfg.length, width=cfg.width, depth=cfg.depth,
                              heads=cfg.heads, mlp_ratio=cfg.mlp_ratio)
    params = jax.jit(model.init)(jax.random.key(1), jnp.zeros((cfg.length,), jnp.int32))["params"]
    n_params = sum(int(np.prod(p.shape)) for p in jax.tree.leaves(params))
    print(f"  predictor: MaskedTransformer(V={cfg.vocab_size}, L={cfg.length}, width={cfg.width}, depth={cfg.depth}, "
          f"heads={cfg.heads}, mlp_ratio={cfg.mlp_ratio}, time-free), {n_params} parameters")
    return predictor_from(model, params)


def sampler_call(predictor, cfg: Config, rule_name: str, steps: int, run_steps: int | None = None):
    """A thunk sampling cfg.batch sequences with `rule_name` on a uniform grid of `run_steps` (default
    `steps`) steps, compiled for `steps` (pad_to)."""
    rule = masked_sampler(rule_name)
    ts = masked_grid(run_steps or steps)
    return lambda: sample_masked(predictor, SCHEDULE, rule, ts, key=KEY, n_seeds=cfg.batch, length=cfg.length,
                                        vocab_size=cfg.vocab_size, block_size=min(cfg.batch, BLOCK_SIZE),
                                        pad_to=steps)


@jax.jit
def _forward(predictor, x, t):
    """Batched forward of the predictor: vmapped over sequences at one time t, as inside a step."""
    return jax.vmap(predictor, (0, None))(x, t)


def forward_call(predictor, cfg: Config, batch: int):
    """A thunk running one forward of `batch` random sequences, about half their positions masked."""
    k1, k2 = jax.random.split(jax.random.key(2))
    tokens = jax.random.randint(k1, (batch, cfg.length), 0, cfg.vocab_size, dtype=jnp.int32)
    x = jnp.where(jax.random.bernoulli(k2, 0.5, tokens.shape), jnp.int32(cfg.vocab_size), tokens)
    return lambda: _forward(predictor, x, jnp.float32(0.5))


def _timed_samplers(predictor, cfg: Config, names: tuple[str, ...], steps: int, extra=None):
    """Median times of the samplers `names` at `steps` steps (and of the `extra` thunks), after warm-ups
    on 1-step grids compiled for `steps`; checks that the timed calls compile nothing new."""
    fns = dict(extra or {}) | {n: sampler_call(predictor, cfg, n, steps) for n in names}
    warm = {n: sampler_call(predictor, cfg, n, steps, run_steps=1) for n in names}
    start = time.perf_counter()
    for fn in warm.values():
        jax.block_until_ready(fn())
    print(f"    compile + 1-step warm-up of {len(names)} samplers: {time.perf_counter() - start:.1f} s")
    cache = compiled_programs()
    t = median_times(fns, cfg.repeats, verbose=True, warmups={n: lambda: None for n in names})  # samplers: warmed above
    if compiled_programs() != cache:
        raise RuntimeError("a timed sampling call compiled a new program: the warm-up did not match")
    return t


def step_cost_rows(predictor, cfg: Config) -> list[Row]:
    """t_sample(B, T) / (T t_forward(B)) for ancestral and topk_confidence."""
    steps, names = cfg.step_steps, ("ancestral", "topk_confidence")
    block = min(cfg.batch, BLOCK_SIZE)
    extra = {"forward(B)": forward_call(predictor, cfg, cfg.batch)}
    if block < cfg.batch:
        extra[f"forward({block})"] = forward_call(predictor, cfg, block)
    t = _timed_samplers(predictor, cfg, names, steps, extra)
    if block < cfg.batch:
        n_blocks = -(-cfg.batch // block)
        print(f"  forward: B={cfg.batch} in one call {1e3 * t['forward(B)']:.1f} ms; {n_blocks} calls of {block} "
              f"(the driver's blocks) {1e3 * n_blocks * t[f'forward({block})']:.1f} ms")
    rows = []
    for name in names:
        value = t[name] / (steps * t["forward(B)"])
        setting = f"{name} B={cfg.batch} L={cfg.length} T={steps}"
        per_step = t[name] / steps
        print(f"  {setting}: sample {1e3 * t[name]:.1f} ms = {1e3 * per_step:.1f} ms/step, forward "
              f"{1e3 * t['forward(B)']:.1f} ms")
        rows.append(Row("per-step cost vs forward", setting, value, "<=", 1.10))
    return rows


def remask_rows(predictor, cfg: Config) -> list[Row]:
    """t(rule) / t(ancestral) at equal steps for the remasking samplers; revision also per NFE."""
    steps = cfg.remask_steps
    names = ("ancestral", "remdm_rescale", "remdm_conf", "revision")
    t = _timed_samplers(predictor, cfg, names, steps)
    rows = []
    for name in names[1:]:
        setting = f"{name} B={cfg.batch} L={cfg.length} T={steps}"
        print(f"  {setting}: {1e3 * t[name]:.1f} ms vs ancestral {1e3 * t['ancestral']:.1f} ms")
        rows.append(Row("remasking vs ancestral", setting, t[name] / t["ancestral"], "<=", 1.15))
    nfe = masked_sampler("revision").nfe_per_step
    rows.append(Row("remasking vs ancestral, per NFE", f"revision ({nfe} NFE/step) B={cfg.batch} L={cfg.length} "
                    f"T={steps}", t["revision"] / (nfe * t["ancestral"]), "<=", 1.15))
    return rows


def histogram_rows(cfg: Config) -> list[Row]:
    """t(np.bincount) / t(histogram) on the same int64 cells (all valid)."""
    cells = np.random.default_rng(0).integers(0, cfg.hist_cells, cfg.hist_samples, dtype=np.int64)
    fns = {"np.bincount": lambda: np.bincount(cells, minlength=cfg.hist_cells),
           "tv.histogram": lambda: histogram(cells, cfg.hist_cells)}
    hist, counts = fns["tv.histogram"](), fns["np.bincount"]()
    if not (np.array_equal(hist.counts, counts) and hist.n_invalid == 0):
        raise RuntimeError("histogram and np.bincount disagree")
    t = median_times(fns, cfg.hist_repeats, verbose=True)
    setting = f"N={cfg.hist_samples:.0e} int64, K=2^{int(np.log2(cfg.hist_cells))}"
    print(f"  {setting}: np.bincount {1e3 * t['np.bincount']:.1f} ms, histogram {1e3 * t['tv.histogram']:.1f} ms "
          f"({cfg.hist_samples / t['tv.histogram'] / 1e6:.0f} M samples/s)")
    return [Row("histogram throughput vs bincount", setting, t["np.bincount"] / t["tv.histogram"], ">=", 1.0)]


def main() -> None:
    args, cfg, sections = parse_cli(__doc__.splitlines()[0], ("step", "remask", "histogram"),
                                    Config(), QUICK)
    device = jax.devices()[0]
    print(f"jax {jax.__version__}; device {device.platform}:{device.device_kind} (x{jax.device_count()}); "
          f"CPUs {os.cpu_count()}; load average {os.getloadavg()[0]:.2f}; {'QUICK' if args.quick else 'full'} run")
    print(f"  choices: B={cfg.batch}, L={cfg.length}, V={cfg.vocab_size}, T={cfg.step_steps} (per-step rows), "
          f"T={cfg.remask_steps} (remasking rows), block_size={min(cfg.batch, BLOCK_SIZE)}, "
          f"median of {cfg.repeats} rounds (histogram: N={cfg.hist_samples}, K={cfg.hist_cells}, median of {cfg.hist_repeats})")
    start = time.perf_counter()
    predictor = make_predictor(cfg)
    rows = []
    for name, title, measure in (("step", "per-step cost vs forward", lambda: step_cost_rows(predictor, cfg)),
                                 ("remask", "remasking vs ancestral", lambda: remask_rows(predictor, cfg)),
                                 ("histogram", "histogram", lambda: histogram_rows(cfg))):
        if name in sections:
            print(f"{title}:")
            rows += measure()
    print(f"total {time.perf_counter() - start:.0f} s; load average {os.getloadavg()[0]:.2f}")
    print()
    print_table(rows)


if __name__ == "__main__":
    main()
