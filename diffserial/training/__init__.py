"""Training utilities: the optimizer (AdamW + warmup/cosine schedule + clipping), parameter EMA, one
per-device data-parallel train step with `shard_map` and `pmap` wrappers (`training.step`), and orbax
checkpointing with async saves and restore onto any sharding (`training.checkpoint`); what a run learns
(`training.tasks`), multi-process start-up and batch layout (`training.distributed`), metrics files
(`training.summaries`), SIGTERM handling (`training.preemption`), the config.json rule on resume
(`training.resume`) and the run itself (`training.loop`: `train`, `load_trained`)."""

from diffserial.training.optimizer import OptimizerConfig, ema_decay_at, ema_update, make_optimizer, make_schedule
from diffserial.training.step import (
    TrainState,
    make_pmap_step,
    make_shard_map_step,
    raise_if_nonfinite,
    replicate,
    train_step,
    unreplicate,
)

__all__ = [
    "OptimizerConfig",
    "TrainState",
    "ema_decay_at",
    "ema_update",
    "make_optimizer",
    "make_pmap_step",
    "make_schedule",
    "make_shard_map_step",
    "raise_if_nonfinite",
    "replicate",
    "train_step",
    "unreplicate",
]
