"""Initializers of a chain: `init_fn(key) -> x` at the first time of the grid, for one seed.

The loop (`diffserial.samplers.loop`) hands seed i the init key k = fold_in(fold_in(key, i), 0) (its seed
contract). An init_fn is a pytree (a `jax.tree_util.Partial` over arrays, or a static dataclass):

    constant(x0)             k -> x0                                   (a fixed start: all-MASK tokens with a
                                                                        prompt, a pinball start point, ...)
    ProcessPrior             k -> N(0, prior_std^2 I) draw              (continuous default)
    PromptThenPrior          k -> [draw_prompt(k) as float32, prior draw from fold_in(k, 1)]
                                                                       (continuous, a prompt per seed)
    PromptThenMasks          k -> [prompt of the example drawn from k, MASK, ..., MASK]
                                                                       (masked, a prompt per seed)

The two per-seed prompt initializers draw the prompt from the same key k, so a masked and a continuous
family sampled with the same key solve the same prompts. `initial_tokens` builds the masked constant
start (MASK = vocab_size everywhere except a fixed prompt) with its checks.
"""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from diffserial.processes.gaussian import LinearGaussianSDE
from diffserial.pytrees import static_dataclass
from diffserial.validation import check_positive_int

Array = jax.Array
Partial = jax.tree_util.Partial


def _constant(template: Array, key: Array) -> Array:
    del key
    return template


def constant(x0) -> Partial:
    """init_fn k -> x0 for every seed; x0 is a traced leaf, so a new value reuses the compiled chain."""
    return Partial(_constant, jnp.asarray(x0))


@static_dataclass
class ProcessPrior:
    """init_fn drawing x_1 from the process prior N(0, prior_std^2 I) (static: no traced leaves)."""

    process: LinearGaussianSDE
    shape: tuple[int, ...]

    def __call__(self, key: Array) -> Array:
        return self.process.prior_sample(key, self.shape)


@static_dataclass
class PromptThenPrior:
    """init_fn: key k -> [draw_prompt(k) as float32, process.prior_sample(fold_in(k, 1), (A,))], A =
    packing.answer_size (`diffserial.samplers.continuous.Packing`). draw_prompt must be hashable (e.g. a
    static dataclass): it is static structure of the compiled chain."""

    draw_prompt: Callable[[Array], Array]
    process: LinearGaussianSDE
    packing: Any

    def __call__(self, key: Array) -> Array:
        prompt = self.draw_prompt(key).astype(jnp.float32)
        noise = self.process.prior_sample(jax.random.fold_in(key, 1), (self.packing.answer_size,))
        return jnp.concatenate([prompt, noise])


@static_dataclass
class PromptThenMasks:
    """init_fn of a masked chain: seed key -> the (L,) sequence with the prompt of the example drawn from
    that key (`layout.task.sample_one(key).prompt`) and MASK = vocab_size on every generated position.

    layout: hashable, with `.task` (`.vocab_size`, `.sample_one(key)`) and `.generated_len`, e.g.
    `diffserial.training.tasks.SerialLayout`."""

    layout: Any

    def __call__(self, key: jax.Array) -> jax.Array:
        layout = self.layout
        masks = jnp.full((layout.generated_len,), layout.task.vocab_size, jnp.int32)
        return jnp.concatenate([layout.task.sample_one(key).prompt.astype(jnp.int32), masks])


def initial_tokens(length: int, vocab_size: int, prompt=None, prompt_mask=None) -> np.ndarray:
    """The starting sequence (length,) int32: MASK = vocab_size everywhere except the prompt.

    prompt: P <= length tokens in [0, vocab_size). prompt_mask: optional bool (length,) with exactly P
    True entries, the prompt's positions (in order); default: the first P positions.
    """
    check_positive_int("length", length)
    check_positive_int("vocab_size", vocab_size)
    x = np.full((length,), vocab_size, np.int32)
    if prompt is None:
        if prompt_mask is not None:
            raise ValueError("prompt_mask given without a prompt")
        return x
    p = np.asarray(prompt)
    if p.ndim != 1:
        raise ValueError(f"prompt must be a 1-D array of token ids; got shape {p.shape}")
    if p.size and not np.issubdtype(p.dtype, np.integer):
        raise ValueError(f"prompt must contain integer token ids; got dtype {p.dtype}")
    if p.shape[0] > length:
        raise ValueError(f"prompt of length {p.shape[0]} is longer than the sequence length {length}")
    if p.size and (p.min() < 0 or p.max() >= vocab_size):
        raise ValueError(f"prompt tokens must lie in [0, vocab_size) = [0, {vocab_size}); got {p.tolist()}")
    if prompt_mask is None:
        where = np.arange(p.shape[0])
    else:
        pm = np.asarray(prompt_mask)
        if pm.shape != (length,) or pm.dtype != np.bool_:
            raise ValueError(f"prompt_mask must be a bool array of shape ({length},); got {pm.dtype} {pm.shape}")
        if int(pm.sum()) != p.shape[0]:
            raise ValueError(f"prompt_mask has {int(pm.sum())} True entries but the prompt has {p.shape[0]} tokens")
        where = np.flatnonzero(pm)
    x[where] = p.astype(np.int32)
    return x


__all__ = ["ProcessPrior", "PromptThenMasks", "PromptThenPrior", "constant", "initial_tokens"]
