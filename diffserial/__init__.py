"""diffserial: how diffusion samplers converge with the number of steps, and what that means for
serial computation.

The public API in one place:

    from diffserial import VPLinear, GaussianMixture, gmm, continuous_grid, continuous_sampler, sample_continuous
    from diffserial import masked_grid, masked_sampler, sample_masked, tv_report
"""

__version__ = "0.1.0"  # the package version (pyproject.toml reads it from here)

from diffserial.metrics.slopes import SlopeFit, fit_loglog_slope
from diffserial.metrics.tv import bootstrap_ci, histogram, tv_distance, tv_floor, tv_report
from diffserial.processes.gaussian import PROCESSES, SubVP, VEGeometric, VPCosine, VPLinear
from diffserial.samplers import (
    CONTINUOUS_GRIDS, CONTINUOUS_SAMPLERS, MASKED_SAMPLERS, Rule, continuous_grid, continuous_sampler, masked_grid,
    masked_sampler, sample_conditional, sample_continuous, sample_continuous_with_snapshots, sample_masked,
    sample_masked_with_snapshots, seed_mesh)
from diffserial.targets import gmm
from diffserial.targets.gmm import GaussianMixture
from diffserial.targets.perturbed import perturbed_score_fn
from diffserial.targets.quantize import GridCells, NearestMeanCells

__all__ = [
    "__version__",
    "CONTINUOUS_GRIDS", "CONTINUOUS_SAMPLERS", "MASKED_SAMPLERS", "PROCESSES", "GaussianMixture", "GridCells",
    "NearestMeanCells", "Rule", "SlopeFit", "SubVP", "VEGeometric", "VPCosine", "VPLinear", "bootstrap_ci",
    "continuous_grid", "continuous_sampler", "fit_loglog_slope", "gmm", "histogram", "masked_grid",
    "masked_sampler", "perturbed_score_fn", "sample_conditional", "sample_continuous",
    "sample_continuous_with_snapshots", "sample_masked", "sample_masked_with_snapshots", "seed_mesh",
    "tv_distance", "tv_floor", "tv_report",
]
