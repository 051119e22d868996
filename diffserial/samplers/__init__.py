"""Samplers: one loop, two families, one public API with paired names.

Layout (lower layers first; no module imports a higher one):

    rule.py           the `Rule` protocol: nfe_per_step, init_state, step, declared capabilities
    loop.py           `run_chain`: the one `lax.scan` over a grid, vmapped over seeds, sharded (no process)
    initializers.py   init_fn's: constant, ProcessPrior, PromptThenPrior, PromptThenMasks, initial_tokens
    continuous/       rules, grids, entry points, prompt-conditioned sampling of the continuous family
    masked/           grid, 46-bit Gumbel, rule state, ReMDM family, reveal-by-score family, entry points

The public API (also exported from `diffserial`):

    continuous_sampler(name)  / masked_sampler(name)           the update rule
    continuous_grid(name, process, steps, eps) / masked_grid(steps, spacing)
    sample_continuous(...)    / sample_masked(...)             final samples
    sample_continuous_with_snapshots(...) / sample_masked_with_snapshots(...)
    sample_conditional(...)   a continuous answer per seed's own prompt (the masked twin: sample_masked
                              with init_fn=PromptThenMasks(...))
    seed_mesh(devices)        a 1-D mesh to shard seeds over
"""

from diffserial.samplers.continuous import (
    CONTINUOUS_GRIDS, CONTINUOUS_SAMPLERS, ContinuousRule, continuous_grid, continuous_sampler, sample_conditional,
    sample_continuous, sample_continuous_with_snapshots)
from diffserial.samplers.initializers import ProcessPrior, PromptThenMasks, PromptThenPrior, constant, initial_tokens
from diffserial.samplers.loop import DEFAULT_BLOCK_SIZE, compiled_programs, run_chain, seed_mesh
from diffserial.samplers.masked import (
    GRID_SPACINGS, MASKED_SAMPLERS, MaskedRule, masked_grid, masked_sampler, sample_masked,
    sample_masked_with_snapshots)
from diffserial.samplers.rule import Rule

__all__ = [
    "CONTINUOUS_GRIDS", "CONTINUOUS_SAMPLERS", "ContinuousRule", "DEFAULT_BLOCK_SIZE", "GRID_SPACINGS",
    "MASKED_SAMPLERS", "MaskedRule", "ProcessPrior", "PromptThenMasks", "PromptThenPrior", "Rule",
    "compiled_programs", "constant", "continuous_grid", "continuous_sampler", "initial_tokens", "masked_grid",
    "masked_sampler", "run_chain", "sample_conditional", "sample_continuous", "sample_continuous_with_snapshots",
    "sample_masked", "sample_masked_with_snapshots", "seed_mesh",
]
