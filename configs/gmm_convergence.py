"""Default convergence study: every continuous sampler on exact-score Gaussian mixtures, d in {1, 2, 8}
(`diffserial.studies.gmm_convergence`).

    python sample.py --config configs/gmm_convergence.py --workdir runs/gmm [--config.n_seeds=...]
    python sample.py --config configs/gmm_convergence.py:paper --workdir runs/gmm_paper      # accelerator

The argument after ":" is the scale. "small" (default): 10^5 seeds, T = 1 .. 1024; 3 min 40 s on 2 CPU
cores (README). This study needs no accelerator: the score is exact and closed-form, so the small scale
already shows the 1/T and 1/T^2 rates down to its noise floor. "paper": 2^22 (4.2 M) seeds, which lowers
the noise floor about sqrt(42) = 6.5 times, and T up to 2048, so the slopes are fitted over more points
before the floor; blocks of 2^16 seeds to fill an accelerator.

Expected device time of :paper: not measured (no accelerator run yet); an estimate from the work ratio.
The work is seeds x sampler steps summed over T (every sampler, d and T scale alike): 4194304 x 4095
against 100000 x 2047, W = 84. At 2 CPU cores that is ~84 x 3 min 40 s = ~5 h. On an accelerator, time
the small run there and multiply its sampling time (the `seconds` column, compilation aside) by 84.
Every field can be overridden with --config.FIELD=VALUE.
"""

import ml_collections

from configs import is_paper_scale


def get_config(scale: str = "small") -> ml_collections.ConfigDict:
    paper = is_paper_scale(scale)
    c = ml_collections.ConfigDict()
    c.study = "gmm_convergence"
    c.scale = "paper" if paper else "small"  # recorded in config.json; choose it with the ":" argument
    c.seed = 0
    c.process = "vp_linear"  # vp_linear | vp_cosine | subvp | ve_geometric
    c.samplers = ("euler_maruyama", "ancestral", "li_yan_sde", "li_yan_ode", "pf_euler", "pf_heun",
                  "dpm_solver_pp_2m", "pc_langevin")
    c.grid = "uniform"  # uniform | quadratic | karras | logsnr
    c.steps = tuple(2**k for k in range(12 if paper else 11))  # 1 .. 2048 (paper), 1 .. 1024
    c.dims = (1, 2, 8)
    c.n_components = 3
    c.n_seeds = 2**22 if paper else 100_000
    c.eps = 1e-3  # early-stop time; TV is measured against p_eps
    c.prior = "exact"  # exact: x_1 ~ p_1 in closed form; process: N(0, prior_std^2 I)
    c.eps_score = 0.0  # size of a smooth deterministic score error (diffserial.targets.perturbed)
    c.max_cells = 64  # grid cells: max(2, floor(max_cells^(1/d))) bins per dimension
    c.floor_reps = 200  # multinomial draws for the noise floor and bootstrap resamples for the CI
    c.block_size = 2**16 if paper else 1024  # seeds per vmapped block (bitwise reproducibility holds for a fixed value)
    c.allow_config_change = False  # resume even if WORKDIR/config.json differs (the old one is kept)
    return c
