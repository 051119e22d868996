"""Optimizer construction and parameter EMA.

`make_optimizer(config)` = chain(clip_by_global_norm(clip_norm), adamw(schedule, b1, b2, eps, weight_decay))
with schedule = `optax.warmup_cosine_decay_schedule(0, lr, warmup_steps, total_steps, end_lr_ratio * lr)`:
linear warmup from 0 to `lr` over `warmup_steps` updates, then cosine decay to `end_lr_ratio * lr` at
`total_steps` (optax's `decay_steps` counts the warmup). Gradients are clipped *before* Adam's moments.

`ema_update(ema, params, decay)` = decay * ema + (1 - decay) * params, leafwise (pure; jit-friendly);
the train step uses decay = `ema_decay_at(step, ema_decay)` = min(ema_decay, (1 + step) / (10 + step)).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping

import jax
import jax.numpy as jnp
import optax

from diffserial.validation import check_int, is_real


def check_decay(name: str, v) -> None:
    """ValueError unless `v` (an EMA decay) is a real number in [0, 1)."""
    if not is_real(v) or not (0.0 <= float(v) < 1.0):
        raise ValueError(f"{name} must be a real number in [0, 1); got {v!r}")


@dataclasses.dataclass(frozen=True)
class OptimizerConfig:
    """Hyperparameters of `make_optimizer` (validated on construction; ValueError names the field).

    lr: peak learning rate (> 0). b1, b2: Adam decays in [0, 1). eps: Adam epsilon (> 0).
    weight_decay: decoupled AdamW decay (>= 0). warmup_steps: linear warmup length (0 <= . < total_steps).
    total_steps: schedule length incl. warmup (>= 1). end_lr_ratio: final lr / lr in [0, 1].
    clip_norm: global-norm gradient clipping threshold (> 0). ema_decay: parameter EMA decay in [0, 1).
    """

    lr: float = 1e-3
    b1: float = 0.9
    b2: float = 0.999
    eps: float = 1e-8
    weight_decay: float = 0.0
    warmup_steps: int = 0
    total_steps: int = 10_000
    end_lr_ratio: float = 0.0
    clip_norm: float = 1.0
    ema_decay: float = 0.999

    def __post_init__(self):
        for name in ("lr", "eps", "clip_norm"):
            v = getattr(self, name)
            if not is_real(v) or not float(v) > 0.0:
                raise ValueError(f"{name} must be a real number > 0; got {v!r}")
        for name in ("b1", "b2", "ema_decay"):
            check_decay(name, getattr(self, name))
        if not is_real(self.weight_decay) or not float(self.weight_decay) >= 0.0:
            raise ValueError(f"weight_decay must be a real number >= 0; got {self.weight_decay!r}")
        if not is_real(self.end_lr_ratio) or not (0.0 <= float(self.end_lr_ratio) <= 1.0):
            raise ValueError(f"end_lr_ratio must be a real number in [0, 1]; got {self.end_lr_ratio!r}")
        for name, lo in (("total_steps", 1), ("warmup_steps", 0)):
            check_int(name, getattr(self, name), lo)
        if self.warmup_steps >= self.total_steps:  # optax needs a non-empty cosine phase
            raise ValueError(
                f"warmup_steps ({self.warmup_steps}) must be less than total_steps ({self.total_steps})"
            )


def _as_config(config: OptimizerConfig | Mapping[str, Any]) -> OptimizerConfig:
    if isinstance(config, OptimizerConfig):
        return config
    if isinstance(config, Mapping):
        fields = {f.name for f in dataclasses.fields(OptimizerConfig)}
        unknown = sorted(set(config) - fields)
        if unknown:
            raise ValueError(f"unknown optimizer config field(s) {unknown}; valid: {sorted(fields)}")
        return OptimizerConfig(**config)
    raise ValueError(f"config must be an OptimizerConfig or a dict; got {type(config).__name__}")


def make_schedule(config: OptimizerConfig | Mapping[str, Any]) -> optax.Schedule:
    """step -> learning rate: linear warmup 0 -> lr, then cosine decay to end_lr_ratio * lr."""
    c = _as_config(config)
    return optax.warmup_cosine_decay_schedule(
        init_value=0.0,
        peak_value=float(c.lr),
        warmup_steps=int(c.warmup_steps),
        decay_steps=int(c.total_steps),
        end_value=float(c.lr) * float(c.end_lr_ratio),
    )


def make_optimizer(config: OptimizerConfig | Mapping[str, Any], flatten: bool = True) -> optax.GradientTransformation:
    """flatten(chain(clip_by_global_norm(clip_norm), adamw(make_schedule(config), b1, b2, eps, weight_decay))).

    With flatten (default), `optax.flatten` runs the same elementwise update on the parameters raveled into one vector, so the
    moments are two flat vectors instead of two trees: a few large kernels instead of several per leaf
    (the MLP step is ~5 ms, where per-leaf kernels and per-leaf checkpoint costs show) -- the same
    math up to the float summation order of the global norm.
    """
    c = _as_config(config)
    optimizer = optax.chain(
        optax.clip_by_global_norm(float(c.clip_norm)),
        optax.adamw(
            learning_rate=make_schedule(c),
            b1=float(c.b1),
            b2=float(c.b2),
            eps=float(c.eps),
            weight_decay=float(c.weight_decay),
        ),
    )
    return optax.flatten(optimizer) if flatten else optimizer


def ema_decay_at(step, decay):
    """The EMA decay used at update `step` (0-based): min(decay, (1 + step) / (10 + step)).

    The warm-up (TensorFlow's ExponentialMovingAverage with num_updates) keeps the average from being
    dominated by the initial parameters early on: with a constant 0.999 the average after 1000 updates
    would still give the random initialisation weight 0.999^1000 = 0.37.
    """
    step = jnp.asarray(step, jnp.float32)
    return jnp.minimum(decay, (1.0 + step) / (10.0 + step))


def ema_update(ema: Any, params: Any, decay) -> Any:
    """decay * ema + (1 - decay) * params, leafwise. `decay` in [0, 1) (checked when a Python number)."""
    if is_real(decay):
        check_decay("decay", decay)
    return jax.tree.map(lambda e, p: decay * e + (1.0 - decay) * p, ema, params)


__all__ = ["OptimizerConfig", "check_decay", "ema_decay_at", "ema_update", "make_optimizer", "make_schedule"]
