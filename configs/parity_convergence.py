"""Masked-diffusion parity study: odd rate and exact TV vs steps, exact vs window-bounded predictor.

    python sample.py --config configs/parity_convergence.py --workdir runs/parity
"""

import ml_collections


def get_config() -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.study = "parity_convergence"
    c.seed = 0
    c.ns = (4, 8, 12, 16, 64)
    c.samplers = ("ancestral", "topk_confidence", "maskgit", "remdm_rescale", "remdm_loop", "revision",
                  "parity_revision", "parity_remask")
    c.predictors = ("exact", "window")  # window: the oracle restricted to +-window_radius tokens
    c.window_radius = 2
    c.schedule = "linear"  # linear | cosine | polynomial | loglinear
    c.steps = (1, 2, 4, 8, 16, 32)
    c.n_seeds = 2**14
    c.exact_tv_max_n = 16  # exact TV over 2^n strings up to this n; odd rate for every n
    c.floor_reps = 100
    c.block_size = 1024
    c.allow_config_change = False  # resume even if WORKDIR/config.json differs (the old one is kept)
    return c
