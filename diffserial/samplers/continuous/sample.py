"""Entry points of the continuous family: the reverse process from the prior (or `init_fn`) down a grid.

    x_s, state = rule.step(process, score_fn, x_t, state, t, s, key)   for (t, s) = (ts[k], ts[k + 1]),

with the rule of `continuous_sampler(name)` and the grid of `continuous_grid(name, process, T, eps)`, run
by the one loop of `diffserial.samplers.loop` (seed i uses fold_in(key, i); bitwise reproducible across
n_seeds and meshes for a fixed block_size).
"""

from __future__ import annotations

from typing import Callable, Sequence

import jax
import numpy as np
from jax.sharding import Mesh

from diffserial.processes.gaussian import LinearGaussianSDE
from diffserial.samplers.continuous.rules import ContinuousRule
from diffserial.samplers.initializers import ProcessPrior
from diffserial.samplers.loop import DEFAULT_BLOCK_SIZE, run_chain
from diffserial.validation import check_variance_preserving

Array = jax.Array


def sample_continuous_with_snapshots(
    score_fn: Callable[[Array, Array], Array],
    process: LinearGaussianSDE,
    rule: ContinuousRule,
    ts: Array,
    *,
    key: Array,
    n_seeds: int,
    shape: Sequence[int],
    init_fn: Callable[[Array], Array] | None = None,
    snapshot_steps: Sequence[int] = (),
    mesh: Mesh | None = None,
    block_size: int = DEFAULT_BLOCK_SIZE,
    pad_to: int | None = None,
) -> tuple[Array, Array]:
    """Samples (n_seeds, *shape) and snapshots (n_seeds, len(snapshot_steps), *shape) of the chain
    x_{k+1} = rule.step(process, score_fn, x_k, ., ts[k], ts[k+1], key_{i,k}), x_0 = init_fn(key_i).

    Args:
      score_fn: (x, t) -> score of p_t at one sample x (shape `shape`), t a scalar.
      process: the forward process (gives f, g, m, s).
      rule: an update rule from `continuous_sampler`.
      ts: decreasing time grid (T + 1,) from `continuous_grid`.
      key: PRNG key; seed i uses fold_in(key, i).
      init_fn: key -> x at ts[0]; defaults to the process prior N(0, prior_std^2 I) (`ProcessPrior`).
      snapshot_steps: step counts k in [1, T]; a copy of x is kept after k steps.
      mesh: 1-D mesh; seeds are split over its axis (default: this process's first device alone).
      block_size: seeds per vmapped block; seeds are padded to a multiple of block_size (times the
        mesh size). Small runs pay for a whole block: use a smaller block_size for them.
        Results are bitwise reproducible across n_seeds and meshes for a fixed block_size.
      pad_to: compile for grids of up to `pad_to` steps, so that studies over many T reuse one program.
    Raises ValueError for a VP-only rule on a non-VP process (and, from the loop, bad grids or counts).
    """
    check_variance_preserving(rule, process)
    shape = tuple(int(v) for v in shape)
    init_fn = init_fn if init_fn is not None else ProcessPrior(process, shape)
    return run_chain(score_fn, process, rule, ts, key=key, n_seeds=n_seeds, init_fn=init_fn, shape=shape,
                     fn_out_shape=shape, t_end_min=np.finfo(np.float32).tiny, snapshot_steps=snapshot_steps,
                     mesh=mesh, block_size=block_size, pad_to=pad_to)


def sample_continuous(score_fn, process, rule, ts, *, key, n_seeds, shape, init_fn=None, mesh=None,
                      block_size=DEFAULT_BLOCK_SIZE, pad_to=None) -> Array:
    """Final samples (n_seeds, *shape) of the chain x_{k+1} = rule.step(process, score_fn, x_k, ., ts[k],
    ts[k+1], key_{i,k}) from x_0 = init_fn(key_i) (default: the prior); see
    `sample_continuous_with_snapshots`."""
    x, _ = sample_continuous_with_snapshots(score_fn, process, rule, ts, key=key, n_seeds=n_seeds, shape=shape,
                                            init_fn=init_fn, mesh=mesh, block_size=block_size, pad_to=pad_to)
    return x


__all__ = ["sample_continuous", "sample_continuous_with_snapshots"]
