"""diffserial: how diffusion samplers converge with the number of steps, and what that means for
serial computation.

The public API in one place:

    from diffserial import VPLinear, GaussianMixture, gmm, make_grid, make_sampler, sample, tv_report
"""

from diffserial.metrics.slopes import SlopeFit, fit_loglog_slope
from diffserial.metrics.tv import bootstrap_ci, histogram, tv_distance, tv_floor, tv_report
from diffserial.processes.gaussian import PROCESSES, SubVP, VEGeometric, VPCosine, VPLinear
from diffserial.samplers.continuous import SAMPLERS, make_sampler
from diffserial.samplers.driver import sample, sample_with_snapshots, seed_mesh
from diffserial.samplers.grids import GRIDS, make_grid
from diffserial.targets import gmm
from diffserial.targets.gmm import GaussianMixture
from diffserial.targets.perturbed import perturbed_score_fn
from diffserial.targets.quantize import GridCells, NearestMeanCells

__all__ = [
    "GRIDS", "PROCESSES", "SAMPLERS", "GaussianMixture", "GridCells", "NearestMeanCells", "SlopeFit",
    "SubVP", "VEGeometric", "VPCosine", "VPLinear", "bootstrap_ci", "fit_loglog_slope", "gmm",
    "histogram", "make_grid", "make_sampler", "perturbed_score_fn", "sample", "sample_with_snapshots",
    "seed_mesh", "tv_distance", "tv_floor", "tv_report",
]
