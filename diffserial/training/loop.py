"""The training run: `train(config, workdir)`, in the sections config, mesh, input, model, update,
checkpoint, loop; and `load_trained(workdir)` for samplers and studies.

    python train.py --config configs/gmm_train.py --workdir runs/gmm_train      (see train.py, TPU.md)

- config: validated before anything compiles (`validate`); saved as WORKDIR/config.json. A run resuming
  from a checkpoint whose saved config.json differs stops with ConfigChangedError listing the differing
  keys, unless config.allow_config_change (then the old file is kept as config.<k>.json; `resume`).
- mesh: one "data" axis over jax.devices() (every process's devices, in process order).
- input: example i of step s is task.example(fold_in(fold_in(data_key, s), i)); each process builds its
  rows [p B/P, (p+1) B/P) and the global batch is assembled without communication
  (`distributed.global_batch`). Everything is a function of (config.seed, step): a resumed or
  re-sharded run sees the same data.
- update: `train_step` with noise="example" under jit(shard_map) (config.parallel = "shard_map", the
  default) or jax.pmap ("pmap"); gradients averaged with pmean over "data"; the state's buffers are
  donated to the next state (updated in place). A non-finite loss or gradient stops the run with FloatingPointError naming the step; that step's update is never applied or saved.
- checkpoint: orbax, async, keep the latest config.keep_checkpoints, every config.checkpoint_every steps
  and at the end; the run resumes from the latest committed step in WORKDIR/checkpoints.
- preemption: on SIGTERM the run finishes its current step, saves it (on several processes: the step
  JAX's preemption sync point picks, the same on all), closes its writers and raises
  `preemption.Preempted`, a SystemExit with status 143; rerunning resumes from that step.
- loop: a progress bar on process 0 (`progress.progress_bar`: the loss of the last log row in its
  postfix, a refresh every 30 s off a terminal); process 0 writes WORKDIR/metrics.jsonl and TensorBoard
  scalars (`summaries.MetricsWriter`) every config.log_every steps: loss, lr, grad_norm, examples_per_s,
  and the task's own metrics (aux["metrics"] of its loss, averaged over devices: e.g. the serial task's
  per-token accuracy of the answer and of the chain of thought on the positions the loss scored).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import time
from typing import Any

import jax
import ml_collections
import numpy as np
from etils import epath
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from diffserial.progress import progress_bar
from diffserial.training import checkpoint, distributed, optimizer as opt_lib, preemption, resume
from diffserial.training import step as step_lib, summaries
from diffserial.training.tasks import Task, jitted_batch_rows, make_task
from diffserial.validation import check_positive_int

PARALLEL = ("shard_map", "pmap")
_POSITIVE_INTS = ("batch_size", "total_steps", "log_every", "checkpoint_every", "keep_checkpoints")


def optimizer_config(config: ml_collections.ConfigDict) -> opt_lib.OptimizerConfig:
    """config.optimizer as a validated OptimizerConfig whose schedule spans config.total_steps."""
    return opt_lib.OptimizerConfig(total_steps=config.total_steps, **config.optimizer.to_dict())


def validate(config: ml_collections.ConfigDict) -> Task:
    """Raise ValueError for a config that cannot train, before anything compiles; return its Task.

    Checks: positive integer sizes, config.parallel, batch divisible by the global device count (and by
    each process's share), the optimizer and its schedule, and the model: its parameters are traced
    abstractly (`jax.eval_shape`), which catches bad shapes or fields without compiling.
    """
    for name in _POSITIVE_INTS:
        check_positive_int(f"config.{name}", config[name])
    if config.parallel not in PARALLEL:
        raise ValueError(f"config.parallel must be one of {', '.join(PARALLEL)}; got {config.parallel!r}")
    if config.batch_size % jax.device_count():
        raise ValueError(f"config.batch_size = {config.batch_size} is not divisible by the "
                         f"{jax.device_count()} devices")
    distributed.process_rows(config.batch_size)
    optimizer_config(config)
    task = make_task(config)
    jax.eval_shape(task.init, jax.random.key(0))
    return task


def _initial_state(task: Task, config: ml_collections.ConfigDict, optimizer) -> step_lib.TrainState:
    """The step-0 state from config.seed, as one jitted program (op by op, a model's initializers and the
    optimizer's zeros each compile on their own: ~1 s per small model on CPU)."""
    def create(key):
        return step_lib.TrainState.create(task.init(jax.random.fold_in(key, 0)), optimizer, jax.random.fold_in(key, 2))

    return jax.jit(create)(jax.random.key(config.seed))


def _checkpoint_dir(workdir: str) -> epath.Path:
    return epath.Path(workdir) / "checkpoints"


def train(config: ml_collections.ConfigDict, workdir: str) -> step_lib.TrainState:
    """Train config.task into `workdir` (resuming from its latest checkpoint); return the final state.

    Raises ConfigChangedError (resuming with another config) before anything compiles, and
    preemption.Preempted after saving the current step on SIGTERM."""
    # --- config ---------------------------------------------------------------------------------
    task = validate(config)
    opt_config = optimizer_config(config)
    writer = distributed.is_writer()
    resuming = checkpoint.latest_step(_checkpoint_dir(workdir)) is not None
    resume.save_config(workdir, config, resuming=resuming, writer=writer)

    # --- mesh: one data axis over every device of every process -----------------------------------
    mesh = Mesh(np.asarray(jax.devices()), ("data",))
    replicated = NamedSharding(mesh, P())

    # --- input: the rows this process builds, a pure function of (seed, step, global index) --------
    start_row, stop_row = distributed.process_rows(config.batch_size)
    data_key = jax.random.fold_in(jax.random.key(config.seed), 1)
    local_batch_at = functools.partial(jitted_batch_rows(task, start_row, stop_row), data_key)

    # --- model ------------------------------------------------------------------------------------
    optimizer = opt_lib.make_optimizer(opt_config)
    state = _initial_state(task, config, optimizer)

    # --- update -----------------------------------------------------------------------------------
    common = dict(ema_decay=opt_config.ema_decay, noise="example", schedule=opt_lib.make_schedule(opt_config),
                  donate=True)  # the loop threads the state through: update it in place
    if config.parallel == "shard_map":
        step_fn = step_lib.make_shard_map_step(task.loss_fn, optimizer, devices=list(mesh.devices), **common)
        batch_at = lambda s: distributed.global_batch(local_batch_at(s), mesh)
    else:
        step_fn = step_lib.make_pmap_step(task.loss_fn, optimizer, devices=jax.local_devices(), **common)
        batch_at = local_batch_at

    # --- checkpoint: resume from the latest committed step ------------------------------------------
    manager = checkpoint.open_manager(_checkpoint_dir(workdir), max_to_keep=config.keep_checkpoints)
    restored = checkpoint.restore_latest(manager, checkpoint.abstract_like(state, replicated))
    start = 0
    if restored is not None:
        start, state = restored
        if writer:
            print(f"resumed from step {start}")
    if config.parallel == "pmap":
        state = step_lib.replicate(state)
    host_state = step_lib.unreplicate if config.parallel == "pmap" else (lambda s: s)

    # --- loop -------------------------------------------------------------------------------------
    metrics_writer = summaries.MetricsWriter(workdir, enabled=writer, start_step=start)
    tick, last = time.perf_counter(), start
    preempted_at = None
    watcher = preemption.Watcher()  # from here a SIGTERM only sets a flag, read at each step boundary
    try:
        bar = progress_bar(range(start, config.total_steps), initial=start, total=config.total_steps,
                           disable=not writer, desc=f"train {config.task}")
        for s in bar:
            state, metrics = step_fn(state, batch_at(s))
            step_lib.raise_if_nonfinite(metrics)  # names the step; the bad update is neither applied nor saved
            done = s + 1
            if done % config.log_every == 0 or done == config.total_steps:
                now = time.perf_counter()
                loss = float(metrics["loss"])
                bar.set_postfix(loss=f"{loss:.4g}", refresh=False)
                metrics_writer.write(done, {
                    **{k: float(v) for k, v in metrics.items() if k not in ("finite", "step")},
                    "examples_per_s": (done - last) * config.batch_size / (now - tick)})
                tick, last = now, done
            # on several processes True on all of them at the same step; at the last step the run is done anyway
            stop = watcher.reached(done) and done < config.total_steps
            if stop or done % config.checkpoint_every == 0 or done == config.total_steps:
                checkpoint.save(manager, done, host_state(state), force=stop)
            if stop:
                preempted_at = done
                break
    finally:
        checkpoint.close(manager)  # waits for saves already started (all of good parameters)
        metrics_writer.close()
        watcher.close()  # only now: a second SIGTERM must not cut the last save short
    if preempted_at is not None:
        if writer:
            print(f"preempted: saved step {preempted_at} to {_checkpoint_dir(workdir)}; rerun to resume "
                  f"(exit status {preemption.EXIT_CODE})")
        raise preemption.Preempted(preempted_at)
    return host_state(state)


@dataclasses.dataclass(frozen=True)
class Trained:
    """A trained model read back from a workdir: its config, Task, step and EMA parameters."""

    config: ml_collections.ConfigDict
    task: Task
    step: int
    params: Any

    def sampling_fn(self):
        """The sampler's function of this model (score for gmm_score, predictor for masked tasks)."""
        return self.task.sampling_fn(self.params)


def load_trained(workdir: str) -> Trained:
    """Config from WORKDIR/config.json and the EMA parameters of the latest committed checkpoint, as host
    (numpy) arrays, so that any program may place them (e.g. replicate them over a sampling mesh).
    ValueError when there is no checkpoint."""
    path = epath.Path(workdir)
    if not (path / "config.json").exists():
        raise ValueError(f"{workdir} has no config.json: not a train.py workdir")
    config = ml_collections.ConfigDict(json.loads((path / "config.json").read_text()))
    task = make_task(config)
    optimizer = opt_lib.make_optimizer(optimizer_config(config))
    abstract = jax.eval_shape(lambda: _initial_state(task, config, optimizer))
    device = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
    manager = checkpoint.open_manager(_checkpoint_dir(workdir), async_save=False)
    try:
        restored = checkpoint.restore_latest(manager, checkpoint.abstract_like(abstract, device))
    finally:
        checkpoint.close(manager)
    if restored is None:
        raise ValueError(f"{workdir} has no committed checkpoint")
    step, state = restored
    return Trained(config, task, step, jax.device_get(state.ema_params))


__all__ = ["PARALLEL", "Trained", "load_trained", "optimizer_config", "train", "validate"]
