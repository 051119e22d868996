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
    gmm_score       x ~ the d-dimensional mixture of `targets.gmm.make_mixture(d, n_components,
                    seed)`; ScoreMLP; denoising score matching (`losses.dsm_loss`) under config.process.
                    The sampler's score is `sampling_fn(params)`: s = -eps_theta / s_t for eps-models.
    masked_parity   x uniform over the 2^(n-1) even-parity strings of n bits (x_1..x_{n-1} fair coins,
                    x_n = their sum mod 2); a masked predictor (config.model.name: transformer, looped,
                    recurrent); the MD4/MDLM NELBO (`losses.masked_nelbo`) under config.schedule with V = 2.
                    `sampling_fn(params)` is the predictor (x, t) -> logits of the masked samplers.
    serial          a task of `diffserial.serial_tasks` (config.serial_task, built with config.task_args and
                    with_cot = config.cot); the sequence is [prompt, cot (if config.cot), answer]
                    (`serial_layout`), the prompt positions are given (never masked, never scored: the
                    `prompt_mask` of `losses.masked_nelbo`); a masked predictor from MASKED_MODELS with
                    vocab_size = the task's vocabulary and max_len = the sequence length; MASK = vocab_size.
                    config.objective = "supervised" trains the same network by the supervised loss instead
                    (`losses.masked_supervised_loss`: all generated positions masked, cross-entropy: the supervised baseline of issue 11).
    serial_continuous
                    the same serial task without chain of thought (config.cot must be False), as a continuous
                    diffusion over the quantized answer (the paper's appendix F.1): the example is the (L,)
                    sequence [prompt, answer]; the answer is encoded as points of R^(La x m)
                    (`models.continuous_answer.BinaryCode`) and learned by denoising score matching under
                    config.process (eps parameterisation, sigma^2 weighting, t ~ U(1e-3, 1): ||eps_theta - z||^2)
                    with `ContinuousAnswerTransformer` (config.model: name "transformer", the fixed-depth
                    network, and its width, depth, heads, mlp_ratio) conditioned on the prompt. Example i's
                    (t, z) are `losses.dsm_noise` from fold_in(key, index[i]) (`losses.dsm_batch_loss` with
                    per_example_noise). `sampling_fn(params)` is a `ContinuousAnswer` (the conditional score
                    -eps_theta / s_t, the process, the codebook, the layout, the grid's end time).
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

from diffserial import losses, serial_tasks
from diffserial.models import mlp
from diffserial.models.continuous_answer import BinaryCode, ContinuousAnswerTransformer, eps_fn_from
from diffserial.models.looped import LoopedTransformer
from diffserial.models.recurrent import RecurrentPredictor
from diffserial.models.transformer import MaskedTransformer, predictor_from
from diffserial.processes.gaussian import PROCESSES, LinearGaussianSDE
from diffserial.processes.masked import make_schedule
from diffserial.pytrees import static_dataclass
from diffserial.registry import lookup
from diffserial.serial_tasks import Example, SerialTask
from diffserial.training.step import LossFn

Array = jax.Array
MASKED_MODELS = {"transformer": MaskedTransformer, "looped": LoopedTransformer, "recurrent": RecurrentPredictor}
HOST_SIDE_SERIAL_TASKS = ("sudoku",)


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


def jitted_batch_rows(task: Task, start: int, stop: int) -> Callable[[Array, Array], dict]:
    """(data_key, step) -> `batch_rows`(task, data_key, step, start, stop) as one jitted program (op by op,
    each primitive of the example generator would compile on its own)."""
    return jax.jit(functools.partial(batch_rows, task, start=start, stop=stop))


def _build_model(cls: type[nn.Module], kwargs: dict, **fixed) -> nn.Module:
    """cls(**kwargs, **fixed), with a ValueError naming the valid fields for an unknown keyword."""
    excluded = {"parent", "name", *fixed}
    valid = sorted(f.name for f in dataclasses.fields(cls) if f.name not in excluded)
    unknown = sorted(set(kwargs) - set(valid))
    if unknown:
        raise ValueError(f"config.model: unknown field(s) {unknown} for {cls.__name__}; valid: {', '.join(valid)}")
    return cls(**kwargs, **fixed)


def _gmm_score(config: ml_collections.ConfigDict) -> Task:
    from diffserial.targets import gmm

    process = lookup(PROCESSES, "process", config.process)()
    mixture = gmm.make_mixture(config.d, config.n_components, config.seed)
    model = _build_model(mlp.ScoreMLP, config.model.to_dict())
    apply_fn = lambda p, x, t: model.apply({"params": p}, x, t)
    loss_fn = losses.dsm_batch_loss(apply_fn, process, per_example_noise=True,
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


OBJECTIVES = ("nelbo", "supervised")


def segment_accuracy(aux: dict, segments: dict[str, Array]) -> dict[str, Array]:
    """Per-token accuracy of the scored positions of each segment, from a masked loss's aux:

        {name}_token_accuracy = sum_{b, j in segment} scored_bj correct_bj / max(1, sum_{b, j in segment} scored_bj)

    segments: name -> bool (L,) positions (e.g. the answer and the chain of thought of a serial task)."""
    out = {}
    for name, where in segments.items():
        scored = aux["scored"] & where
        out[f"{name}_token_accuracy"] = jnp.sum(scored & aux["correct"]) / jnp.maximum(jnp.sum(scored), 1)
    return out


def _masked_task(name: str, config: ml_collections.ConfigDict, vocab_size: int, length: int, example,
                 prompt_mask: Array | None = None, objective: str = "nelbo",
                 segments: dict[str, Array] | None = None) -> Task:
    """A masked-diffusion Task on sequences of `length` tokens in {0..vocab_size-1} (MASK = vocab_size):
    the network config.model.name with config.model's fields, the NELBO under config.schedule (objective
    "nelbo") or `losses.masked_supervised_loss` (objective "supervised", needs a prompt_mask). With
    `segments`, the loss's aux carries aux["metrics"] = `segment_accuracy` (logged by the training loop:
    per-token accuracy on the positions the loss scored, during training)."""
    kwargs = config.model.to_dict()
    cls = lookup(MASKED_MODELS, "model", kwargs.pop("name"))
    fixed = {"vocab_size": vocab_size}
    if "max_len" in {f.name for f in dataclasses.fields(cls)}:
        fixed["max_len"] = length
    model = _build_model(cls, kwargs, **fixed)
    schedule = make_schedule(config.schedule)
    apply_fn = lambda p, x, t: model.apply({"params": p}, x, t)

    lookup({o: o for o in OBJECTIVES}, "objective", objective)

    def loss_fn(params, batch, key):
        if objective == "supervised":
            loss, aux = losses.masked_supervised_loss(apply_fn, params, batch["x"], prompt_mask, mask_id=vocab_size)
        else:
            loss, aux = losses.masked_nelbo(apply_fn, params, schedule, batch["x"], key, mask_id=vocab_size,
                                            prompt_mask=prompt_mask, index=batch["index"],
                                            global_batch=config.batch_size)
        return loss, {**aux, "metrics": segment_accuracy(aux, segments or {})}

    return Task(name, model, example, (length,), jnp.int32, loss_fn, lambda params: predictor_from(model, params))


def _masked_parity(config: ml_collections.ConfigDict) -> Task:
    return _masked_task("masked_parity", config, 2, config.n, lambda key: even_parity_example(key, config.n))


@static_dataclass
class SerialLayout:
    """Where a serial task's parts sit in the training sequence [prompt, cot, answer] of `length` tokens:
    prompt [0, Lp), cot [Lp, Lp + Lc) (Lc = 0 without chain of thought), answer [L - La, L). Static (no
    traced leaves): it can sit inside a jitted function's `Partial` and compiles by value."""

    task: SerialTask
    prompt_len: int
    cot_len: int
    answer_len: int

    @property
    def length(self) -> int:
        return self.prompt_len + self.cot_len + self.answer_len

    @property
    def generated_len(self) -> int:
        """Positions a sampler fills in: cot and answer."""
        return self.cot_len + self.answer_len

    def prompt_mask(self) -> Array:
        """bool (L,): True on the prompt positions."""
        return jnp.arange(self.length) < self.prompt_len

    def sequence(self, example: Example) -> Array:
        """One example as the (L,) int32 sequence [prompt, cot, answer]."""
        parts = [example.prompt] + ([example.cot] if self.cot_len else []) + [example.answer]
        return jnp.concatenate(parts).astype(jnp.int32)

    def split(self, tokens: Array) -> tuple[Array, Array]:
        """(prompt (..., Lp), answer (..., La)) of sequences (..., L)."""
        return tokens[..., :self.prompt_len], tokens[..., self.length - self.answer_len:]


def serial_layout(config: ml_collections.ConfigDict) -> SerialLayout:
    """The serial task of config.serial_task (built with config.task_args and with_cot = config.cot) and its
    sequence layout. ValueError for an unknown or host-side task (sudoku), a task without a chain of thought
    when config.cot is set, or bad size arguments."""
    name = config.serial_task
    trainable = sorted(n for n in serial_tasks.TASKS if n not in HOST_SIDE_SERIAL_TASKS)
    if name not in trainable:
        raise ValueError(f"unknown serial task {name!r} for training; valid serial tasks: {', '.join(trainable)}"
                         + (" (sudoku is generated host-side, not by a JAX example function)"
                            if name in HOST_SIDE_SERIAL_TASKS else ""))
    kwargs = dict(config.task_args)
    if "with_cot" in kwargs:
        raise ValueError("config.task_args must not set with_cot: use config.cot")
    try:
        task = serial_tasks.make_task(name, **kwargs, with_cot=bool(config.cot))
    except TypeError as err:
        raise ValueError(f"config.task_args {kwargs} do not fit serial task {name!r}: {err}") from None
    if config.cot and task.cot_len == 0:
        raise ValueError(f"config.cot = True but serial task {name!r} with {kwargs} has no chain of thought")
    return SerialLayout(task, task.prompt_len, task.cot_len if config.cot else 0, task.answer_len)


def _serial(config: ml_collections.ConfigDict) -> Task:
    layout = serial_layout(config)
    positions = jnp.arange(layout.length)
    segments = {"answer": positions >= layout.length - layout.answer_len}
    if layout.cot_len:
        segments["cot"] = (positions >= layout.prompt_len) & (positions < layout.prompt_len + layout.cot_len)
    return _masked_task("serial", config, layout.task.vocab_size, layout.length,
                        lambda key: layout.sequence(layout.task.sample_one(key)), layout.prompt_mask(),
                        objective=config.get("objective", "nelbo"), segments=segments)


@dataclasses.dataclass(frozen=True)
class PromptConditionedTask(Task):
    """A Task whose model is called as model.apply({"params": p}, prompt (Lp,), y (*answer_shape), t) (the
    example itself is the token sequence [prompt, answer])."""

    prompt_len: int
    answer_shape: tuple[int, ...]

    def init(self, key: Array) -> Any:
        """Model parameters from `key` (traced on a zero prompt and answer at t = 0.5)."""
        prompt = jnp.zeros((self.prompt_len,), jnp.int32)
        return self.model.init(key, prompt, jnp.zeros(self.answer_shape, jnp.float32), jnp.float32(0.5))["params"]


@dataclasses.dataclass(frozen=True)
class ContinuousAnswer:
    """What a sampler needs from a `serial_continuous` model: score_fn(prompt (Lp,), y (La, m), t) ->
    -eps_theta / s_t (a `Partial` over the parameters), the forward process, the codebook, the layout and
    t_min, the training's smallest time (where a sampling grid should end)."""

    score_fn: Callable[[Array, Array, Array], Array]
    process: LinearGaussianSDE
    code: BinaryCode
    layout: SerialLayout
    t_min: float


CONTINUOUS_T_MIN = 1e-3


def _conditional_score(eps_fn, process, prompt, y, t):
    return losses.eps_to_score(eps_fn(prompt, y, t), process, t)


def _serial_continuous(config: ml_collections.ConfigDict) -> Task:
    if config.cot:
        raise ValueError("task serial_continuous models the answer alone: config.cot must be False")
    layout = serial_layout(config)
    process = lookup(PROCESSES, "process", config.process)()
    code = BinaryCode(layout.task.vocab_size)
    kwargs = config.model.to_dict()
    if kwargs.pop("name") != "transformer":
        raise ValueError(f"task serial_continuous uses the fixed-depth transformer: config.model.name must be "
                         f"'transformer', got {config.model.name!r}")
    model = _build_model(ContinuousAnswerTransformer, kwargs, vocab_size=layout.task.vocab_size,
                         prompt_len=layout.prompt_len, answer_len=layout.answer_len, code_dim=code.dim)

    def loss_fn(params, batch, key):
        prompt, answer = layout.split(batch["x"])
        apply_fn = lambda p, y, t: model.apply({"params": p}, prompt, y, t)
        dsm = losses.dsm_batch_loss(apply_fn, process, per_example_noise=True, t_min=CONTINUOUS_T_MIN)
        return dsm(params, {"x": code.encode(answer), "index": batch["index"]}, key)

    def sampling_fn(params):
        score = jax.tree_util.Partial(_conditional_score, eps_fn_from(model, params), process)
        return ContinuousAnswer(score, process, code, layout, CONTINUOUS_T_MIN)

    example = lambda key: layout.sequence(layout.task.sample_one(key))
    return PromptConditionedTask("serial_continuous", model, example, (layout.length,), jnp.int32, loss_fn,
                                 sampling_fn, layout.prompt_len, (layout.answer_len, code.dim))


TASKS = {"gmm_score": _gmm_score, "masked_parity": _masked_parity, "serial": _serial,
         "serial_continuous": _serial_continuous}


def make_task(config: ml_collections.ConfigDict) -> Task:
    """The Task named config.task, built from the config's fields (ValueError for unknown names)."""
    return lookup(TASKS, "task", config.task)(config)


__all__ = ["CONTINUOUS_T_MIN", "ContinuousAnswer", "HOST_SIDE_SERIAL_TASKS", "MASKED_MODELS", "PromptConditionedTask",
           "OBJECTIVES", "TASKS", "SerialLayout", "Task", "batch_rows", "jitted_batch_rows",
           "even_parity_example", "make_task", "serial_layout"]
