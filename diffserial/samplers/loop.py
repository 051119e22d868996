"""The one sampling loop: a loop over the steps of a time grid, vmapped over seeds, optionally sharded.

    x_{k+1}, state_{k+1} = rule.step(dynamics, fn, x_k, state_k, ts[k], ts[k+1], key_{i,k})

for every sampler family: continuous (dynamics = forward SDE, fn = score function,
`diffserial.samplers.continuous.sample_continuous`) and masked (dynamics = masking schedule, fn = predictor,
`diffserial.samplers.masked.sample_masked`). This module knows no process and no family: `rule` is any
`diffserial.samplers.rule.Rule`, `dynamics` whatever its `step` reads.

Seed contract: seed i uses key_i = fold_in(key, i); its initial draw uses fold_in(key_i, 0) and step k
uses fold_in(fold_in(key_i, 1), k). Everything a seed does depends on (key, i) alone, never on the batch
size, chunking or device count. Only the final state is kept; `snapshot_steps` asks for copies after
chosen steps, held in a fixed buffer (memory independent of T).

Layout: the seeds are split into blocks of `block_size`; a `fori_loop` visits the blocks one at a
time and each block runs all its steps (a `lax.scan` over steps, the rule vmapped over the block's
seeds) before the next block starts, so a step reads and writes only its own block's carry (no
per-step slicing of the whole batch, and a block's state stays in cache). Seed i always sits at
position i mod block_size of a block of the same shape, so its bits do not depend on n. `shard_map`
gives each device of a 1-D mesh the same per-device program over its own blocks, and a single device
is a 1-device mesh, so both compile the same way. The mesh may span several processes (its devices in
process order, as `jax.devices()` lists them); the results are then gathered onto every process.

Compilation: once per (dynamics, rule, shape, padded grid length, snapshot steps, block size, blocks
held per device, mesh, callable structure). `fn` and `init_fn` are passed as pytrees: a
`jax.tree_util.Partial` over arrays (an exact oracle's parameters, a network's weights) is traced, so
new parameter values reuse the program; a plain function is wrapped in a `Partial` and cached by
identity. The number of steps T and the number of blocks are traced values, so with `pad_to` grids of
any T <= pad_to share one program: the grid is padded to pad_to + 1 points and the scan skips steps
k >= T with a `lax.cond` whose predicate is the same for every seed (a real branch, not a select).
"""

from __future__ import annotations

import functools
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import Mesh, PartitionSpec

from diffserial.samplers.rule import Rule
from diffserial.validation import check_positive_int

Array = jax.Array
DEFAULT_BLOCK_SIZE = 1024
Partial = jax.tree_util.Partial


def _as_partial(fn: Callable) -> Partial:
    return fn if isinstance(fn, Partial) else Partial(fn)


def _blockwise(block_fn, n_blocks, held):
    """Stack block_fn(j) for blocks j = 0..n_blocks-1 into (held, ...) arrays, one block at a time (a
    `fori_loop`); blocks n_blocks..held-1 stay zero. The trip count `n_blocks` is a traced value: XLA
    cannot specialise the loop to the number of blocks (it deletes a loop of one iteration, which would
    change fusion and the last bits)."""
    spec = jax.eval_shape(block_fn, jnp.int32(0))
    out = jax.tree.map(lambda sd: jnp.zeros((held,) + sd.shape, sd.dtype), spec)

    def body(j, out):
        return jax.tree.map(lambda o, r: jax.lax.dynamic_update_index_in_dim(o, r, j, 0), out, block_fn(j))

    return jax.lax.fori_loop(0, n_blocks, body, out)


@functools.partial(jax.jit, static_argnames=("dynamics", "rule", "snapshot_steps", "block_size", "held", "mesh"))
def _run(fn, init_fn, ts, n_steps, n_blocks, key, *, dynamics, rule, snapshot_steps, block_size, held, mesh):
    """(final (n, ...), snapshots (n, n_snap, ...)) in (device, block, lane) order, n = mesh size x held x
    block_size. Device d computes its blocks j < n_blocks, holding seeds (d n_blocks + j) block_size + lane
    (see `_block_counts`); its other blocks stay zero.

    Each block runs all n_steps steps (a `lax.scan` over the padded grid, steps k >= n_steps skipped by
    a `lax.cond`, reading ts[k], ts[k+1]) before the next block starts, so a step only touches its block's carry. Seed indices are computed
    on the device from its mesh position: a call transfers no seed array.
    """
    slot_of_step = np.full(ts.shape[0] - 1, -1, np.int32)
    for slot, k in enumerate(snapshot_steps):
        slot_of_step[k - 1] = slot

    def local(fn, init_fn, ts, n_steps, n_blocks, key):
        device = jax.lax.axis_index(mesh.axis_names[0]).astype(jnp.uint32)
        step = jax.vmap(lambda x, state, step_key, k, t, s: rule.step(
            dynamics, fn, x, state, t, s, jax.random.fold_in(step_key, k)), (0, 0, 0, None, None, None))

        def run_block(j):
            """Block j: (final x (block_size, ...), snapshots (n_snap, block_size, ...))."""
            first_seed = (device * n_blocks.astype(jnp.uint32) + j.astype(jnp.uint32)) * block_size
            seed_keys = jax.vmap(jax.random.fold_in, (None, 0))(
                key, first_seed + jnp.arange(block_size, dtype=jnp.uint32))
            x = jax.vmap(lambda kk: init_fn(jax.random.fold_in(kk, 0)))(seed_keys)
            step_keys = jax.vmap(jax.random.fold_in, (0, None))(seed_keys, 1)
            snaps = jnp.zeros((len(snapshot_steps),) + x.shape, x.dtype)

            def advance(k, x, state, snaps):
                x, state = step(x, state, step_keys, k, ts[k], ts[k + 1])
                if snapshot_steps:
                    slot = jnp.asarray(slot_of_step)[k]
                    snaps = jax.lax.cond(
                        slot >= 0, lambda sn: jax.lax.dynamic_update_index_in_dim(sn, x, slot, 0),
                        lambda sn: sn, snaps)
                return x, state, snaps

            def body(carry, k):
                # Steps k >= n_steps (padding up to pad_to) are skipped by a real branch: the predicate
                # is the same for every seed, so vmap does not turn it into a select.
                carry = jax.lax.cond(k < n_steps, lambda c: advance(k, *c), lambda c: c, carry)
                return carry, None

            carry = (x, jax.vmap(rule.init_state)(x), snaps)
            (x, _, snaps), _ = jax.lax.scan(body, carry, jnp.arange(ts.shape[0] - 1))
            return x, snaps

        x, snaps = _blockwise(run_block, n_blocks, held)
        n = held * block_size
        return x.reshape((n,) + x.shape[2:]), jnp.moveaxis(snaps, 1, 2).reshape((n, len(snapshot_steps)) + x.shape[2:])

    rep, split = PartitionSpec(), PartitionSpec(mesh.axis_names[0])
    return jax.shard_map(local, mesh=mesh, in_specs=(rep,) * 6, out_specs=split,
                         check_vma=False)(fn, init_fn, ts, n_steps, n_blocks, key)


def _signature(tree) -> tuple:
    """Hashable (structure, leaf shapes and dtypes) of a pytree: what tracing it depends on."""
    leaves, treedef = jax.tree.flatten(tree)
    # A jax.Array's dtype is already canonical; result_type (slow, ~4 us a leaf) is for the rest.
    dtype = lambda v: v.dtype if isinstance(v, jax.Array) else jnp.result_type(v)
    return treedef, tuple(jax.ShapeDtypeStruct(np.shape(v), dtype(v)) for v in leaves)


@functools.lru_cache(maxsize=256)
def _check_callables(fn_sig, init_sig, key_sig, shape, fn_out_shape) -> None:
    """Trace init_fn(key) and fn(x, t) abstractly (once per signature) and check their shapes."""
    rebuild = lambda sig: jax.tree.unflatten(sig[0], sig[1])
    init_out = jax.eval_shape(lambda f, k: f(k), rebuild(init_sig), rebuild(key_sig))
    if init_out.shape != shape:
        raise ValueError(f"init_fn returns shape {init_out.shape}, expected one sample of shape {shape}")
    out = jax.eval_shape(lambda f, x, t: f(x, t), rebuild(fn_sig), init_out,
                         jax.ShapeDtypeStruct((), jnp.float32))
    if out.shape != fn_out_shape:
        raise ValueError(f"the model function (x, t) returns shape {out.shape} for x of shape {shape}; "
                         f"expected {fn_out_shape}")


def _validate(ts, n_seeds, snapshot_steps, pad_to, block_size, t_end_min) -> None:
    ts = np.asarray(ts)
    if ts.ndim != 1 or ts.shape[0] < 2:
        raise ValueError(f"ts must be a 1-D time grid with at least 2 points (steps >= 1), got shape {ts.shape}")
    if not np.all(np.isfinite(ts)) or not np.all(np.diff(ts) < 0) or ts[-1] < t_end_min or ts[0] > 1:
        bound = "(0, 1]" if t_end_min > 0 else "[0, 1]"
        raise ValueError(f"ts must decrease strictly within {bound}, got {ts}")
    steps = ts.shape[0] - 1
    if pad_to is not None and (isinstance(pad_to, bool) or int(pad_to) != pad_to or pad_to < steps):
        raise ValueError(f"pad_to must be an integer >= the number of steps {steps}, got {pad_to!r}")
    check_positive_int("n_seeds", n_seeds)
    check_positive_int("block_size", block_size)
    for k in snapshot_steps:
        if not 1 <= k <= steps:
            raise ValueError(f"snapshot step {k} outside [1, {steps}] (steps done when the copy is taken)")
    if len(set(snapshot_steps)) != len(snapshot_steps):
        raise ValueError(f"snapshot_steps must be distinct, got {snapshot_steps}")


def run_chain(
    fn: Callable[[Array, Array], Array],
    dynamics: Any,
    rule: Rule,
    ts: Array,
    *,
    key: Array,
    n_seeds: int,
    init_fn: Callable[[Array], Array],
    shape: Sequence[int],
    fn_out_shape: Sequence[int],
    t_end_min: float = 0.0,
    snapshot_steps: Sequence[int] = (),
    mesh: Mesh | None = None,
    block_size: int = DEFAULT_BLOCK_SIZE,
    pad_to: int | None = None,
) -> tuple[Array, Array]:
    """The family-agnostic loop: x_{k+1}, state = rule.step(dynamics, fn, x_k, state, ts[k], ts[k+1], key).

    `dynamics` is a forward process (continuous) or a masking schedule (masked), `fn` the score
    function or the predictor, `init_fn(key)` the starting sample of shape `shape`. Checks the grid,
    the counts and the shapes of init_fn and fn (fn(x, t) must have shape `fn_out_shape`) before
    compiling; returns (final (n_seeds, *shape), snapshots (n_seeds, n_snap, *shape)). On a mesh over the
    devices of several processes (`sample.py --distributed`) each process computes its devices' seeds and
    then receives every seed's result (`process_allgather`), so host-side metrics see the whole sample.
    """
    shape, fn_out_shape = tuple(int(v) for v in shape), tuple(int(v) for v in fn_out_shape)
    snapshot_steps = tuple(int(k) for k in snapshot_steps)
    fn, init_fn = _as_partial(fn), _as_partial(init_fn)
    _validate(ts, n_seeds, snapshot_steps, pad_to, block_size, t_end_min)
    _check_callables(_signature(fn), _signature(init_fn), _signature(key), shape, fn_out_shape)
    mesh = mesh if mesh is not None else seed_mesh(jax.local_devices()[:1])
    if len(mesh.axis_names) != 1:
        raise ValueError(f"mesh must be 1-D, got axes {mesh.axis_names}")
    ts = np.asarray(ts, np.float32)
    steps = len(ts) - 1
    padded = np.concatenate([ts, np.full(((pad_to or steps) - steps,), ts[-1], np.float32)])
    n_blocks, held = _block_counts(int(n_seeds), int(block_size), mesh.size)
    outputs = _run(fn, init_fn, padded, np.int32(steps), np.int32(n_blocks), key, dynamics=dynamics, rule=rule,
                   snapshot_steps=snapshot_steps, block_size=int(block_size), held=held, mesh=mesh)
    if not all(a.is_fully_addressable for a in jax.tree.leaves(outputs)):  # the mesh spans several processes
        outputs = multihost_utils.process_allgather(outputs, tiled=True)
    return _unpad(outputs, n_seeds=int(n_seeds), n_devices=mesh.size, held=held, per_device=n_blocks,
                  block_size=int(block_size))


def _block_counts(n_seeds: int, block_size: int, n_devices: int) -> tuple[int, int]:
    """(blocks each device computes, blocks it holds): ceil(n_seeds / (block_size n_devices)) and at least 2.

    Device d computes seeds d per_device block_size + (0 .. per_device block_size - 1). Every device
    holds at least two blocks, the second one possibly unused: XLA specialises arrays with a dimension
    of size 1 (and would then round differently from a run with more blocks).
    """
    per_device = -(-n_seeds // (block_size * n_devices))
    return per_device, max(per_device, 2)


@functools.partial(jax.jit, static_argnames=("n_seeds", "n_devices", "held", "per_device", "block_size"))
def _unpad(outputs, *, n_seeds, n_devices, held, per_device, block_size):
    """Map (device, block, lane)-ordered outputs back to seeds 0..n_seeds-1 (one dispatch for all)."""

    def one(a):
        a = a.reshape((n_devices, held, block_size) + a.shape[1:])[:, :per_device]
        return a.reshape((n_devices * per_device * block_size,) + a.shape[3:])[:n_seeds]

    return jax.tree.map(one, outputs)


def seed_mesh(devices: Sequence[Any] | None = None, axis: str = "seeds") -> Mesh:
    """A 1-D mesh over `devices` (default: all devices) for sharding seeds."""
    return Mesh(np.asarray(devices if devices is not None else jax.devices()), (axis,))


def compiled_programs() -> int:
    """How many programs the loop has compiled so far (in this process): a new (dynamics, rule, shape,
    padded grid length, ...) configuration adds one, new parameter values of a traced `fn` add none."""
    return _run._cache_size()


__all__ = ["DEFAULT_BLOCK_SIZE", "compiled_programs", "run_chain", "seed_mesh"]
