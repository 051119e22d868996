"""The one sampling loop: a `lax.scan` over a time grid, vmapped over seeds, optionally sharded.

    x_{k+1}, state_{k+1} = rule.step(process, score_fn, x_k, state_k, ts[k], ts[k+1], key_{i,k})

Seed contract: seed i uses key_i = fold_in(key, i); its prior draw uses fold_in(key_i, 0) and step k
uses fold_in(fold_in(key_i, 1), k). Everything a seed does depends on (key, i) alone, never on the batch
size, chunking or device count. Only the final state is kept; `snapshot_steps` asks for copies after
chosen steps, held in a fixed buffer (memory independent of T).

The loop is jit-compiled once per (process, rule, shape, grid length, snapshot steps, callable
structure). `score_fn` and `init_fn` are passed as pytrees: a `jax.tree_util.Partial` over arrays (an
exact oracle's parameters, a network's weights) is traced, so new parameter values reuse the compiled
program; a plain function is wrapped in a `Partial` and cached by identity.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from diffserial.processes.gaussian import LinearGaussianSDE

Array = jax.Array
DEFAULT_BLOCK_SIZE = 1024
Partial = jax.tree_util.Partial


def _as_partial(fn: Callable) -> Partial:
    return fn if isinstance(fn, Partial) else Partial(fn)


@functools.partial(jax.tree_util.register_dataclass, data_fields=[], meta_fields=["process", "shape"])
@dataclasses.dataclass(frozen=True)
class ProcessPrior:
    """init_fn drawing x_1 from the process prior N(0, prior_std^2 I) (static: no traced leaves)."""

    process: LinearGaussianSDE
    shape: tuple[int, ...]

    def __call__(self, key: Array) -> Array:
        return self.process.prior_sample(key, self.shape)


def _one_seed(score_fn, init_fn, ts, key, i, *, process, rule, snap_index):
    """Run seed i through all len(ts) - 1 steps; returns (x_final, snapshot buffer)."""
    seed_key = jax.random.fold_in(key, i)
    x = init_fn(jax.random.fold_in(seed_key, 0))
    step_keys = jax.random.fold_in(seed_key, 1)
    n_snap = int(max(snap_index.max(initial=-1) + 1, 0))
    snaps = jnp.zeros((n_snap,) + x.shape, x.dtype)

    def body(carry, inputs):
        x, state, snaps = carry
        k, t, s, slot = inputs
        x, state = rule.step(process, score_fn, x, state, t, s, jax.random.fold_in(step_keys, k))
        if n_snap:
            updated = jax.lax.dynamic_update_index_in_dim(snaps, x, jnp.maximum(slot, 0), 0)
            snaps = jnp.where(slot >= 0, updated, snaps)
        return (x, state, snaps), None

    steps = ts.shape[0] - 1
    inputs = (jnp.arange(steps), ts[:-1], ts[1:], jnp.asarray(snap_index, jnp.int32))
    (x, _, snaps), _ = jax.lax.scan(body, (x, rule.init_state(x), snaps), inputs)
    return x, snaps


@functools.partial(jax.jit, static_argnames=("process", "rule", "snap_key", "block_size", "mesh"))
def _run(score_fn, init_fn, ts, key, seeds, *, process, rule, snap_key, block_size, mesh):
    """Seeds (n,) -> (final (n, ...), snapshots (n, n_snap, ...)), n a multiple of block_size (x mesh size).

    Seeds are processed in blocks of `block_size` by `lax.map`, each block vmapped: seed i always sits
    at position i mod block_size of a block of the same shape, so its bits do not depend on n. `shard_map`
    gives each device of the mesh the same per-device program over its own blocks; a single device is a
    1-device mesh, so both go through the same compilation pipeline and agree bitwise.
    """
    snap_index = np.asarray(snap_key, np.int32)
    one = functools.partial(_one_seed, process=process, rule=rule, snap_index=snap_index)
    block = jax.vmap(one, in_axes=(None, None, None, None, 0))

    def local(score_fn, init_fn, ts, key, seeds):
        out = jax.lax.map(lambda b: block(score_fn, init_fn, ts, key, b), seeds.reshape(-1, block_size))
        return jax.tree.map(lambda a: a.reshape((a.shape[0] * a.shape[1],) + a.shape[2:]), out)

    rep, split = PartitionSpec(), PartitionSpec(mesh.axis_names[0])
    return jax.shard_map(local, mesh=mesh, in_specs=(rep, rep, rep, rep, split), out_specs=split,
                         check_vma=False)(
        score_fn, init_fn, ts, key, seeds)


def _validate(score_fn, init_fn, key, ts, n_seeds, shape, rule, process, snapshot_steps) -> tuple[int, ...]:
    ts = np.asarray(ts)
    if ts.ndim != 1 or ts.shape[0] < 2:
        raise ValueError(f"ts must be a 1-D time grid with at least 2 points (steps >= 1), got shape {ts.shape}")
    if not np.all(np.isfinite(ts)) or not np.all(np.diff(ts) < 0) or ts[-1] <= 0 or ts[0] > 1:
        raise ValueError(f"ts must decrease strictly within (0, 1], got {ts}")
    if isinstance(n_seeds, bool) or not isinstance(n_seeds, (int, np.integer)) or n_seeds < 1:
        raise ValueError(f"n_seeds must be an integer >= 1, got {n_seeds!r}")
    if getattr(rule, "requires_variance_preserving", False) and not process.variance_preserving:
        raise ValueError(
            f"sampler {type(rule).__name__} needs a variance-preserving process (m^2 + s^2 = 1), "
            f"got {type(process).__name__}")
    x_spec = jax.ShapeDtypeStruct(tuple(shape), jnp.float32)
    init_out = jax.eval_shape(init_fn, key)
    if init_out.shape != x_spec.shape:
        raise ValueError(f"init_fn returns shape {init_out.shape}, expected one sample of shape {x_spec.shape}")
    out = jax.eval_shape(score_fn, x_spec, jax.ShapeDtypeStruct((), jnp.float32))
    if out.shape != x_spec.shape:
        raise ValueError(f"score_fn(x, t) returns shape {out.shape} for x of shape {x_spec.shape}; "
                         f"it must return one score per coordinate (same shape as x)")
    steps = ts.shape[0] - 1
    index = -np.ones(steps, np.int32)
    for slot, k in enumerate(snapshot_steps):
        if not 1 <= k <= steps:
            raise ValueError(f"snapshot step {k} outside [1, {steps}] (steps done when the copy is taken)")
        index[k - 1] = slot
    if len(set(snapshot_steps)) != len(snapshot_steps):
        raise ValueError(f"snapshot_steps must be distinct, got {snapshot_steps}")
    return tuple(int(v) for v in index)


def sample_with_snapshots(
    score_fn: Callable[[Array, Array], Array],
    process: LinearGaussianSDE,
    rule: Any,
    ts: Array,
    *,
    key: Array,
    n_seeds: int,
    shape: Sequence[int],
    init_fn: Callable[[Array], Array] | None = None,
    snapshot_steps: Sequence[int] = (),
    mesh: Mesh | None = None,
    block_size: int = DEFAULT_BLOCK_SIZE,
) -> tuple[Array, Array]:
    """Samples (n_seeds, *shape) and snapshots (n_seeds, len(snapshot_steps), *shape).

    Args:
      score_fn: (x, t) -> score of p_t at one sample x (shape `shape`), t a scalar.
      process: the forward process (gives f, g, m, s).
      rule: an update rule from `diffserial.samplers.continuous`.
      ts: decreasing time grid (T + 1,) from `diffserial.samplers.grids.make_grid`.
      key: PRNG key; seed i uses fold_in(key, i).
      init_fn: key -> x at ts[0]; defaults to the process prior N(0, prior_std^2 I).
      snapshot_steps: step counts k in [1, T]; a copy of x is kept after k steps.
      mesh: 1-D mesh; seeds are split over its axis (default: the first device alone).
      block_size: seeds per vmapped block; seeds are padded to a multiple of block_size (times the
        mesh size). Results are bitwise reproducible across n_seeds and meshes for a fixed block_size.
    """
    shape = tuple(int(v) for v in shape)
    score_fn = _as_partial(score_fn)
    init_fn = _as_partial(init_fn if init_fn is not None else ProcessPrior(process, shape))
    snap_key = _validate(score_fn, init_fn, key, ts, n_seeds, shape, rule, process, tuple(snapshot_steps))
    mesh = mesh if mesh is not None else seed_mesh(jax.devices()[:1])
    if len(mesh.axis_names) != 1:
        raise ValueError(f"mesh must be 1-D, got axes {mesh.axis_names}")
    if isinstance(block_size, bool) or not isinstance(block_size, (int, np.integer)) or block_size < 1:
        raise ValueError(f"block_size must be an integer >= 1, got {block_size!r}")
    seeds = jnp.arange(n_seeds + (-n_seeds % (block_size * mesh.size)), dtype=jnp.uint32)
    seeds = jax.device_put(seeds, NamedSharding(mesh, PartitionSpec(mesh.axis_names[0])))
    x, snaps = _run(score_fn, init_fn, jnp.asarray(ts, jnp.float32), key, seeds, process=process,
                    rule=rule, snap_key=snap_key, block_size=int(block_size), mesh=mesh)
    return x[:n_seeds], snaps[:n_seeds]


def sample(score_fn, process, rule, ts, *, key, n_seeds, shape, init_fn=None, mesh=None,
           block_size=DEFAULT_BLOCK_SIZE) -> Array:
    """Final samples (n_seeds, *shape) of the reverse process; see `sample_with_snapshots`."""
    x, _ = sample_with_snapshots(score_fn, process, rule, ts, key=key, n_seeds=n_seeds, shape=shape,
                                 init_fn=init_fn, mesh=mesh, block_size=block_size)
    return x


def seed_mesh(devices: Sequence[Any] | None = None, axis: str = "seeds") -> Mesh:
    """A 1-D mesh over `devices` (default: all devices) for sharding seeds."""
    return Mesh(np.asarray(devices if devices is not None else jax.devices()), (axis,))
