"""One process of the multi-process training rehearsal (run as a script by test_multihost.py).

    XLA_FLAGS=--xla_force_host_platform_device_count=2 JAX_PLATFORMS=cpu \
        python tests/training/multihost_worker.py --out DIR --coordinator 127.0.0.1:PORT \
        --num-processes 2 --process-id {0,1}

trains a small ScoreMLP with DSM (per-example noise, noise="example") for --steps steps on a global
batch of --batch examples, where example i of step s is x_i = 0.5 + 2 z, z ~ N(0, I_d) drawn with key
fold_in(fold_in(key(seed), s), i). With --num-processes > 1 each process builds only its rows
`process_rows(batch)` and the global batch is assembled with `global_batch`; with --num-processes 1
(no distributed runtime) the whole batch is handed to the step directly, as a reference. Process 0
alone writes DIR/params.npz (initial, final and EMA params, per-step losses); every process prints one
JSON line describing its view of the run.
"""

import argparse
import json
import os

D, SEED = 2, 0


def _args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="directory for params.npz (process 0 only)")
    parser.add_argument("--num-processes", type=int, default=1)
    parser.add_argument("--process-id", type=int, default=0)
    parser.add_argument("--coordinator", default=None, help="host:port of process 0 (multi-process only)")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--batch", type=int, default=16)
    return parser.parse_args()


def main():
    args = _args()
    from diffserial.training import distributed

    if args.num_processes > 1:  # before anything touches a device
        distributed.initialize(args.coordinator, args.num_processes, args.process_id)

    import jax
    import jax.numpy as jnp
    import numpy as np

    from diffserial.models.mlp import ScoreMLP
    from diffserial.processes.gaussian import VPLinear
    from diffserial.losses import dsm_batch_loss
    from diffserial.training import OptimizerConfig, TrainState, make_optimizer, make_schedule
    from diffserial.training import make_shard_map_step, raise_if_nonfinite

    config = OptimizerConfig(lr=1e-2, warmup_steps=1, total_steps=10, weight_decay=1e-4, ema_decay=0.9)
    model = ScoreMLP(hidden=16, n_blocks=1, embed_dim=8)
    params = model.init(jax.random.key(SEED), jnp.zeros((D,)), 0.5)["params"]
    apply_fn = lambda p, x, t: model.apply({"params": p}, x, t)
    optimizer = make_optimizer(config)
    loss_fn = dsm_batch_loss(apply_fn, VPLinear(), per_example_noise=True)
    run_step = make_shard_map_step(loss_fn, optimizer, ema_decay=config.ema_decay, noise="example",
                                   schedule=make_schedule(config))
    state = TrainState.create(params, optimizer, jax.random.fold_in(jax.random.key(SEED), 2))
    initial_params = state.params

    @jax.jit
    def rows_at(step, index):
        """x_i = 0.5 + 2 N(0, I) with key fold_in(fold_in(key(seed), step), i), for each i in index."""
        step_key = jax.random.fold_in(jax.random.fold_in(jax.random.key(SEED), 1), step)
        draw = lambda i: 0.5 + 2.0 * jax.random.normal(jax.random.fold_in(step_key, i), (D,))
        return {"x": jax.vmap(draw)(index), "index": index}

    start, stop = distributed.process_rows(args.batch)
    losses = []
    for s in range(args.steps):
        local = rows_at(s, jnp.arange(start, stop, dtype=jnp.int32))
        batch = distributed.global_batch(local, run_step.mesh) if args.num_processes > 1 else local
        state, metrics = run_step(state, batch)
        raise_if_nonfinite(metrics)
        losses.append(float(metrics["loss"]))

    if distributed.is_writer():
        flat = {}
        trees = (("init", initial_params), ("params", state.params), ("ema", state.ema_params))
        for prefix, tree in trees:
            for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
                flat[prefix + jax.tree_util.keystr(path)] = np.asarray(leaf)
        os.makedirs(args.out, exist_ok=True)
        np.savez(os.path.join(args.out, "params.npz"), losses=np.asarray(losses), **flat)
    print(json.dumps({
        "process_index": jax.process_index(), "process_count": jax.process_count(),
        "local_devices": jax.local_device_count(), "devices": jax.device_count(),
        "rows": [start, stop], "step": int(state.step), "losses": losses,
    }), flush=True)


if __name__ == "__main__":
    main()
