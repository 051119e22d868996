"""Learned-score convergence study: train the score MLP for each length in train_steps, measure eps_score,
then TV vs steps beside the exact score.

    python sample.py --config configs/gmm_learned.py --workdir runs/gmm_learned
    python sample.py --config configs/gmm_learned.py --config.checkpoint=runs/gmm_train   # a train.py workdir
"""

import ml_collections

from configs import gmm_train


def get_config() -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.study = "gmm_learned"
    c.seed = 0
    c.train = gmm_train.get_config()  # the model, data (d, mixture) and optimizer of each training run
    c.train_steps = (300, 3000)  # one model per length, trained into WORKDIR/train_N
    c.checkpoint = ""  # a train.py workdir: study its model instead of training (train_steps unused)
    c.samplers = ("euler_maruyama", "li_yan_sde", "pf_heun", "dpm_solver_pp_2m")
    c.grid = "uniform"
    c.steps = tuple(2**k for k in range(9))  # 1 .. 256
    c.eps = 1e-3
    c.prior = "exact"  # x_1 ~ p_1 in closed form: TV is discretisation + score error only
    c.n_seeds = 20_000
    c.max_cells = 64
    c.floor_reps = 100
    c.block_size = 1024
    c.eps_score_times = 64  # K time points of the eps_score average (uniform in [eps, 1])
    c.eps_score_samples = 4096  # exact draws of p_t per time point
    c.allow_config_change = False  # resume even if WORKDIR/config.json differs (the old one is kept)
    return c
