"""Multi-process data-parallel training: start-up, batch layout, and who writes.

Layout. Every process runs the same program. The mesh is one "data" axis over `jax.devices()`, which
lists devices in process order (process 0's devices, then process 1's, ...); with P processes of L
local devices each, device k of the mesh holds rows [k B/(P L), (k+1) B/(P L)) of the global batch of
B examples, so process p holds the contiguous rows

    [p B/P, (p+1) B/P)                                            (`process_rows`)

Each process builds ONLY those rows and `global_batch` stitches them into one global `jax.Array` per
leaf (`jax.make_array_from_process_local_data` with `NamedSharding(mesh, P("data"))`) without moving
data between hosts. The train step (`step.make_shard_map_step`) keeps the state replicated, all-reduces
gradients with `pmean`, so every process ends each step with the same state.

Why a batch is a pure function of (seed, step, global example index): if example i of step s is
x_i = f(fold_in(fold_in(key(seed), s), i)) and its diffusion noise comes from fold_in(step_key, i)
(`noise="example"`), then which process or device computes example i changes nothing but float
reduction order. The same run on 1 process x 4 devices or 2 processes x 2 devices (or a pod) gives the
same parameters, a resumed run sees the same data, and no process needs another's data or a shared
data loader.

Start-up. `initialize` must run before anything touches a JAX device (including `jax.devices()`);
train.py and sample.py call it through `define_flags` (--distributed, --coordinator_address, ...).
On CPU, cross-process collectives go through gloo over TCP (jax 0.10's default for
`jax_cpu_collectives_implementation`; `initialize` re-selects it if it was switched off), which is what the local
multi-process rehearsal on 127.0.0.1 uses; on TPU the same call with no arguments auto-detects the pod.
Only process 0 writes files that are not collective (metrics, npz exports): `is_writer()`; orbax
checkpoints are written collectively by every process.
"""

from __future__ import annotations

import os
import sys
from typing import Any, Callable, Sequence

import jax
import numpy as np
from absl import flags
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from diffserial.validation import check_positive_int

ENV_FLAG = "DIFFSERIAL_DISTRIBUTED"
_ENV_VALUES = ("", "0", "1")


def requested(flag: bool) -> bool:
    """True if `flag` is set or the environment variable DIFFSERIAL_DISTRIBUTED is "1".

    Unset, "" and "0" mean "not requested"; any other value raises ValueError (a typo such as "true"
    should not silently start a single-process run on every worker of a pod).
    """
    value = os.environ.get(ENV_FLAG, "").strip()
    if value not in _ENV_VALUES:
        raise ValueError(f"{ENV_FLAG}={value!r} is not understood; valid: unset, '0' or '1'")
    return bool(flag) or value == "1"


def _backends_initialized() -> bool:
    # jax 0.10 has no public accessor; jax.distributed.initialize performs the same check.
    from jax._src import xla_bridge

    return xla_bridge.backends_are_initialized()


def initialize(
    coordinator_address: str | None = None,
    num_processes: int | None = None,
    process_id: int | None = None,
    local_device_ids: int | Sequence[int] | None = None,
) -> None:
    """Join the multi-process JAX runtime: `jax.distributed.initialize(...)` with gloo CPU collectives.

    All arguments None: auto-detect (Cloud TPU, Slurm, Open MPI). Otherwise every process passes the
    same `coordinator_address` ("host:port" of process 0, which runs the coordinator service) and
    `num_processes`, and its own `process_id` in 0..num_processes-1.

    CPU cross-process collectives: gloo (jax 0.10's default) unless another implementation ("mpi")
    was configured; if they were switched off (None), gloo is selected again, because without them a
    CPU computation spanning processes cannot all-reduce.

    Raises RuntimeError if the distributed runtime is already up or if a JAX backend was already
    created (anything that touched a device: `jax.devices()`, a computation, `jax.device_put`),
    because the backend must be created knowing about the other processes.
    """
    if jax.distributed.is_initialized():
        raise RuntimeError("the JAX distributed runtime is already initialized; call initialize() once")
    if _backends_initialized():
        raise RuntimeError(
            "initialize() must run before any JAX device is touched (jax.devices(), a computation, "
            "jax.device_put, ...): the backend was already created for a single process. Call it first "
            "thing in main()."
        )
    if jax.config.jax_cpu_collectives_implementation is None:
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(
        coordinator_address=coordinator_address,
        num_processes=num_processes,
        process_id=process_id,
        local_device_ids=local_device_ids,
    )


def define_flags() -> Callable[[], bool]:
    """Define a script's absl flags --distributed, --coordinator_address, --num_processes and --process_id,
    and return `start()`: it calls `initialize` with their values when --distributed (or
    DIFFSERIAL_DISTRIBUTED=1) asks for it and returns whether it did. Call `start()` first thing in main()."""
    script = dict(module_name=sys.argv[0])  # listed with the script's own flags in --help
    requested_flag = flags.DEFINE_bool("distributed", False, "Call jax.distributed.initialize() before anything else.",
                                       **script)
    coordinator = flags.DEFINE_string("coordinator_address", None, "HOST:PORT of process 0 (auto-detected on TPU, "
                                      "Slurm).", **script)
    num_processes = flags.DEFINE_integer("num_processes", None, "Number of processes (auto-detected on TPU, Slurm).",
                                         **script)
    process_id = flags.DEFINE_integer("process_id", None, "This process's index (auto-detected on TPU, Slurm).",
                                      **script)

    def start() -> bool:
        if not requested(requested_flag.value):
            return False
        initialize(coordinator.value, num_processes.value, process_id.value)
        return True

    return start


def process_rows(
    global_batch_size: int,
    *,
    process_index: int | None = None,
    process_count: int | None = None,
    local_device_count: int | None = None,
) -> tuple[int, int]:
    """(start, stop): the global example indices [p B/P, (p+1) B/P) that process p builds.

    B = global_batch_size, P = process count, L = local devices per process (defaults: the running
    JAX runtime). B must be divisible by P L so every device gets the same number of rows.
    """
    p = jax.process_index() if process_index is None else process_index
    n_proc = jax.process_count() if process_count is None else process_count
    n_local = jax.local_device_count() if local_device_count is None else local_device_count
    check_positive_int("global batch size", global_batch_size)
    if not (0 <= p < n_proc) or n_local < 1:
        raise ValueError(f"need 0 <= process_index < process_count and local_device_count >= 1; got "
                         f"process_index={p}, process_count={n_proc}, local_device_count={n_local}")
    if global_batch_size % (n_proc * n_local):
        raise ValueError(
            f"global batch size {global_batch_size} must be divisible by process_count * local_device_count "
            f"= {n_proc} * {n_local} = {n_proc * n_local}"
        )
    rows = global_batch_size // n_proc
    return p * rows, (p + 1) * rows


def _check_process_order(mesh: Mesh) -> None:
    if mesh.devices.ndim != 1 or mesh.axis_names != ("data",):
        raise ValueError(f"expected a 1-D mesh with axis ('data',); got axes {mesh.axis_names} "
                         f"of shape {mesh.devices.shape}")
    owners = [d.process_index for d in mesh.devices.flat]
    counts = np.bincount(owners)
    if owners != sorted(owners) or len(set(counts.tolist())) != 1:
        raise ValueError(
            "the mesh must list devices in process order with the same number per process (as "
            f"jax.devices() does) so that process p holds rows [p B/P, (p+1) B/P); got owners {owners}"
        )


def global_batch(local_batch: Any, mesh: Mesh) -> Any:
    """One global `jax.Array` per leaf, split along axis 0 over the mesh's "data" axis.

    `local_batch` holds this process's rows [start, stop) of `process_rows(B)` (same leading size
    B/P for every leaf); the result has leading size B and sharding NamedSharding(mesh, P("data")),
    each local device holding its slice of the local rows, in order. Nothing is communicated.
    """
    _check_process_order(mesh)
    leaves = jax.tree.leaves(local_batch)
    if not leaves:
        raise ValueError("local batch has no array leaves")
    sizes = {int(np.shape(x)[0]) if np.ndim(x) else -1 for x in leaves}
    n_local = sum(d.process_index == jax.process_index() for d in mesh.devices.flat)
    if len(sizes) != 1 or -1 in sizes:
        raise ValueError(f"every local batch leaf needs the same leading (batch) size; got {sorted(sizes)}")
    (rows,) = sizes
    if n_local == 0 or rows % n_local:
        raise ValueError(f"local batch size {rows} must be divisible by this process's {n_local} mesh devices")
    n_proc = mesh.devices.size // n_local
    sharding = NamedSharding(mesh, P("data"))
    return jax.tree.map(
        lambda x: jax.make_array_from_process_local_data(
            sharding, np.asarray(x), (rows * n_proc,) + tuple(np.shape(x)[1:])
        ),
        local_batch,
    )


def is_writer() -> bool:
    """True on process 0, the one process that writes non-collective outputs (metrics, exports)."""
    return jax.process_index() == 0


__all__ = ["ENV_FLAG", "define_flags", "global_batch", "initialize", "is_writer", "process_rows", "requested"]
