"""The continuous family: rules (`rules`), time grids (`grids`), entry points (`sample`) and sampling
conditioned on a per-seed prompt (`conditional`).

    continuous_sampler(name, **kw)               the rule (CONTINUOUS_SAMPLERS)
    continuous_grid(name, process, steps, eps)   1 = t_0 > ... > t_T = eps (CONTINUOUS_GRIDS)
    sample_continuous(score_fn, process, rule, ts, key=, n_seeds=, shape=, init_fn=None, ...)
    sample_conditional(score_fn, process, rule, ts, key=, n_seeds=, draw_prompt=, prompt_len=, answer_shape=)
"""

from diffserial.samplers.continuous.conditional import Packing, PromptConditioned, sample_conditional
from diffserial.samplers.continuous.grids import CONTINUOUS_GRIDS, continuous_grid
from diffserial.samplers.continuous.rules import (
    CONTINUOUS_SAMPLERS, Ancestral, ContinuousRule, DPMSolverPP2M, EulerMaruyama, LangevinCorrector, LiYanODE,
    LiYanSDE, PFEuler, PFHeun, PredictorCorrector, continuous_sampler)
from diffserial.samplers.continuous.sample import sample_continuous, sample_continuous_with_snapshots


__all__ = [
    "CONTINUOUS_GRIDS", "CONTINUOUS_SAMPLERS", "Ancestral", "ContinuousRule", "DPMSolverPP2M", "EulerMaruyama",
    "LangevinCorrector", "LiYanODE", "LiYanSDE", "PFEuler", "PFHeun", "Packing", "PredictorCorrector",
    "PromptConditioned", "continuous_grid", "continuous_sampler", "sample_conditional",
    "sample_continuous", "sample_continuous_with_snapshots",
]
