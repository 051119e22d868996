"""Continuous samplers conditioned on a per-seed prompt, through the one sampling loop of `loop`.

A conditional score is a pure function of ONE prompt and ONE noisy answer,

    score_fn(prompt (Lp,) int32, y (*answer_shape) float32, t) -> grad_y log p_t(y | prompt)  (*answer_shape),

e.g. a network's -eps_theta / s_t. Seed i solves its own prompt: the chain's state is the packed vector

    x = [prompt as float32 (Lp,), y flattened (A,)],   A = prod(answer_shape)        (`Packing`)

(token ids < 2^24 are exact in float32). The initial state of a seed with init key k = fold_in(key_i, 0)
(the loop's seed contract) is [draw_prompt(k), y_1], y_1 ~ the process prior drawn from fold_in(k, 1)
(`samplers.initializers.PromptThenPrior`): the prompt comes from the same key as in
`samplers.initializers.PromptThenMasks`, so a masked and a continuous family sampled with the same key solve
the same prompts. A step applies a continuous rule of `samplers.continuous` to y alone, with the score function y -> score_fn(prompt, y, t),
and leaves the prompt unchanged (`PromptConditioned`). Everything seed i does depends on (key, i) only.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh

from diffserial.processes.gaussian import LinearGaussianSDE
from diffserial.pytrees import static_dataclass
from diffserial.samplers.continuous.rules import ContinuousRule
from diffserial.samplers.initializers import PromptThenPrior
from diffserial.samplers.loop import DEFAULT_BLOCK_SIZE, run_chain
from diffserial.validation import check_variance_preserving

Array = jax.Array
Partial = jax.tree_util.Partial


@static_dataclass
class Packing:
    """The chain state x = [prompt (Lp,) as float32, y flattened (A,)] (see the module docstring)."""

    prompt_len: int
    answer_shape: tuple[int, ...]

    @property
    def answer_size(self) -> int:
        """A = prod(answer_shape)."""
        return math.prod(self.answer_shape)

    def unpack(self, x: Array) -> tuple[Array, Array]:
        """(prompt (Lp,) int32, y (*answer_shape)) of one packed state x (Lp + A,)."""
        prompt = jnp.round(x[:self.prompt_len]).astype(jnp.int32)
        return prompt, x[self.prompt_len:].reshape(self.answer_shape)


def _packed_call(packing: Packing, score_fn, x: Array, t: Array) -> Array:
    prompt, y = packing.unpack(x)
    return score_fn(prompt, y, t).reshape(-1)


def _with_prompt(fn, prompt: Array, y: Array, t: Array) -> Array:
    return fn(jnp.concatenate([prompt, y]), t)


@dataclasses.dataclass(frozen=True)
class PromptConditioned:
    """A continuous rule applied to the answer part y of the packed state; the prompt part is carried
    unchanged: (x = [p, y], state) -> ([p, rule.step(process, y' -> fn([p, y'], t), y, state, t, s, key)], state')."""

    rule: ContinuousRule
    prompt_len: int

    @property
    def nfe_per_step(self) -> int:
        return self.rule.nfe_per_step

    @property
    def requires_variance_preserving(self) -> bool:
        return self.rule.requires_variance_preserving

    def init_state(self, x: Array) -> Any:
        """The rule's carry for the answer part."""
        return self.rule.init_state(x[self.prompt_len:])

    def step(self, process, fn, x, state, t, s, key):
        """One step of the rule on y = x[Lp:], with score y -> fn([p, y], t); p = x[:Lp] is kept."""
        prompt, y = x[:self.prompt_len], x[self.prompt_len:]
        y, state = self.rule.step(process, Partial(_with_prompt, fn, prompt), y, state, t, s, key)
        return jnp.concatenate([prompt, y]), state


def sample_conditional(
    score_fn: Callable[[Array, Array, Array], Array],
    process: LinearGaussianSDE,
    rule: ContinuousRule,
    ts: Array,
    *,
    key: Array,
    n_seeds: int,
    draw_prompt: Callable[[Array], Array],
    prompt_len: int,
    answer_shape: Sequence[int],
    mesh: Mesh | None = None,
    block_size: int = DEFAULT_BLOCK_SIZE,
    pad_to: int | None = None,
) -> tuple[Array, Array]:
    """(prompts (n_seeds, Lp) int32, answers (n_seeds, *answer_shape)): seed i draws its prompt from its own
    init key and runs `rule` on its answer from the prior down the grid ts (see the module docstring).

    score_fn(prompt, y, t) -> score of y's shape (a `Partial` over arrays keeps them traced); draw_prompt:
    hashable key -> (prompt_len,) integer tokens. mesh, block_size, pad_to: as `sample_continuous`.
    ValueError for a VP-only rule on a non-VP process or a draw_prompt of the wrong shape or dtype (the loop
    checks the grid, the counts and score_fn's output shape).
    """
    check_variance_preserving(rule, process)
    packing = Packing(int(prompt_len), tuple(int(v) for v in answer_shape))
    score_fn = score_fn if isinstance(score_fn, Partial) else Partial(score_fn)  # a plain function: by identity
    drawn = jax.eval_shape(draw_prompt, key)
    if drawn.shape != (packing.prompt_len,) or not jnp.issubdtype(drawn.dtype, jnp.integer):
        raise ValueError(f"draw_prompt must return ({packing.prompt_len},) integer tokens; got {drawn.dtype} "
                         f"{drawn.shape}")
    x, _ = run_chain(
        Partial(_packed_call, packing, score_fn), process, PromptConditioned(rule, packing.prompt_len), ts,
        key=key, n_seeds=n_seeds, init_fn=PromptThenPrior(draw_prompt, process, packing),
        shape=(packing.prompt_len + packing.answer_size,), fn_out_shape=(packing.answer_size,),
        t_end_min=np.finfo(np.float32).tiny, mesh=mesh, block_size=block_size, pad_to=pad_to)
    return jax.vmap(packing.unpack)(x)


__all__ = ["Packing", "PromptConditioned", "sample_conditional"]
