"""Registry and entry points of the masked family.

    x_s, state = rule.step(schedule, predictor, x_t, state, t, s, key)   for (t, s) = (ts[k], ts[k + 1]),

from x_0 = init_fn(key_i) (default: MASK = V everywhere except a fixed prompt), with the rule of
`masked_sampler(name)` bound to MASK = vocab_size and the grid `masked_grid(T)` from 1 to 0, run by the one
loop of `diffserial.samplers.loop`.
"""

from __future__ import annotations

from typing import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh

from diffserial.processes.masked import SCHEDULES, MaskingSchedule
from diffserial.registry import lookup
from diffserial.samplers.initializers import constant, initial_tokens
from diffserial.samplers.loop import DEFAULT_BLOCK_SIZE, run_chain
from diffserial.samplers.masked.remdm import (
    Ancestral, DFMCorrector, FBCorrector, ReMDMCap, ReMDMConf, ReMDMLoop, ReMDMRescale, Revision)
from diffserial.samplers.masked.reveal import (
    FirstHitting, MaskGIT, SemiAR, TopKConfidence, TopKEntropy, TopKMargin, TopKRandom)
from diffserial.samplers.masked.state import MaskedRule, Predictor
from diffserial.samplers.rule import Rule
from diffserial.validation import check_positive_int

Array = jax.Array


MASKED_SAMPLERS: dict[str, type[MaskedRule]] = {
    "ancestral": Ancestral,
    "first_hitting": FirstHitting,
    "topk_confidence": TopKConfidence,
    "topk_margin": TopKMargin,
    "topk_entropy": TopKEntropy,
    "topk_random": TopKRandom,
    "maskgit": MaskGIT,
    "semi_ar": SemiAR,
    "remdm_cap": ReMDMCap,
    "remdm_rescale": ReMDMRescale,
    "remdm_conf": ReMDMConf,
    "remdm_loop": ReMDMLoop,
    "fb_corrector": FBCorrector,
    "dfm_corrector": DFMCorrector,
    "revision": Revision,
}


def masked_sampler(name: str, **kwargs) -> MaskedRule:
    """The masked update rule called `name` (see MASKED_SAMPLERS and the docstrings of `remdm` and `reveal`
    for each rule's step t -> s), built with `kwargs`; `sample_masked` binds its MASK id."""
    return lookup(MASKED_SAMPLERS, "masked sampler", name)(**kwargs)


def _check_inputs(predictor, schedule, rule, ts, length, vocab_size) -> None:
    if not isinstance(schedule, MaskingSchedule):
        raise ValueError(f"schedule must be a MaskingSchedule (one of {sorted(SCHEDULES)}); got {schedule!r}")
    if not isinstance(rule, MaskedRule) and not (callable(getattr(rule, "step", None))
                                                 and callable(getattr(rule, "init_state", None))):
        raise ValueError(f"rule must be a masked sampler rule (one of {sorted(MASKED_SAMPLERS)}) or a hand-built "
                         f"rule with init_state and step; got {rule!r}")
    ts = np.asarray(ts)
    if ts.ndim != 1 or ts.shape[0] < 2:
        raise ValueError(f"ts must be a 1-D time grid with at least 2 points (steps >= 1); got shape {ts.shape}")
    if ts[-1] != 0:
        raise ValueError(f"masked samplers end at t = 0 (every position revealed): ts[-1] must be 0, got {ts[-1]}")
    if not callable(predictor):
        raise ValueError(f"predictor must be callable (x, t) -> (L, V) logits; got {predictor!r}")
    out = jax.eval_shape(predictor, jax.ShapeDtypeStruct((length,), jnp.int32),
                         jax.ShapeDtypeStruct((), jnp.float32))
    if getattr(out, "shape", None) != (length, vocab_size):
        raise ValueError(f"predictor returns shape {getattr(out, 'shape', out)} for a sequence of length {length}; "
                         f"expected (length, vocab_size) = ({length}, {vocab_size}): vocabulary or length mismatch")


def sample_masked_with_snapshots(
    predictor: Predictor,
    schedule: MaskingSchedule,
    rule: MaskedRule | Rule,
    ts: Array,
    *,
    key: Array,
    n_seeds: int,
    length: int,
    vocab_size: int,
    prompt=None,
    prompt_mask=None,
    init_fn: Callable[[Array], Array] | None = None,
    snapshot_steps: Sequence[int] = (),
    mesh: Mesh | None = None,
    block_size: int = DEFAULT_BLOCK_SIZE,
    pad_to: int | None = None,
) -> tuple[Array, Array]:
    """Tokens (n_seeds, length) int32 and snapshots (n_seeds, len(snapshot_steps), length) int32 of the chain
    x_{k+1} = rule.step(schedule, predictor, x_k, ., ts[k], ts[k+1], key_{i,k}), x_0 = init_fn(key_i).

    Args:
      predictor: (x (L,) int32, t) -> logits or log-probabilities (L, vocab_size) for one sequence; a
        `jax.tree_util.Partial` keeps its arrays traced (new values reuse the compiled program).
      schedule: masking schedule (`diffserial.processes.masked`).
      rule: a rule from MASKED_SAMPLERS (`masked_sampler`), whose mask_id is bound to vocab_size, or a
        hand-built rule with init_state and step (e.g. a theorem construction's), used as given.
      ts: decreasing grid from <= 1 to exactly 0 (`masked_grid`); steps = len(ts) - 1 >= 1.
      key: PRNG key; seed i uses fold_in(key, i) (the loop's seed contract: results do not depend on
        n_seeds, the mesh or padding, for a fixed block_size).
      length, vocab_size: L and V (MASK = V).
      prompt, prompt_mask: a prompt shared by every seed, see `initializers.initial_tokens`.
      init_fn: instead of prompt: key -> the (length,) int32 start of one seed (e.g.
        `initializers.PromptThenMasks`, a prompt per seed); its init key is fold_in(fold_in(key, i), 0).
        Positions unmasked at the start are fixed for every masked rule.
      snapshot_steps, mesh, block_size, pad_to: as in `diffserial.samplers.loop.run_chain`.
    Raises ValueError before compiling on bad inputs (prompt longer than the sequence or outside the
    vocabulary, both prompt and init_fn, predictor output not (length, vocab_size), steps < 1, ts not
    ending at 0, ...).
    """
    check_positive_int("length", length)
    check_positive_int("vocab_size", vocab_size)
    _check_inputs(predictor, schedule, rule, ts, length, vocab_size)
    if init_fn is None:
        init_fn = constant(initial_tokens(length, vocab_size, prompt, prompt_mask))
    elif prompt is not None or prompt_mask is not None:
        raise ValueError("give either a prompt (the same for every seed) or init_fn (a start per seed), not both")
    if isinstance(rule, MaskedRule):
        rule = rule.bind(vocab_size)
    return run_chain(
        predictor, schedule, rule, ts, key=key, n_seeds=n_seeds, init_fn=init_fn, shape=(length,),
        fn_out_shape=(length, vocab_size), t_end_min=0.0, snapshot_steps=snapshot_steps, mesh=mesh,
        block_size=block_size, pad_to=pad_to)


def sample_masked(
    predictor: Predictor,
    schedule: MaskingSchedule,
    rule: MaskedRule | Rule,
    ts: Array,
    *,
    key: Array,
    n_seeds: int,
    length: int,
    vocab_size: int,
    prompt=None,
    prompt_mask=None,
    init_fn: Callable[[Array], Array] | None = None,
    mesh: Mesh | None = None,
    block_size: int = DEFAULT_BLOCK_SIZE,
    pad_to: int | None = None,
) -> Array:
    """Final tokens (n_seeds, length) int32 of the chain x_{k+1} = rule.step(schedule, predictor, x_k, .,
    ts[k], ts[k+1], key_{i,k}) from x_0 = init_fn(key_i) (default: MASK except the prompt); see
    `sample_masked_with_snapshots` for the arguments."""
    tokens, _ = sample_masked_with_snapshots(
        predictor, schedule, rule, ts, key=key, n_seeds=n_seeds, length=length, vocab_size=vocab_size,
        prompt=prompt, prompt_mask=prompt_mask, init_fn=init_fn, mesh=mesh, block_size=block_size, pad_to=pad_to)
    return tokens


__all__ = ["MASKED_SAMPLERS", "masked_sampler", "sample_masked", "sample_masked_with_snapshots"]
