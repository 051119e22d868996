"""Train a masked-diffusion predictor on even-parity strings of n bits (the parity_learned study's model).

    python train.py --config configs/parity_train.py --workdir runs/parity_train
    python train.py --config configs/parity_train.py:looped --workdir runs/parity_looped   # or :recurrent

The part after ":" picks the network (transformer | looped | recurrent, default transformer); config.model
holds that module's attributes (`diffserial.training.tasks.MASKED_MODELS`), each overridable with
--config.model.FIELD=VALUE.
"""

import ml_collections


MODELS = {
    "transformer": dict(name="transformer", width=64, depth=2, heads=4, mlp_ratio=4),
    "looped": dict(name="looped", width=64, loops=2, heads=4, mlp_ratio=4),
    "recurrent": dict(name="recurrent", width=64, layers=1),
}


def get_config(model: str = "transformer") -> ml_collections.ConfigDict:
    if model not in MODELS:
        raise ValueError(f"unknown model {model!r}; valid: {', '.join(MODELS)}")
    c = ml_collections.ConfigDict()
    c.task = "masked_parity"
    c.seed = 0
    c.n = 8  # string length
    c.schedule = "linear"  # masking schedule of the NELBO: linear | cosine | polynomial | loglinear
    c.model = ml_collections.ConfigDict(MODELS[model])
    c.batch_size = 256  # global; must be divisible by the device count
    c.total_steps = 3000
    c.optimizer = ml_collections.ConfigDict(dict(
        lr=1e-3, b1=0.9, b2=0.999, eps=1e-8, weight_decay=0.0, warmup_steps=100, end_lr_ratio=0.0,
        clip_norm=1.0, ema_decay=0.999))
    c.log_every = 100
    c.checkpoint_every = 1000
    c.keep_checkpoints = 2
    c.parallel = "shard_map"  # shard_map | pmap
    c.allow_config_change = False  # resume even if WORKDIR/config.json differs (the old one is kept)
    return c
