"""Asynchronous, sharding-aware checkpointing on top of the current Orbax API.

Thin wrapper over ``orbax.checkpoint.CheckpointManager`` (orbax-checkpoint 0.12)
using ``ocp.args.StandardSave`` / ``ocp.args.StandardRestore``.

Typical use::

    mgr = open_manager("/ckpt", max_to_keep=3, async_save=True)
    save(mgr, step, state)            # returns immediately; writes in background
    ...
    abstract = abstract_like(state_template, sharding_fn)   # or jax.eval_shape
    out = restore_latest(mgr, abstract)  # -> (step, state) or None
    close(mgr)                         # waits for pending saves, releases threads

Commit semantics (orbax-checkpoint 0.12.x, local / POSIX filesystems)
--------------------------------------------------------------------
A step is written into a temporary directory
``<dir>/<step>.orbax-checkpoint-tmp[-<timestamp>]`` and *committed* by an
atomic ``rename`` to ``<dir>/<step>`` (``AtomicRenameTemporaryPath``, the
default on filesystems that support atomic rename).  The rename happens only
after all array data and metadata have been flushed, so **the presence of the
final, suffix-free ``<dir>/<step>`` directory is the commit marker**.  Step
discovery (``manager.all_steps()`` / ``latest_step()``) lists only finalized
step directories and skips anything containing ``.orbax-checkpoint-tmp``; such
leftovers of an interrupted save are ignored on restore (and garbage collected
by a later manager).  ``commit_success.txt`` files are *also* written into
local step directories, but with ``AtomicRenameTemporaryPath`` they are not
consulted: a suffix-free step directory without them is still listed as
committed (verified against orbax-checkpoint 0.12.8 in
``tests/training/test_checkpoint.py``).  On object stores without atomic rename (e.g. GCS) orbax
instead uses ``CommitFileTemporaryPath``, where the marker is a
``commit_success.txt`` file inside the step directory.

PRNG keys
---------
New-style typed keys (``jax.random.key``) have an extended dtype
(``key<fry>``) that the array serializer cannot write.  :func:`save` therefore
converts every typed key leaf to its raw ``uint32`` key data
(``jax.random.key_data``) and :func:`restore_latest` converts it back
(``jax.random.wrap_key_data`` with the implementation recorded in the abstract
target).  Legacy raw ``uint32[2]`` keys need no conversion.  Pass the abstract
target with the *typed* key (as produced by ``jax.eval_shape``) and the
conversion is transparent.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any, Callable

import jax
import orbax.checkpoint as ocp

__all__ = [
    "CheckpointConfig",
    "open_manager",
    "save",
    "restore_latest",
    "latest_step",
    "abstract_like",
    "wait",
    "close",
]

PyTree = Any


@dataclasses.dataclass(frozen=True)
class CheckpointConfig:
    """Where and how to checkpoint."""

    directory: str
    max_to_keep: int | None = 3  # keep-latest-N; None keeps everything
    async_save: bool = True

    def open(self) -> ocp.CheckpointManager:
        return open_manager(self.directory, self.max_to_keep, self.async_save)


def open_manager(
    directory: str | os.PathLike,
    max_to_keep: int | None = 3,
    async_save: bool = True,
) -> ocp.CheckpointManager:
    """Create (or reopen) a checkpoint manager rooted at ``directory`` (a local path, made absolute, or a
    URL such as ``gs://bucket/run/checkpoints``, passed on as is)."""
    directory = os.fspath(directory)
    if "://" not in directory:
        directory = os.path.abspath(directory)
    options = ocp.CheckpointManagerOptions(
        max_to_keep=max_to_keep,
        enable_async_checkpointing=async_save,
        create=True,
    )
    return ocp.CheckpointManager(directory, options=options)


# --------------------------------------------------------------------------- keys


def _is_typed_key(x: Any) -> bool:
    dtype = getattr(x, "dtype", None)
    return dtype is not None and jax.dtypes.issubdtype(dtype, jax.dtypes.prng_key)


def _keys_to_data(tree: PyTree) -> PyTree:
    return jax.tree.map(lambda x: jax.random.key_data(x) if _is_typed_key(x) else x, tree)


def _abstract_keys_to_data(abstract: PyTree) -> PyTree:
    """Replace typed-key ShapeDtypeStructs by their raw uint32 key-data struct."""

    def conv(x):
        if not _is_typed_key(x):
            return x
        data = jax.eval_shape(jax.random.key_data, jax.ShapeDtypeStruct(x.shape, x.dtype))
        sharding = getattr(x, "sharding", None)
        if sharding is not None:
            # Key data has one trailing axis more; the same mesh partition applies
            # to the leading axes (trailing axis replicated).
            if isinstance(sharding, jax.sharding.NamedSharding):
                spec = tuple(sharding.spec) + (None,) * (data.ndim - len(sharding.spec))
                sharding = jax.sharding.NamedSharding(
                    sharding.mesh, jax.sharding.PartitionSpec(*spec)
                )
            elif not isinstance(sharding, jax.sharding.SingleDeviceSharding):
                sharding = jax.sharding.NamedSharding(
                    jax.sharding.Mesh(list(sharding.device_set), ("_d",)),
                    jax.sharding.PartitionSpec(),
                )
        return jax.ShapeDtypeStruct(data.shape, data.dtype, sharding=sharding)

    return jax.tree.map(conv, abstract)


def _key_impl(a):
    """PRNG implementation of a typed-key leaf (concrete array or ShapeDtypeStruct)."""
    try:
        return jax.random.key_impl(a)
    except TypeError:
        # ShapeDtypeStruct: the extended KeyTy dtype carries the implementation.
        return a.dtype._impl  # noqa: SLF001 - no public accessor for abstract keys


def _data_to_keys(restored: PyTree, abstract: PyTree) -> PyTree:
    def conv(x, a):
        if _is_typed_key(a):
            return jax.random.wrap_key_data(x, impl=_key_impl(a))
        return x

    return jax.tree.map(conv, restored, abstract)


# ------------------------------------------------------------------------ public


def save(manager: ocp.CheckpointManager, step: int, state: PyTree, *, force: bool = False) -> bool:
    """Start saving ``state`` at ``step``; returns whether a save was started.

    With async checkpointing this returns once arrays are copied to host; the
    write + commit (atomic rename) happen in a background thread.  ``state``
    may contain jax/numpy arrays, Python scalars and typed PRNG keys.
    """
    return manager.save(int(step), args=ocp.args.StandardSave(_keys_to_data(state)), force=force)


def abstract_like(
    state: PyTree, sharding: jax.sharding.Sharding | Callable[[Any], jax.sharding.Sharding] | None = None
) -> PyTree:
    """``jax.eval_shape``-style abstract target for ``state`` with a sharding per leaf.

    ``sharding`` is either one sharding for every array leaf, a function
    ``leaf_struct -> sharding``, or None (keep the leaves' own sharding).
    """
    abstract = jax.eval_shape(lambda s: s, state)

    def attach(x, orig):
        if not isinstance(x, jax.ShapeDtypeStruct):
            return x
        if sharding is None:
            sh = getattr(orig, "sharding", None)
        elif callable(sharding):
            sh = sharding(x)
        else:
            sh = sharding
        return jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sh)

    return jax.tree.map(attach, abstract, state)


def restore_latest(manager: ocp.CheckpointManager, abstract_state: PyTree) -> tuple[int, PyTree] | None:
    """Restore the latest *committed* step onto ``abstract_state``'s shardings.

    ``abstract_state`` is a pytree of ``jax.ShapeDtypeStruct`` (e.g. from
    ``jax.eval_shape`` / :func:`abstract_like`) whose ``sharding`` determines
    device placement, so a checkpoint written from one device layout can be
    restored onto another.  Returns None if there is no committed step.
    Uncommitted ``*.orbax-checkpoint-tmp*`` directories are never considered.
    """
    manager.reload()  # pick up steps written by other processes / managers
    step = manager.latest_step()
    if step is None:
        return None
    target = _abstract_keys_to_data(abstract_state)
    restored = manager.restore(step, args=ocp.args.StandardRestore(target))
    return step, _data_to_keys(restored, abstract_state)


def latest_step(directory: str | os.PathLike) -> int | None:
    """The latest committed step in ``directory``, or None if it holds none (read with a short-lived manager)."""
    manager = open_manager(directory, async_save=False)
    try:
        return manager.latest_step()
    finally:
        close(manager)


def wait(manager: ocp.CheckpointManager) -> None:
    """Block until all pending async saves are committed."""
    manager.wait_until_finished()


def close(manager: ocp.CheckpointManager) -> None:
    """Wait for pending saves and release the manager's resources."""
    manager.wait_until_finished()
    manager.close()
