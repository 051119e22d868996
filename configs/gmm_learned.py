"""Learned-score convergence study: train the score MLP for each length in train_steps, measure eps_score,
then TV vs steps beside the exact score (`diffserial.studies.gmm_learned`).

    python sample.py --config configs/gmm_learned.py --workdir runs/gmm_learned
    python sample.py --config configs/gmm_learned.py:paper --workdir runs/gmm_learned_paper   # accelerator
    python sample.py --config configs/gmm_learned.py --config.checkpoint=runs/gmm_train   # a train.py workdir

The argument after ":" is the scale. "small" (default): models trained for 300 and 3000 steps, 20 000
seeds, T = 1 .. 256; 12 min on 2 CPU cores under load (9 min 45 s at a lower load; README). It needs no
accelerator: the model is a small MLP. "paper": a third model trained for 30 000 steps (does the floor keep
shrinking?), 2^20 seeds (the noise floor ~7 times lower, below the floors of the learned scores), eps_score
from 2^16 draws per time point, blocks of 2^16 seeds. Same training config (batch 512) as the small scale,
so its 300- and 3000-step models are the small scale's models.

Expected device time of :paper: not measured (no accelerator run yet); an estimate from work ratios.
Training: 33 300 against 3300 steps, W = 10. Sampling: models x seeds x steps summed over T, 4 x 2^20 x
511 against 3 x 20 000 x 511, W = 70. The larger ratio bounds the whole: <= 70 x 12 min = ~14 h on
2 CPU cores. On an accelerator, time the small run there and scale its training time by 10 and its
sampling time (the `seconds` column) by 70. Training writes orbax checkpoints into WORKDIR/train_N from
every process, so a multi-host run needs a WORKDIR that all hosts share (a bucket; TPU.md).
"""

import ml_collections

from configs import gmm_train, is_paper_scale


def get_config(scale: str = "small") -> ml_collections.ConfigDict:
    paper = is_paper_scale(scale)
    c = ml_collections.ConfigDict()
    c.study = "gmm_learned"
    c.scale = "paper" if paper else "small"  # recorded in config.json; choose it with the ":" argument
    c.seed = 0
    c.train = gmm_train.get_config()  # the model, data (d, mixture) and optimizer of each training run
    c.train_steps = (300, 3000, 30_000) if paper else (300, 3000)  # one model per length, into WORKDIR/train_N
    c.checkpoint = ""  # a train.py workdir: study its model instead of training (train_steps unused)
    c.samplers = ("euler_maruyama", "li_yan_sde", "pf_heun", "dpm_solver_pp_2m")
    c.grid = "uniform"
    c.steps = tuple(2**k for k in range(9))  # 1 .. 256
    c.eps = 1e-3
    c.prior = "exact"  # x_1 ~ p_1 in closed form: TV is discretisation + score error only
    c.n_seeds = 2**20 if paper else 20_000
    c.max_cells = 64
    c.floor_reps = 100
    c.block_size = 2**16 if paper else 1024
    c.eps_score_times = 64  # K time points of the eps_score average (uniform in [eps, 1])
    c.eps_score_samples = 2**16 if paper else 4096  # exact draws of p_t per time point
    c.allow_config_change = False  # resume even if WORKDIR/config.json differs (the old one is kept)
    return c
