"""The masked (absorbing-state) family: time grid (`grids`), 46-bit Gumbel draws and random words
(`gumbel`), the carry and base class every rule shares (`state`), the ReMDM family (`remdm`), the
reveal-by-score family (`reveal`), registry and entry points (`sample`).

    masked_sampler(name, **kw)       the rule (MASKED_SAMPLERS)
    masked_grid(steps, spacing)      1 = t_0 > ... > t_T = 0
    sample_masked(predictor, schedule, rule, ts, key=, n_seeds=, length=, vocab_size=, prompt=None,
                  init_fn=None, ...)

Conventions: tokens int32 (L,), vocabulary {0, ..., V-1}, MASK = V; time from t = 1 (all masked) to 0.
"""

from diffserial.samplers.masked.grids import GRID_SPACINGS, masked_grid
from diffserial.samplers.masked.gumbel import gumbel46, sample_categorical
from diffserial.samplers.masked.remdm import (
    Ancestral, DFMCorrector, FBCorrector, ReMDMCap, ReMDMConf, ReMDMLoop, ReMDMRescale, Revision, remdm_transition,
    sigma_max)
from diffserial.samplers.masked.reveal import (
    FirstHitting, MaskGIT, SemiAR, TopKConfidence, TopKEntropy, TopKMargin, TopKRandom)
from diffserial.samplers.masked.sample import (
    MASKED_SAMPLERS, masked_sampler, sample_masked, sample_masked_with_snapshots)
from diffserial.samplers.masked.state import MaskedRule, MaskedRuleState


__all__ = [
    "GRID_SPACINGS", "MASKED_SAMPLERS", "Ancestral", "DFMCorrector", "FBCorrector", "FirstHitting", "MaskGIT",
    "MaskedRule", "MaskedRuleState", "ReMDMCap", "ReMDMConf", "ReMDMLoop", "ReMDMRescale", "Revision", "SemiAR",
    "TopKConfidence", "TopKEntropy", "TopKMargin", "TopKRandom", "gumbel46", "masked_grid", "masked_sampler",
    "remdm_transition", "sample_categorical", "sample_masked", "sample_masked_with_snapshots", "sigma_max",
]
