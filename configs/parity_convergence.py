"""Masked-diffusion parity study: odd rate and exact TV vs steps, exact vs window-bounded predictor
(`diffserial.studies.parity_convergence`).

    python sample.py --config configs/parity_convergence.py --workdir runs/parity
    python sample.py --config configs/parity_convergence.py:paper --workdir runs/parity_paper   # accelerator

The argument after ":" is the scale. "small" (default): n = 4 .. 64, 2^14 seeds, T = 1 .. 32; 3 min on
2 CPU cores (README). This study needs no accelerator: the predictors are closed-form oracles, and the
small scale already separates the samplers. "paper": 2^18 seeds (intervals 4 times narrower), n up to
256 (does the ancestral odd rate keep growing with n?) and T up to 64; blocks of 2^13 seeds.

Expected device time of :paper: not measured (no accelerator run yet); an estimate from the work ratio.
The oracles cost O(n) per step, so the work is seeds x n x steps, summed over n and T: 2^18 x 360 x 127
against 2^14 x 104 x 63, W = 112 (an upper ratio: at n <= 16 a step costs more than its O(n) share). At
2 CPU cores that is <= 112 x 3 min = ~6 h. On an accelerator, time the small run there and multiply its
sampling time (the `seconds` column, compilation aside) by 112.
"""

import ml_collections

from configs import is_paper_scale


def get_config(scale: str = "small") -> ml_collections.ConfigDict:
    paper = is_paper_scale(scale)
    c = ml_collections.ConfigDict()
    c.study = "parity_convergence"
    c.scale = "paper" if paper else "small"  # recorded in config.json; choose it with the ":" argument
    c.seed = 0
    c.ns = (4, 8, 12, 16, 64, 256) if paper else (4, 8, 12, 16, 64)
    c.samplers = ("ancestral", "topk_confidence", "maskgit", "remdm_rescale", "remdm_loop", "revision",
                  "parity_revision", "parity_remask")
    c.predictors = ("exact", "window")  # window: the oracle restricted to +-window_radius tokens
    c.window_radius = 2
    c.schedule = "linear"  # linear | cosine | polynomial | loglinear
    c.steps = tuple(2**k for k in range(7 if paper else 6))  # 1 .. 64 (paper), 1 .. 32
    c.n_seeds = 2**18 if paper else 2**14
    c.exact_tv_max_n = 16  # exact TV over 2^n strings up to this n; odd rate for every n
    c.floor_reps = 100
    c.block_size = 2**13 if paper else 1024
    c.allow_config_change = False  # resume even if WORKDIR/config.json differs (the old one is kept)
    return c
