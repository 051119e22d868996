"""Benchmarks of the data-parallel training step and of asynchronous checkpointing.

    python -m benchmarks.training [--quick] [--repeats R] [--sections throughput,breakdown,checkpoint]

Every ratio is measured side by side in one process: each compared callable is called once first
(compilation excluded), then all are timed in interleaved rounds and the median wall time of each is
kept. Metrics (see benchmarks/README.md):

    throughput   t_bare / t_step = examples/s of one `make_shard_map_step` call over those of the bare
                 jit(value_and_grad(loss)) of the same model, loss and batch (both blocked)    target >= 0.9
    checkpoint   t_none / t_ckpt = steps/s of an N-step training loop with an async `checkpoint.save`
                 every 50 steps (final `checkpoint.wait` included) over the same loop without  target >= 0.95
                 (also: the same loop saving the state raveled into 3 leaves, `flat_state`, and the
                 cost of one save on its own, of either)
    breakdown    no target: where a step's time goes beyond the bare forward + backward (AdamW, EMA,
                 non-finite guard, the host wrapper's input placement), and what-if variants of the
                 step's program (without the host wrapper, with the state donated, with optax.flatten)

Workloads: `ScoreMLP` (width 128, 2 blocks) on R^2 with the DSM loss under VPLinear, per-example noise
(noise="example", as in train.py), B = 512; `MaskedTransformer` (V = 2, L = 16, width 64, depth 2,
4 heads, time-free) with the masked NELBO under the linear schedule, noise="device", B = 256. Both use
`make_optimizer(OptimizerConfig())` (clipping + AdamW + warmup/cosine schedule), EMA decay 0.999 and the
lr metric. The step's state is threaded from call to call as in a training loop. `--quick` shrinks the
sizes and repeats to check that the script runs (about a minute on 2 idle CPU cores, mostly
compilation); its numbers are not the benchmark's.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import os
import statistics
import tempfile
import time
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax
import orbax.checkpoint as ocp
from jax.flatten_util import ravel_pytree
from jax.sharding import NamedSharding, PartitionSpec as P

from benchmarks.timing import Row, median_times, parse_cli, print_table
from diffserial.losses import dsm_batch_loss, masked_nelbo
from diffserial.models.mlp import ScoreMLP
from diffserial.models.transformer import MaskedTransformer
from diffserial.processes.gaussian import VPLinear
from diffserial.processes.masked import Linear
from diffserial.training import checkpoint
from diffserial.training.optimizer import OptimizerConfig, ema_update, make_optimizer, make_schedule
from diffserial.training.step import (TrainState, make_shard_map_step, raise_if_nonfinite,
                                      train_step)

OPT_CONFIG = OptimizerConfig()


@dataclasses.dataclass(frozen=True)
class Config:
    """Sizes of one benchmark run."""

    mlp_batch: int = 512
    mlp_dim: int = 2
    tf_batch: int = 256
    tf_length: int = 16
    tf_vocab: int = 2
    tf_width: int = 64
    tf_depth: int = 2
    repeats: int = 51             # interleaved rounds of one call each (throughput, breakdown)
    ckpt_steps: int = 300         # N, steps per checkpointing loop
    ckpt_every: int = 50
    ckpt_repeats: int = 5         # interleaved rounds of the N-step loops
    ckpt_single_saves: int = 10   # rounds of one save + wait on its own


QUICK = Config(mlp_batch=128, tf_batch=64, repeats=7, ckpt_steps=100, ckpt_repeats=2, ckpt_single_saves=3)


@dataclasses.dataclass(frozen=True)
class Workload:
    """A model, its step loss (params, batch, key) -> (loss, aux), initial parameters and one batch."""

    name: str
    loss_fn: Callable[[Any, Any, jax.Array], tuple[jax.Array, dict]]
    params: Any
    batch: dict
    noise: str

    @property
    def batch_size(self) -> int:
        return int(self.batch["x"].shape[0])

    @property
    def label(self) -> str:
        return f"{self.name} B={self.batch_size}"


def mlp_workload(cfg: Config) -> Workload:
    """ScoreMLP on R^d, DSM loss (eps, sigma^2 weighting) under VPLinear with per-example noise."""
    model = ScoreMLP()
    params = jax.jit(model.init)(jax.random.key(1), jnp.zeros(cfg.mlp_dim), 0.5)["params"]
    loss_fn = dsm_batch_loss(lambda p, x, t: model.apply({"params": p}, x, t), VPLinear(), per_example_noise=True)
    x = 0.5 + 2.0 * jax.random.normal(jax.random.key(0), (cfg.mlp_batch, cfg.mlp_dim))
    batch = {"x": x, "index": jnp.arange(cfg.mlp_batch, dtype=jnp.int32)}
    return Workload("mlp", loss_fn, params, batch, noise="example")


def _nelbo_loss(apply_fn, schedule, vocab_size):
    """masked_nelbo as a step loss (params, {"x": (B, L) tokens}, key) -> (loss, aux)."""
    return lambda params, batch, key: masked_nelbo(apply_fn, params, schedule, batch["x"], key, mask_id=vocab_size)


def transformer_workload(cfg: Config) -> Workload:
    """Time-free MaskedTransformer, MD4/MDLM NELBO under the linear schedule, uniform random tokens."""
    model = MaskedTransformer(vocab_size=cfg.tf_vocab, max_len=cfg.tf_length, width=cfg.tf_width, depth=cfg.tf_depth)
    params = jax.jit(model.init)(jax.random.key(1), jnp.zeros((cfg.tf_length,), jnp.int32))["params"]
    loss_fn = _nelbo_loss(lambda p, x, t: model.apply({"params": p}, x, t), Linear(), cfg.tf_vocab)
    tokens = jax.random.randint(jax.random.key(0), (cfg.tf_batch, cfg.tf_length), 0, cfg.tf_vocab, dtype=jnp.int32)
    return Workload("transformer", loss_fn, params, {"x": tokens}, noise="device")


def describe(work: Workload) -> str:
    """One line: the workload and its parameter count."""
    n_params = sum(int(np.prod(p.shape)) for p in jax.tree.leaves(work.params))
    return f"  {work.label}: {n_params} parameters, noise={work.noise!r}"


def make_step(work: Workload, devices=None):
    """The benchmarked step, as train.py builds it: make_shard_map_step with the flattened AdamW, EMA 0.999,
    the lr schedule and the state donated."""
    return make_shard_map_step(work.loss_fn, make_optimizer(OPT_CONFIG), ema_decay=OPT_CONFIG.ema_decay,
                               devices=devices, noise=work.noise, schedule=make_schedule(OPT_CONFIG), donate=True)


def initial_state(work: Workload) -> TrainState:
    """TrainState.create with the benchmark's optimizer."""
    return TrainState.create(work.params, make_optimizer(OPT_CONFIG), jax.random.key(2))


def bare_call(work: Workload):
    """A thunk running the bare baseline: jit(value_and_grad(loss_fn)) on the workload's batch."""
    grad_fn = jax.jit(jax.value_and_grad(work.loss_fn, has_aux=True))
    key = jax.random.key(3)
    return lambda: grad_fn(work.params, work.batch, key)


def chained_call(step: Callable, state: Any, batch: Any):
    """A thunk calling step(state, batch) -> (state, out), each call on the state the previous call
    returned, as a training loop does; it starts from a copy of `state` (a donating step consumes its
    input, and several thunks start from the same state)."""
    carry = [jax.tree.map(jnp.copy, state)]

    def call():
        carry[0], out = step(carry[0], batch)
        return carry[0], out

    return call


# Stages of train_step's work between the bare forward + backward and the full step (see _update_through).
STAGES = ("AdamW", "EMA", "finite guard")


def _update_through(work: Workload, stage: str):
    """jit((state, batch) -> (state, out)): train_step's arithmetic on one device without the mapping
    (no axis_index, pmean, pmin, varying casts), up to `stage` (one of STAGES):

        AdamW          rng split; (loss, grads) = value_and_grad(loss_fn); clip + AdamW update, apply;
        EMA            + ema <- decay ema + (1 - decay) params;
        finite guard   + finite = isfinite(loss) and all grads finite, global grad norm, lr metric, and
                         lax.cond(finite, new state, old state): all of train_step on one device.
    """
    if stage not in STAGES:
        raise ValueError(f"unknown stage {stage!r}; valid: {', '.join(STAGES)}")
    optimizer, schedule, decay = make_optimizer(OPT_CONFIG), make_schedule(OPT_CONFIG), OPT_CONFIG.ema_decay

    def update(state: TrainState, batch):
        step_key, next_rng = jax.random.split(state.rng)
        (loss, _), grads = jax.value_and_grad(work.loss_fn, has_aux=True)(state.params, batch, step_key)
        updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        ema = ema_update(state.ema_params, params, decay) if stage != "AdamW" else state.ema_params
        new = TrainState(step=state.step + 1, params=params, opt_state=opt_state, ema_params=ema, rng=next_rng)
        if stage != "finite guard":
            return new, loss
        finite = jnp.isfinite(loss) & jnp.all(jnp.stack([jnp.all(jnp.isfinite(g)) for g in jax.tree.leaves(grads)]))
        metrics = {"loss": loss, "grad_norm": optax.tree.norm(grads), "lr": schedule(state.step), "finite": finite}
        return jax.lax.cond(finite, lambda: new, lambda: state), metrics

    return jax.jit(update)


def shard_map_program(work: Workload, mesh, optimizer: optax.GradientTransformation, donate: bool = False):
    """jit(shard_map(train_step)) as make_shard_map_step builds it, to be called without the step's host
    wrapper (batch-size check, device_put of the state and of the batch on every call); `optimizer`
    replaces the benchmark's AdamW (e.g. by its optax.flatten), `donate` donates the state's buffers."""
    step = functools.partial(train_step, loss_fn=work.loss_fn, optimizer=optimizer, ema_decay=OPT_CONFIG.ema_decay,
                             axis_name="data", noise=work.noise, schedule=make_schedule(OPT_CONFIG))
    mapped = jax.shard_map(step, mesh=mesh, in_specs=(P(), P("data")), out_specs=(P(), P()))
    return jax.jit(mapped, donate_argnums=(0,) if donate else ())


def what_if_calls(work: Workload, mesh) -> dict[str, Callable]:
    """Thunks of the step's shard_map program called without the host wrapper, on placed inputs: as
    train.py runs it (flattened AdamW, state donated), without donation, and with the optimizer not
    flattened (per-leaf moments: several small kernels per leaf)."""
    replicated, split = NamedSharding(mesh, P()), NamedSharding(mesh, P("data"))
    batch = jax.device_put(work.batch, split)
    calls = {}
    for name, flatten, donate in (("shard_map program", True, True), ("  not donated", True, False),
                                  ("  optimizer not flattened", False, True)):
        optimizer = make_optimizer(OPT_CONFIG, flatten=flatten)
        state = jax.device_put(TrainState.create(work.params, optimizer, jax.random.key(2)), replicated)
        calls[name] = chained_call(shard_map_program(work, mesh, optimizer, donate), state, batch)
    return calls


def step_timings(work: Workload, step: Callable, cfg: Config, stages: bool) -> dict[str, float]:
    """Median seconds per call, in one interleaved measurement, of the bare forward + backward and the
    full step on 1 device (and on all local devices when there are several); with `stages`, also of
    each stage in between (`_update_through`), of the what-if variants (`what_if_calls`) and of the
    host wrapper's input placement on its own (device_put of an already placed state, of the batch)."""
    state = initial_state(work)
    fns = {"bare fwd+bwd": bare_call(work), "full step": chained_call(step, state, work.batch)}
    n_local = jax.local_device_count()
    if n_local > 1:
        fns[f"full step x{n_local}"] = chained_call(make_step(work, jax.local_devices()), state, work.batch)
    if stages:
        replicated, split = NamedSharding(step.mesh, P()), NamedSharding(step.mesh, P("data"))
        placed_state = jax.device_put(state, replicated)
        fns |= {f"+ {stage}": chained_call(_update_through(work, stage), state, work.batch) for stage in STAGES}
        fns |= what_if_calls(work, step.mesh)
        fns |= {"device_put(state)": lambda: jax.device_put(placed_state, replicated),
                "device_put(batch)": lambda: jax.device_put(work.batch, split)}
    t = median_times(fns, cfg.repeats)
    for name, seconds in t.items():
        rate = "" if name.startswith("device_put") else (
            f" = {work.batch_size / seconds:,.0f} examples/s, time / bare {seconds / t['bare fwd+bwd']:.3f}")
        print(f"  {work.label} {name}: {1e3 * seconds:.3f} ms{rate}")
    if stages:
        print(f"  {work.label}: the state has {len(jax.tree.leaves(state))} array leaves")
    return t


def throughput_rows(work: Workload, t: dict[str, float]) -> list[Row]:
    """t_bare / t_step from step_timings: the step's throughput relative to the bare forward + backward."""
    rows = [Row("throughput vs bare fwd+bwd", f"{work.label} 1 device", t["bare fwd+bwd"] / t["full step"], ">=", 0.9)]
    for name in t:
        if name.startswith("full step x"):
            n = name.removeprefix("full step x")
            rows.append(Row("throughput vs bare fwd+bwd", f"{work.label} {n} devices (bare on 1)",
                            t["bare fwd+bwd"] / t[name], ">=", 0.9))
    return rows


def training_loop(step: Callable, state: TrainState, batch: Any, n_steps: int, *, manager=None, every: int = 0,
                  first_step: int = 0, blocked: list | None = None, saved: Callable = lambda state: state) -> TrainState:
    """n_steps of `step` as train.py runs them (non-finite check, a host sync, after each step); with a
    manager, an async checkpoint.save of saved(state) every `every` steps (step numbers first_step + s)
    and a final checkpoint.wait. Appends (seconds inside save() calls, seconds inside wait()) to
    `blocked` when given. Starts from a copy of `state` (the step donates its input)."""
    state = jax.tree.map(jnp.copy, state)
    in_save = 0.0
    for s in range(1, n_steps + 1):
        state, metrics = step(state, batch)
        raise_if_nonfinite(metrics)
        if manager is not None and s % every == 0:
            start = time.perf_counter()
            checkpoint.save(manager, first_step + s, saved(state))
            in_save += time.perf_counter() - start
    if manager is not None:
        start = time.perf_counter()
        checkpoint.wait(manager)
        if blocked is not None:
            blocked.append((in_save, time.perf_counter() - start))
    return state


def single_save_cost(manager, state: Any, rounds: int) -> tuple[float, float, float]:
    """Medians over `rounds` (after one warm-up) of one checkpoint.save followed at once by
    checkpoint.wait: (seconds inside save(), seconds inside wait(), process CPU seconds of both, all
    threads, i.e. what a background save takes from a training loop that keeps every core busy)."""
    costs = []
    for step_number in range(rounds + 1):
        cpu, start = time.process_time(), time.perf_counter()
        checkpoint.save(manager, step_number, state)
        saved = time.perf_counter()
        checkpoint.wait(manager)
        costs.append((saved - start, time.perf_counter() - saved, time.process_time() - cpu))
    return tuple(statistics.median(c[i] for c in costs[1:]) for i in range(3))


def flat_state(state: TrainState) -> dict:
    """The state as 3 leaves: params, optimizer state and EMA raveled into one float32 vector
    (`jax.flatten_util.ravel_pytree`), the step and the rng: a what-if for the per-leaf cost of a save."""
    flat, _ = ravel_pytree((state.params, state.opt_state, state.ema_params))
    return {"flat": flat, "step": state.step, "rng": state.rng}


def checkpoint_rows(work: Workload, step: Callable, cfg: Config) -> list[Row]:
    """t_none / t_ckpt for N-step loops from the same initial state; the saves go to one manager in a
    temporary directory (keep the latest 3, as train.py), each loop under new step numbers. Then the
    cost of one save + wait on its own, of the state as is and of `flat_state`."""
    state = jax.device_put(initial_state(work), NamedSharding(step.mesh, P()))
    n, every = cfg.ckpt_steps, cfg.ckpt_every
    blocked = []
    with tempfile.TemporaryDirectory() as root:
        manager = checkpoint.open_manager(os.path.join(root, "loop"), max_to_keep=3, async_save=True)
        flat_manager = checkpoint.open_manager(os.path.join(root, "loop_flat"), max_to_keep=3, async_save=True)
        first_steps, first_steps_flat = itertools.count(0, n), itertools.count(0, n)
        fns = {"no checkpoints": lambda: training_loop(step, state, work.batch, n),
               f"save every {every}": lambda: training_loop(step, state, work.batch, n, manager=manager, every=every,
                                                            first_step=next(first_steps), blocked=blocked),
               f"save every {every}, flat_state": lambda: training_loop(
                   step, state, work.batch, n, manager=flat_manager, every=every, first_step=next(first_steps_flat),
                   saved=flat_state)}
        t = median_times(fns, cfg.ckpt_repeats, verbose=True)
        n_kept = len(manager.all_steps())
        checkpoint.close(manager)
        checkpoint.close(flat_manager)
        single = {}
        for name, tree in (("state as is", state), ("flat_state", flat_state(state))):
            manager = checkpoint.open_manager(os.path.join(root, name.replace(" ", "_")), max_to_keep=3)
            single[name] = single_save_cost(manager, tree, cfg.ckpt_single_saves)
            checkpoint.close(manager)
    in_save, in_wait = (statistics.median(b[i] for b in blocked[1:]) for i in (0, 1))  # blocked[0]: warm-up
    without, with_ckpt = t["no checkpoints"], t[f"save every {every}"]
    n_saves = n // every
    print(f"  {work.label} N={n}: {n / without:.1f} steps/s without checkpoints, {n / with_ckpt:.1f} with; "
          f"the loop with {n_saves} saves takes {1e3 * (with_ckpt - without):.1f} ms longer "
          f"({1e3 * (with_ckpt - without) / n_saves:.1f} ms per save): {1e3 * in_save:.1f} ms inside save(), "
          f"{1e3 * in_wait:.1f} ms in the final wait(); {n_kept} steps kept")
    for name, (in_save, in_wait, cpu) in single.items():
        leaves = len(jax.tree.leaves(state if name == "state as is" else flat_state(state)))
        print(f"  one save + wait, {name} ({leaves} leaves): {1e3 * in_save:.1f} ms in save(), {1e3 * in_wait:.1f} ms "
              f"in wait(), {1e3 * cpu:.1f} ms CPU")
    return [Row("steps/s with async checkpoints", f"{work.label} N={n} every {every}", without / with_ckpt, ">=", 0.95),
            Row("steps/s with async checkpoints", f"{work.label} N={n} every {every}, what-if: flat_state saved",
                without / t[f"save every {every}, flat_state"], ">=", 0.95)]


def main() -> None:
    args, cfg, sections = parse_cli(__doc__.splitlines()[0], ("throughput", "breakdown", "checkpoint"),
                                    Config(), QUICK)
    device = jax.devices()[0]
    print(f"jax {jax.__version__}, optax {optax.__version__}, orbax-checkpoint {ocp.__version__}; device "
          f"{device.platform}:{device.device_kind} (x{jax.device_count()}); CPUs {os.cpu_count()}; load average "
          f"{os.getloadavg()[0]:.2f}; {'QUICK' if args.quick else 'full'} run, median of {cfg.repeats} "
          f"(checkpoint loops: {cfg.ckpt_repeats})")
    start = time.perf_counter()
    rows = []
    for work in (mlp_workload(cfg), transformer_workload(cfg)):
        print(describe(work))
        step = make_step(work, jax.devices()[:1])
        if sections & {"throughput", "breakdown"}:
            t = step_timings(work, step, cfg, stages="breakdown" in sections)
            if "throughput" in sections:
                rows += throughput_rows(work, t)
        if "checkpoint" in sections:
            rows += checkpoint_rows(work, step, cfg)
    print(f"total {time.perf_counter() - start:.0f} s; load average {os.getloadavg()[0]:.2f}")
    print()
    print_table(rows)


if __name__ == "__main__":
    main()
