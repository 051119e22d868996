"""What a training run learns: the data, the model and the loss for each `config.task`.

A `Task` bundles
    model                 a flax module, called as model.apply({"params": p}, x, t)
    example(key) -> x     one training example, a pure function of its key
    loss_fn(params, batch, key) -> (loss, aux)
                          the step loss on batch = {"x": (B, ...), "index": (B,) global example indices};
                          example i's noise (t, z or mask) depends only on (key, index[i]): the contract of
                          `training.step.train_step(..., noise="example")`, so a step does not depend on how
                          the global batch is split over devices or processes.

Data: example i of the global batch at step s is example(fold_in(fold_in(data_key, s), i)) (`batch_rows`),
so each process generates just its own rows, and a resumed run sees the same batches.

Tasks:
    gmm_score       x ~ the d-dimensional mixture of `studies.gmm_convergence.make_mixture(d, n_components,
                    seed)`; ScoreMLP; denoising score matching (`losses.dsm_loss`) under config.process.
                    The sampler's score is `sampling_fn(params)`: s = -eps_theta / s_t for eps-models.
    masked_parity   x uniform over the 2^(n-1) even-parity strings of n bits (x_1..x_{n-1} fair coins,
                    x_n = their sum mod 2); a masked predictor (config.model.name: transformer, looped,
                    recurrent); the MD4/MDLM NELBO (`losses.masked_nelbo`) under config.schedule with V = 2.
                    `sampling_fn(params)` is the predictor (x, t) -> logits of the masked samplers.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

from diffserial import losses
from diffserial.models import mlp
from diffserial.models.looped import LoopedTransformer
from diffserial.models.recurrent import RecurrentPredictor
from diffserial.models.transformer import MaskedTransformer, predictor_from
from diffserial.processes.gaussian import PROCESSES
from diffserial.processes.masked import make_schedule
from diffserial.registry import lookup
from diffserial.training.step import LossFn, dsm_batch_loss

Array = jax.Array
MASKED_MODELS = {"transformer": MaskedTransformer, "looped": LoopedTransformer, "recurrent": RecurrentPredictor}


@dataclasses.dataclass(frozen=True)
class Task:
    """A training problem: see the module docstring."""

    name: str
    model: nn.Module
    example: Callable[[Array], Array]
    example_shape: tuple[int, ...]
    example_dtype: Any
    loss_fn: LossFn
    sampling_fn: Callable[[Any], Callable]

    def init(self, key: Array) -> Any:
        """Model parameters from `key` (the model is traced on one example at t = 0.5)."""
        x = jnp.zeros(self.example_shape, self.example_dtype)
        return self.model.init(key, x, jnp.float32(0.5))["params"]


def batch_rows(task: Task, data_key: Array, step: Array, start: int, stop: int) -> dict:
    """Rows [start, stop) of the global batch at `step`: {"x": example_i for i in rows, "index": rows}."""
    index = jnp.arange(start, stop, dtype=jnp.int32)
    step_key = jax.random.fold_in(data_key, step)
    keys = jax.vmap(jax.random.fold_in, in_axes=(None, 0))(step_key, index)
    return {"x": jax.vmap(task.example)(keys), "index": index}


def _build_model(cls: type[nn.Module], kwargs: dict, **fixed) -> nn.Module:
    """cls(**kwargs, **fixed), with a ValueError naming the valid fields for an unknown keyword."""
    excluded = {"parent", "name", *fixed}
    valid = sorted(f.name for f in dataclasses.fields(cls) if f.name not in excluded)
    unknown = sorted(set(kwargs) - set(valid))
    if unknown:
        raise ValueError(f"config.model: unknown field(s) {unknown} for {cls.__name__}; valid: {', '.join(valid)}")
    return cls(**kwargs, **fixed)


def _gmm_score(config: ml_collections.ConfigDict) -> Task:
    from diffserial.studies.gmm_convergence import make_mixture
    from diffserial.targets import gmm

    process = lookup(PROCESSES, "process", config.process)()
    mixture = make_mixture(config.d, config.n_components, config.seed)
    model = _build_model(mlp.ScoreMLP, config.model.to_dict())
    apply_fn = lambda p, x, t: model.apply({"params": p}, x, t)
    loss_fn = dsm_batch_loss(apply_fn, process, per_example_noise=True,
                             parameterization=config.parameterization, weighting=config.weighting)

    def sampling_fn(params):
        fn = mlp.score_fn_from(model, params)
        return losses.score_fn_from_eps(fn, process) if config.parameterization == "eps" else fn

    return Task("gmm_score", model, lambda key: gmm.sample(mixture, key, 1)[0], (config.d,), jnp.float32,
                loss_fn, sampling_fn)


def even_parity_example(key: Array, n: int) -> Array:
    """x_1..x_{n-1} ~ Bernoulli(1/2) i.i.d., x_n = (x_1 + ... + x_{n-1}) mod 2: uniform over even strings."""
    bits = jax.random.bernoulli(key, 0.5, (n - 1,)).astype(jnp.int32)
    return jnp.concatenate([bits, jnp.sum(bits, keepdims=True) % 2])


def _masked_parity(config: ml_collections.ConfigDict) -> Task:
    kwargs = config.model.to_dict()
    cls = lookup(MASKED_MODELS, "model", kwargs.pop("name"))
    fixed = {"vocab_size": 2}
    if "max_len" in {f.name for f in dataclasses.fields(cls)}:
        fixed["max_len"] = config.n
    model = _build_model(cls, kwargs, **fixed)
    schedule = make_schedule(config.schedule)
    apply_fn = lambda p, x, t: model.apply({"params": p}, x, t)

    def loss_fn(params, batch, key):
        return losses.masked_nelbo(apply_fn, params, schedule, batch["x"], key, mask_id=2, index=batch["index"],
                                   global_batch=config.batch_size)

    return Task("masked_parity", model, lambda key: even_parity_example(key, config.n), (config.n,), jnp.int32,
                loss_fn, lambda params: predictor_from(model, params))


TASKS = {"gmm_score": _gmm_score, "masked_parity": _masked_parity}


def make_task(config: ml_collections.ConfigDict) -> Task:
    """The Task named config.task, built from the config's fields (ValueError for unknown names)."""
    return lookup(TASKS, "task", config.task)(config)


__all__ = ["MASKED_MODELS", "TASKS", "Task", "batch_rows", "even_parity_example", "make_task"]
