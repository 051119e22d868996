"""Train a model from a config file, resuming from the latest checkpoint in --workdir.

    python train.py --config configs/gmm_train.py --workdir runs/gmm_train [--config.KEY=VALUE ...]

Sections: config, mesh, input, model, update, checkpoint, loop. Writes WORKDIR/metrics.jsonl and
WORKDIR/checkpoints/<step>/ (orbax). Single-process for now (multi-host launch: see TPU.md, pending).
"""

import os

from absl import app, flags, logging
from ml_collections import config_flags

_CONFIG = config_flags.DEFINE_config_file("config", None, "Training config file.", lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Output directory (checkpoints, metrics).", required=True)


def validate(config) -> None:
    """Raise ValueError for a config that cannot train, before anything compiles."""
    import jax

    if config.task != "gmm_score":
        raise ValueError(f"config.task must be 'gmm_score' (the only task so far), got {config.task!r}")
    for name in ("d", "n_components", "batch_size", "total_steps", "log_every", "checkpoint_every",
                 "keep_checkpoints"):
        if int(config[name]) != config[name] or config[name] < 1:
            raise ValueError(f"config.{name} must be an integer >= 1, got {config[name]!r}")
    if config.batch_size % jax.device_count():
        raise ValueError(f"config.batch_size = {config.batch_size} is not divisible by the "
                         f"{jax.device_count()} devices")


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    logging.set_verbosity(logging.WARNING)  # orbax logs every save at INFO
    import json
    import time

    import jax
    import jax.numpy as jnp
    from tqdm.auto import tqdm

    from diffserial.models.mlp import ScoreMLP
    from diffserial.processes.gaussian import PROCESSES
    from diffserial.registry import lookup
    from diffserial.studies.gmm_convergence import make_mixture
    from diffserial.targets import gmm
    from diffserial.training import checkpoint, optimizer as opt_lib, step as step_lib

    # --- config ---------------------------------------------------------------------------------
    config, workdir = _CONFIG.value, _WORKDIR.value
    validate(config)
    opt_config = opt_lib.OptimizerConfig(total_steps=config.total_steps, **config.optimizer.to_dict())
    process = lookup(PROCESSES, "process", config.process)()
    writer = jax.process_index() == 0

    # --- mesh: one data axis over every device ---------------------------------------------------
    devices = jax.devices()

    # --- input: batch s is a pure function of (seed, s), so a resumed run sees the same data -------
    mixture = make_mixture(config.d, config.n_components, config.seed)
    data_key = jax.random.fold_in(jax.random.key(config.seed), 1)

    def batch_at(s):
        x = gmm.sample(mixture, jax.random.fold_in(data_key, s), config.batch_size)
        return {"x": x, "index": jnp.arange(config.batch_size, dtype=jnp.int32)}

    # --- model ------------------------------------------------------------------------------------
    model = ScoreMLP(**config.model.to_dict())
    params = model.init(jax.random.key(config.seed), jnp.zeros((config.d,)), 0.5)["params"]
    apply_fn = lambda p, x, t: model.apply({"params": p}, x, t)

    # --- update -----------------------------------------------------------------------------------
    optimizer = opt_lib.make_optimizer(opt_config)
    loss_fn = step_lib.dsm_batch_loss(apply_fn, process, per_example_noise=True,
                                      parameterization=config.parameterization, weighting=config.weighting)
    run_step = step_lib.make_shard_map_step(loss_fn, optimizer, ema_decay=opt_config.ema_decay, devices=devices,
                                            noise="example", schedule=opt_lib.make_schedule(opt_config))
    state = step_lib.TrainState.create(params, optimizer, jax.random.fold_in(jax.random.key(config.seed), 2))

    # --- checkpoint: resume from the latest committed step ------------------------------------------
    os.makedirs(workdir, exist_ok=True)
    manager = checkpoint.open_manager(os.path.join(os.path.abspath(workdir), "checkpoints"),
                                      max_to_keep=config.keep_checkpoints)
    restored = checkpoint.restore_latest(manager, checkpoint.abstract_like(state))
    start = 0
    if restored is not None:
        start, state = restored
        print(f"resumed from step {start}")

    # --- loop -------------------------------------------------------------------------------------
    metrics_path = os.path.join(workdir, "metrics.jsonl")
    tick, last = time.perf_counter(), start
    for s in tqdm(range(start, config.total_steps), initial=start, total=config.total_steps,
                  disable=not writer, desc="train"):
        state, metrics = run_step(state, batch_at(s))
        step_lib.raise_if_nonfinite(metrics)  # names the step; no checkpoint of bad parameters is written
        done = s + 1
        if writer and (done % config.log_every == 0 or done == config.total_steps):
            now = time.perf_counter()
            row = {"step": done, "loss": float(metrics["loss"]), "lr": float(metrics["lr"]),
                   "grad_norm": float(metrics["grad_norm"]),
                   "examples_per_s": (done - last) * config.batch_size / (now - tick)}
            tick, last = now, done
            with open(metrics_path, "a") as f:
                f.write(json.dumps(row) + "\n")
        if done % config.checkpoint_every == 0 or done == config.total_steps:
            checkpoint.save(manager, done, state)
    checkpoint.close(manager)


if __name__ == "__main__":
    app.run(main)
