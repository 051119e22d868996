"""Default convergence study: every continuous sampler on exact-score Gaussian mixtures, d in {1, 2, 8}.

    python sample.py --config configs/gmm_convergence.py --workdir runs/gmm [--config.n_seeds=...]
"""

import ml_collections


def get_config() -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.study = "gmm_convergence"
    c.seed = 0
    c.process = "vp_linear"  # vp_linear | vp_cosine | subvp | ve_geometric
    c.samplers = ("euler_maruyama", "ancestral", "li_yan_sde", "li_yan_ode", "pf_euler", "pf_heun",
                  "dpm_solver_pp_2m", "pc_langevin")
    c.grid = "uniform"  # uniform | quadratic | karras | logsnr
    c.steps = tuple(2**k for k in range(11))  # 1 .. 1024
    c.dims = (1, 2, 8)
    c.n_components = 3
    c.n_seeds = 100_000
    c.eps = 1e-3  # early-stop time; TV is measured against p_eps
    c.prior = "exact"  # exact: x_1 ~ p_1 in closed form; process: N(0, prior_std^2 I)
    c.eps_score = 0.0  # size of a smooth deterministic score error (diffserial.targets.perturbed)
    c.max_cells = 64  # grid cells: max(2, floor(max_cells^(1/d))) bins per dimension
    c.floor_reps = 200  # multinomial draws for the noise floor and bootstrap resamples for the CI
    c.block_size = 1024  # seeds per vmapped block (bitwise reproducibility holds for a fixed value)
    c.allow_config_change = False  # resume even if WORKDIR/config.json differs (the old one is kept)
    return c
