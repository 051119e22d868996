"""Train the score MLP on the d-dimensional Gaussian mixture of the convergence study.

    python train.py --config configs/gmm_train.py --workdir runs/gmm_train [--config.total_steps=...]
"""

import ml_collections


def get_config() -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.task = "gmm_score"
    c.seed = 0
    c.d = 2
    c.n_components = 3  # the mixture of diffserial.targets.gmm.make_mixture(d, n, seed)
    c.process = "vp_linear"
    c.parameterization = "eps"  # eps | score
    c.weighting = "sigma2"  # sigma2 | likelihood | uniform
    c.model = ml_collections.ConfigDict(dict(hidden=128, n_blocks=2, embed_dim=64))
    c.batch_size = 512  # global; must be divisible by the device count
    c.total_steps = 2000
    c.optimizer = ml_collections.ConfigDict(dict(
        lr=1e-3, b1=0.9, b2=0.999, eps=1e-8, weight_decay=0.0, warmup_steps=100, end_lr_ratio=0.0,
        clip_norm=1.0, ema_decay=0.999))
    c.log_every = 50
    c.checkpoint_every = 500
    c.keep_checkpoints = 2
    c.parallel = "shard_map"  # shard_map (jit + shard_map over a 1-D mesh) | pmap
    c.allow_config_change = False  # resume even if WORKDIR/config.json differs (the old one is kept)
    return c
