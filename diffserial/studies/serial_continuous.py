"""Sampling a `serial_continuous` model (a continuous diffusion over the quantized answer, training task
"serial_continuous") on fresh prompts, for the serial-task studies.

Seed i draws its prompt as task.sample_one(k).prompt with k = fold_in(fold_in(key, i), 0) (`SerialPrompt`,
the same draw as `serial_accuracy.PromptThenMasks`: the families are paired at the same key), starts its
answer y (La, m) from the process prior and runs a continuous sampler (`samplers.CONTINUOUS_SAMPLERS`) for T
steps of a grid from 1 down to the training's t_min (`samplers.sample_conditional`); the answer
tokens are the nearest codewords of the final y (`BinaryCode.decode`). The result is the (n_seeds, L)
token sequence [prompt, answer] of the masked families, scored by the same exact checker.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.sharding import Mesh

from diffserial.pytrees import static_dataclass
from diffserial.samplers import (
    DEFAULT_BLOCK_SIZE, continuous_grid, continuous_sampler, sample_conditional, sample_continuous)
from diffserial.serial_tasks import SerialTask
from diffserial.training.tasks import ContinuousAnswer

Array = jax.Array


@static_dataclass
class SerialPrompt:
    """key -> task.sample_one(key).prompt as int32 (Lp,): the prompt of the example drawn from `key`."""

    task: SerialTask

    def __call__(self, key: Array) -> Array:
        return self.task.sample_one(key).prompt.astype(jnp.int32)


def sample_sequences(model: ContinuousAnswer, sampler: str, steps: int, *, key: Array, n_seeds: int,
                     grid: str = "uniform", mesh: Mesh | None = None, block_size: int = DEFAULT_BLOCK_SIZE,
                     pad_to: int | None = None) -> Array:
    """(n_seeds, L) int32 sequences [prompt, decode(y_final)] of `sampler` run for `steps` steps of the grid
    `grid` from t = 1 to model.t_min (see the module docstring); mesh, block_size, pad_to as `sample_continuous`."""
    layout = model.layout
    ts = continuous_grid(grid, model.process, steps, model.t_min)
    prompts, y = sample_conditional(
        model.score_fn, model.process, continuous_sampler(sampler), ts, key=key, n_seeds=n_seeds,
        draw_prompt=SerialPrompt(layout.task), prompt_len=layout.prompt_len,
        answer_shape=(layout.answer_len, model.code.dim), mesh=mesh, block_size=block_size, pad_to=pad_to)
    return jnp.concatenate([prompts, model.code.decode(y)], axis=-1)


__all__ = ["SerialPrompt", "sample_sequences"]
