"""One data-parallel training step, and `shard_map` / `pmap` wrappers built from the same function.

`train_step(state, batch, *, loss_fn, optimizer, ema_decay, axis_name="data", noise="device",
schedule=None)` runs on ONE device's shard of the global batch, inside a mapped context that binds
`axis_name` (shard_map or pmap):

  1. `step_key, next_rng = jax.random.split(state.rng)` (state.rng is replicated, so identical on every
     device and independent of the device count);
  2. the key handed to `loss_fn(params, local_batch, key) -> (loss, aux)` is
       noise="device":  fold_in(step_key, axis_index(axis_name)) -- each device draws independent noise
                        for its local examples (the draw then depends on the number of devices);
       noise="example": step_key itself, and the batch must be a dict with an "index" entry holding
                        each example's GLOBAL index (B,) int. CONTRACT: the loss derives example i's
                        noise from fold_in(step_key, index[i]) only (see `losses.dsm_batch_loss(...,
                        per_example_noise=True)`), so the whole step is independent of how the global
                        batch is split across devices (1 device vs 8 give the same update up to float
                        reduction order);
  3. loss and gradients of the local batch are averaged over devices with `lax.pmean` (local losses are
     batch means over equal-sized shards, so this is the global batch mean), and so are the scalars of
     aux["metrics"] when the loss returns them (e.g. per-token accuracies; averaged per device);
  4. `finite` = loss and every gradient entry finite, all-reduced with `lax.pmin` (every device agrees);
  5. optax update, apply, EMA: ema <- b * ema + (1 - b) * new_params with the warmed-up decay
     b = min(ema_decay, (1 + step) / (10 + step)) (`optimizer.ema_decay_at`);
  6. if not finite, the step is a no-op: the returned state is the input state unchanged (step counter,
     params, optimizer state, EMA and rng), selected with `lax.cond`. The caller inspects
     `metrics["finite"]` (or calls `raise_if_nonfinite(metrics)`) and stops with an error naming
     `metrics["step"]`.

Metrics (all replicated scalars): loss, grad_norm (global norm of the averaged, unclipped gradients),
finite (bool), step (the index of the step attempted, i.e. state.step on input), lr (schedule(step),
only when `schedule` is given, e.g. `optimizer.make_schedule(config)`).

Wrappers (both validate, before compiling, that every batch leaf has the same leading size B and that
B is divisible by the device count, raising ValueError otherwise):
  make_shard_map_step: jit(shard_map(step, mesh=Mesh(devices, ("data",)), in_specs=(P(), P("data")),
                       out_specs=(P(), P()))) -- state replicated, batch split along axis 0; returns
                       (state, metrics) as ordinary arrays. Works across processes (mesh over
                       jax.devices() of every process, see `training.distributed`): the state and any
                       host-local batch leaf are taken as the global value, identical on every process;
                       a batch made by `distributed.global_batch` is used as it is.
  make_pmap_step:      pmap(step, axis_name="data") -- state carries a leading device axis (`replicate`,
                       `unreplicate`); the batch is reshaped to (n_devices, B // n_devices, ...);
                       returns (replicated state, metrics of device 0).
"""

from __future__ import annotations

import dataclasses
import functools
import weakref
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from diffserial.training.optimizer import check_decay, ema_decay_at, ema_update

Array = jax.Array
LossFn = Callable[[Any, Any, Array], tuple[Array, dict]]
NOISE_MODES = ("device", "example")


@functools.partial(
    jax.tree_util.register_dataclass,
    data_fields=["step", "params", "opt_state", "ema_params", "rng"],
    meta_fields=[],
)
@dataclasses.dataclass(frozen=True)
class TrainState:
    """step (int32 scalar), params, opt_state, ema_params (same tree as params), rng (PRNG key)."""

    step: Array
    params: Any
    opt_state: Any
    ema_params: Any
    rng: Array

    @classmethod
    def create(cls, params: Any, optimizer: optax.GradientTransformation, rng: Array) -> "TrainState":
        params = jax.tree.map(jnp.asarray, params)
        return cls(
            step=jnp.zeros((), jnp.int32),
            params=params,
            opt_state=optimizer.init(params),
            ema_params=jax.tree.map(jnp.array, params),
            rng=rng,
        )


def _to_varying(tree: Any, axis_name: str) -> Any:
    def cast(x):
        if axis_name in getattr(jax.typeof(x), "vma", frozenset()):
            return x
        return jax.lax.pcast(x, axis_name, to="varying")

    return jax.tree.map(cast, tree)


def _tree_all_finite(tree: Any) -> Array:
    leaves = [jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree)]
    return jnp.all(jnp.stack(leaves)) if leaves else jnp.array(True)


def train_step(
    state: TrainState,
    batch: Any,
    *,
    loss_fn: LossFn,
    optimizer: optax.GradientTransformation,
    ema_decay: float,
    axis_name: str = "data",
    noise: str = "device",
    schedule: Callable[[Array], Array] | None = None,
) -> tuple[TrainState, dict]:
    """One per-device step (see the module docstring); must run under shard_map / pmap binding axis_name."""
    if noise not in NOISE_MODES:
        raise ValueError(f"unknown noise mode {noise!r}; valid: {', '.join(NOISE_MODES)}")
    if noise == "example" and not (isinstance(batch, dict) and "index" in batch):
        raise ValueError('noise="example" needs a dict batch with an "index" entry of global example indices')

    step_key, next_rng = jax.random.split(state.rng)
    if noise == "device":
        key = jax.random.fold_in(step_key, jax.lax.axis_index(axis_name))
    else:
        key = step_key

    # Differentiate w.r.t. a device-varying view of the replicated params: under shard_map's
    # varying-axes checking, the gradient of an invariant input is implicitly psum'ed over the axis
    # (transpose of the implicit pvary), which would sum instead of average and differ from pmap.
    params_v = _to_varying(state.params, axis_name)
    (loss, aux), grads = jax.value_and_grad(lambda p: loss_fn(p, batch, key), has_aux=True)(params_v)
    loss = jax.lax.pmean(loss, axis_name)
    grads = jax.lax.pmean(grads, axis_name)
    grad_norm = optax.tree.norm(grads)
    finite = jnp.isfinite(loss) & _tree_all_finite(grads)
    finite = jax.lax.pmin(finite.astype(jnp.int32), axis_name) > 0

    updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    candidate = TrainState(
        step=state.step + 1,
        params=params,
        opt_state=opt_state,
        ema_params=ema_update(state.ema_params, params, ema_decay_at(state.step, ema_decay)),
        rng=next_rng,
    )
    new_state = jax.lax.cond(finite, lambda: candidate, lambda: state)

    metrics = {"loss": loss, "grad_norm": grad_norm, "finite": finite, "step": state.step}
    extra = aux.get("metrics", {}) if isinstance(aux, dict) else {}
    metrics.update({k: jax.lax.pmean(jnp.asarray(v, jnp.float32), axis_name) for k, v in extra.items()})
    if schedule is not None:
        metrics["lr"] = jnp.asarray(schedule(state.step), jnp.float32)
    return new_state, metrics


def raise_if_nonfinite(metrics: dict) -> None:
    """Raise FloatingPointError naming the step when `metrics["finite"]` is False (host sync)."""
    if not bool(np.asarray(metrics["finite"])):
        raise FloatingPointError(
            f"non-finite loss or gradient at step {int(np.asarray(metrics['step']))} "
            f"(loss={float(np.asarray(metrics['loss']))}); the update was not applied"
        )


# --------------------------------------------------------------------------------------------------
# Wrappers
# --------------------------------------------------------------------------------------------------
def _batch_size(batch: Any, n_devices: int) -> int:
    leaves = jax.tree.leaves(batch)
    if not leaves:
        raise ValueError("batch has no array leaves")
    sizes = {int(np.shape(x)[0]) if np.ndim(x) else -1 for x in leaves}
    if len(sizes) != 1 or -1 in sizes:
        raise ValueError(f"every batch leaf needs the same leading (batch) size; got sizes {sorted(sizes)}")
    (b,) = sizes
    if b % n_devices:
        raise ValueError(f"global batch size {b} must be divisible by the number of devices {n_devices}")
    return b


def _partial_step(loss_fn, optimizer, ema_decay, noise, schedule):
    check_decay("ema_decay", ema_decay)
    if noise not in NOISE_MODES:
        raise ValueError(f"unknown noise mode {noise!r}; valid: {', '.join(NOISE_MODES)}")
    return functools.partial(
        train_step,
        loss_fn=loss_fn,
        optimizer=optimizer,
        ema_decay=float(ema_decay),
        axis_name="data",
        noise=noise,
        schedule=schedule,
    )


def _place_global(x: Any, sharding: NamedSharding) -> Array:
    if isinstance(x, jax.Array) and not x.is_fully_addressable:
        return jax.device_put(x, sharding)  # already global: a no-op, or a reshard over the same devices
    if jax.dtypes.issubdtype(getattr(x, "dtype", np.float32), jax.dtypes.prng_key):
        data = _place_global(jax.random.key_data(x), sharding)
        return jax.random.wrap_key_data(data, impl=jax.random.key_impl(x))
    return jax.device_put(np.asarray(x), sharding)  # jax checks the value is the same on every process


def _is_placed(tree: Any, sharding: NamedSharding) -> bool:
    """Every leaf is a jax.Array already laid out as `sharding` (or an equivalent sharding, e.g. a
    single-device array for a one-device mesh), such as the state a step returned."""
    return all(isinstance(x, jax.Array) and x.sharding.is_equivalent_to(sharding, x.ndim)
               for x in jax.tree.leaves(tree))


def _place(tree: Any, sharding: NamedSharding) -> Any:
    """device_put(tree, sharding). When the sharding spans other processes' devices (multi-process),
    a leaf that is not yet a global array (numpy, a local jax array, a PRNG key) is taken as the
    GLOBAL value, which must be (and is checked by jax to be) identical on every process: right for
    the replicated state built from the same seed everywhere; for the batch, a process either passes
    the whole global batch or, cheaper, only its rows assembled by `distributed.global_batch`."""
    if _is_placed(tree, sharding):  # e.g. the state a step returned: a device_put costs ~25 us a leaf
        return tree
    if sharding.is_fully_addressable:
        return jax.device_put(tree, sharding)
    return jax.tree.map(lambda x: _place_global(x, sharding), tree)


def make_shard_map_step(
    loss_fn: LossFn,
    optimizer: optax.GradientTransformation,
    *,
    ema_decay: float,
    devices: Sequence[jax.Device] | None = None,
    noise: str = "device",
    schedule: Callable[[Array], Array] | None = None,
    donate: bool = False,
) -> Callable[[TrainState, Any], tuple[TrainState, dict]]:
    """(state, global_batch) -> (state, metrics): jit(shard_map(train_step)) over Mesh(devices, ("data",)).

    donate=True donates the input state's buffers to the output state (updates in place, no copy of
    the state per step): the caller must not use the state it passed in afterwards (a training loop
    that threads the state through does not).
    """
    devices = list(jax.devices() if devices is None else devices)
    step = _partial_step(loss_fn, optimizer, ema_decay, noise, schedule)
    mesh = Mesh(np.asarray(devices), ("data",))
    mapped = jax.jit(jax.shard_map(step, mesh=mesh, in_specs=(P(), P("data")), out_specs=(P(), P())),
                     donate_argnums=(0,) if donate else ())
    replicated, split = NamedSharding(mesh, P()), NamedSharding(mesh, P("data"))

    last_output = [lambda: None]  # weak reference to the state the previous call returned

    def run(state: TrainState, batch: Any) -> tuple[TrainState, dict]:
        _batch_size(batch, len(devices))
        # Place inputs as the program expects, so the first call and later calls see the same input
        # shardings and compile once. The state the previous call returned is placed already: skip
        # even the check (reading .sharding of ~50 fresh output arrays costs ~0.3 ms a call).
        if state is not last_output[0]():
            state = _place(state, replicated)
        new_state, metrics = mapped(state, _place(batch, split))
        last_output[0] = weakref.ref(new_state)
        return new_state, metrics

    run.mesh = mesh
    return run


def replicate(tree: Any, devices: int | Sequence[jax.Device] | None = None) -> Any:
    """Copies of `tree` stacked along a new leading axis, one per device (default: all local devices;
    an int n means the first n), placed one slice per device as `pmap` lays out its outputs (so the
    first and later calls of a pmap step see the same input layout and compile once)."""
    if devices is None:
        devices = jax.local_devices()
    elif isinstance(devices, int):
        devices = jax.local_devices()[:devices]
    devices = list(devices)
    sharding = NamedSharding(Mesh(np.asarray(devices), ("data",)), P("data"))
    return jax.tree.map(
        lambda x: jax.device_put(jnp.broadcast_to(x, (len(devices),) + jnp.shape(x)), sharding), tree
    )


def unreplicate(tree: Any) -> Any:
    """The first device's copy of a replicated tree."""
    return jax.tree.map(lambda x: x[0], tree)


def make_pmap_step(
    loss_fn: LossFn,
    optimizer: optax.GradientTransformation,
    *,
    ema_decay: float,
    devices: Sequence[jax.Device] | None = None,
    noise: str = "device",
    schedule: Callable[[Array], Array] | None = None,
    donate: bool = False,
) -> Callable[[TrainState, Any], tuple[TrainState, dict]]:
    """(replicated state, global_batch) -> (replicated state, device-0 metrics): pmap(train_step);
    donate as in `make_shard_map_step`."""
    devices = list(jax.local_devices() if devices is None else devices)
    n = len(devices)
    step = _partial_step(loss_fn, optimizer, ema_decay, noise, schedule)
    mapped = jax.pmap(step, axis_name="data", devices=devices, donate_argnums=(0,) if donate else ())

    def run(state: TrainState, batch: Any) -> tuple[TrainState, dict]:
        b = _batch_size(batch, n)
        local = jax.tree.map(lambda x: jnp.reshape(x, (n, b // n) + jnp.shape(x)[1:]), batch)
        new_state, metrics = mapped(state, local)
        return new_state, unreplicate(metrics)

    return run


__all__ = [
    "NOISE_MODES",
    "TrainState",
    "make_pmap_step",
    "make_shard_map_step",
    "raise_if_nonfinite",
    "replicate",
    "train_step",
    "unreplicate",
]
