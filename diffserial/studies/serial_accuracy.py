"""Serial tasks with learned masked-diffusion models: exact accuracy vs sampling steps T and vs problem size n,
per model family (issue 5, studies 1-3; the Sudoku study 4 is not part of this module).

For each task in config.tasks, size n in config.sizes and family in config.families, the study trains a
masked predictor (training task "serial", `training.tasks.serial_layout`) for config.train_steps steps (or
config.train_steps_by_task.TASK where that is set) into WORKDIR/train_TASK_nN_FAMILY (resuming if it is
already there), then samples config.n_seeds problems -- seed i draws its prompt from its own key
(`PromptThenMasks`), so every seed solves a different instance -- with each sampler of config.samplers at T
steps, and scores the sampled answer with the task's exact checker.

    family        network                                               sequence
    transformer   fixed-depth MaskedTransformer (config.models.transformer)  [prompt, answer]
    looped        LoopedTransformer, loops = max(1, ceil(config.loops_per_n n)): depth grows with n
    recurrent     bidirectional GRU (RecurrentPredictor): serial depth grows with the length
    cot           the fixed-depth transformer                            [prompt, cot, answer]
                  (one layer of the computation -- a prefix product, a circuit layer -- per cot block)
    supervised    the fixed-depth transformer trained by cross-entropy on the answer with every generated
                  position masked (`losses.masked_supervised_loss`): the baseline that says how well this
                  network can learn the map prompt -> answer at all, without diffusion (sampled at
                  T = 1 only, `family_steps`)
    continuous    fixed-depth ContinuousAnswerTransformer (config.models.transformer), a continuous diffusion
                  over the quantized answer (paper appendix F.1; training task "serial_continuous", forward
                  process config.train.process)

The continuous family is sampled by `studies.serial_continuous.sample_sequences` with the continuous samplers
config.continuous_samplers (`samplers.CONTINUOUS_SAMPLERS`) at every T in config.steps (T is free for a
continuous diffusion: the grid from t = 1 to the training's t_min has T steps whatever the answer length); its
seed i draws the same prompt as PromptThenMasks, so it is paired with the masked families at the same n. Its
rows carry the forward process in "schedule".

Size n is the word length (parity, majority, sum_mod, s5, a5, s5_gen, a5_gen), the circuit depth
(circuit_value, with config.circuit_width inputs and gates per layer) or the number of automaton steps
(rule110, row width config.ca_width; rule110_cell, the middle cell from its light cone of 2n + 1 cells). The
steps measured are T in config.steps with T <= G, plus G itself, where G = the number
of generated (non-prompt) positions: a top-k sampler reveals about G / T positions per step, so T = G is one
position per step (more steps would reveal nothing new). Without chain of thought G = answer_len (1 for the
word problems), so T = 1 is the only point: a single answer token is revealed in one step from the same
input whatever T is, which is the trivial form of "more steps add nothing".

Accuracy = the fraction of seeds whose answer passes `task.check` (the sampled chain of thought is not scored),
with a 95% Clopper-Pearson interval; `best_constant` = the frequency of the most common true answer among the
same prompts (the accuracy of the best constant guess: 1/2 for parity, ~1/120 for S5), and `best_one_token` =
the accuracy of the best guess that reads a single prompt token (never below best_constant; e.g. the output
gate's type of a circuit, which alone gives ~0.67 on the default circuits). "Chance" is `best_one_token`: a
model at that level has learned nothing a one-token lookup would not give.
Every family and sampler at a given n sees the same prompts (the evaluation key depends on n only), so the
comparisons are paired.

The summary states, per task, whether a size cliff was found (`cliff`): with the first sampler at T = G, the
fixed-depth transformer is above chance (accuracy_lo > best_one_token) at the smallest n and at chance at the
largest, while the cot family -- the same network given one computation layer per cot block -- is still
above chance at the largest n.
"""

from __future__ import annotations

import math
import os
import time
from typing import Iterator

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from diffserial import serial_tasks
from diffserial.metrics.intervals import clopper_pearson
from diffserial.processes.masked import SCHEDULES, make_schedule
from diffserial.registry import lookup
from diffserial.samplers import (CONTINUOUS_SAMPLERS, MASKED_SAMPLERS, PromptThenMasks, continuous_sampler, masked_grid,
                                 masked_sampler, sample_masked, seed_mesh)
from diffserial.studies import report, serial_continuous
from diffserial.training import loop, tasks as training_tasks
from diffserial.validation import is_int

STUDY = "serial_accuracy"
POSTFIX_KEYS = ("task", "n", "family", "sampler", "steps")
POINT_KEYS = ("task", "n", "family", "sampler", "steps")  # a row's point (the tuples of points())
FAMILIES = {"transformer": ("transformer", False), "looped": ("looped", False),
            "recurrent": ("recurrent", False), "cot": ("transformer", True),
            "continuous": ("transformer", False), "supervised": ("transformer", False)}  # family -> (network, cot)
SUPERVISED = "supervised"  # the fixed-depth transformer trained by cross-entropy on the fully masked answer
CONTINUOUS = "continuous"  # the family trained with task serial_continuous and sampled by continuous samplers
WORD_PROBLEMS = ("parity", "majority", "sum_mod", "s5", "a5", "s5_gen", "a5_gen")
CIRCUITS = ("circuit_value", "arithmetic_circuit")
BILLIARDS = ("billiards", "billiards_free_flight")
SIZED_TASKS = WORD_PROBLEMS + CIRCUITS + BILLIARDS + ("rule110", "rule110_cell")


def task_args(config: ml_collections.ConfigDict, task: str, n: int) -> dict:
    """The serial task's size arguments for size n (see the module docstring)."""
    lookup({t: t for t in SIZED_TASKS}, "serial task", task)
    if task in WORD_PROBLEMS:
        return {"n": n}
    if task in CIRCUITS:
        args = {"n_inputs": config.circuit_width, "width": config.circuit_width, "depth": n}
        if task == "arithmetic_circuit":
            return {**args, "p": config.arithmetic_modulus}
        return {**args, "wiring": config.circuit_wiring}
    if task in BILLIARDS:
        return {"steps": n, "height": config.billiards_side, "width": config.billiards_side}
    if task == "rule110_cell":
        return {"steps": n}
    return {"width": config.ca_width, "steps": n}


def sizes_for(config: ml_collections.ConfigDict, task: str) -> tuple[int, ...]:
    """The sizes n measured for `task`: config.sizes[task]."""
    return tuple(config.sizes[task])


def loops_for(config: ml_collections.ConfigDict, n: int) -> int:
    """Loops of the looped family at size n: max(1, ceil(loops_per_n n))."""
    return max(1, math.ceil(config.loops_per_n * n))


def has_cot(config: ml_collections.ConfigDict, task: str, n: int) -> bool:
    """Whether `task` at size n has intermediate steps to write down (a circuit of depth 1 has none)."""
    return serial_tasks.make_task(task, **task_args(config, task, n), with_cot=True).cot_len > 0


def train_config(config: ml_collections.ConfigDict, task: str, n: int, family: str) -> ml_collections.ConfigDict:
    """config.train for (task, n, family): the serial task and its size, cot, the family's network
    (config.models[network], loops from `loops_for` for the looped one), total_steps = `train_steps_for(config,
    task)`, and for the continuous family task serial_continuous with total_steps = config.continuous_train_steps.
    The cot family at a size whose chain of thought is empty (`has_cot`: circuit depth 1) is the direct answer."""
    network, cot = lookup(FAMILIES, "family", family)
    cot = cot and has_cot(config, task, n)
    c = ml_collections.ConfigDict(config.train.to_dict())
    if family == CONTINUOUS:
        c.task = "serial_continuous"
    c.objective = "supervised" if family == SUPERVISED else "nelbo"
    c.serial_task = task
    c.task_args = ml_collections.ConfigDict(task_args(config, task, n))
    c.cot = cot
    c.model = ml_collections.ConfigDict({"name": network, **config.models[network].to_dict()})
    if network == "looped":
        c.model.loops = loops_for(config, n)
    c.total_steps = config.continuous_train_steps if family == CONTINUOUS else train_steps_for(config, task)
    return c


def train_steps_for(config: ml_collections.ConfigDict, task: str) -> int:
    """Training steps of the masked families on `task`: config.train_steps_by_task[task] where set, else
    config.train_steps."""
    steps = config.train_steps_by_task.get(task)
    return config.train_steps if steps is None else steps


def steps_for(config: ml_collections.ConfigDict, generated_len: int) -> list[int]:
    """T in config.steps with T <= G, and G itself (sorted)."""
    return sorted({int(t) for t in config.steps if t <= generated_len} | {generated_len})


def samplers_for(config: ml_collections.ConfigDict, family: str) -> tuple[str, ...]:
    """config.continuous_samplers for the continuous family, config.samplers (masked) for the others."""
    return tuple(config.continuous_samplers if family == CONTINUOUS else config.samplers)


def family_steps(config: ml_collections.ConfigDict, family: str, generated_len: int) -> list[int]:
    """Every T in config.steps for the continuous family; T = 1 alone for the supervised one (trained only
    with every generated position masked, it predicts them all at once: with T > 1 its inputs hold revealed
    tokens it never saw in training, and its accuracy falls, e.g. rule110 n = 2: 1.000 at T = 1, 0.212 at
    T = 2, 0.072 at T = 16); `steps_for` (T <= G, and G) for the other masked families."""
    if family == CONTINUOUS:
        return sorted({int(t) for t in config.steps})
    return [1] if family == SUPERVISED else steps_for(config, generated_len)


def runs(config: ml_collections.ConfigDict) -> list[tuple[str, int, str]]:
    """The (task, n, family) training runs, in order."""
    return [(task, n, family) for task in config.tasks for n in sizes_for(config, task)
            for family in config.families]


def flop_estimate(config: ml_collections.ConfigDict) -> dict[str, float]:
    """Counted FLOPs of the whole study, to size a preset (an estimate, not a measurement): per training run,
    steps * batch * L * 6 (P + 2 L D k), and per sampled point, NFE * n_seeds * L * 2 (P + 2 L D k), where
    L = sequence length, D = width, k = blocks applied (depth, loops, or GRU layers) and P = 12 D^2 k the
    matmul parameters (attention scores included by the 2 L D k term; embeddings and the GRU's gates
    counted as a block). {"train": FLOPs, "sample": FLOPs}."""
    train = sample = 0.0
    for task, n, family in runs(config):
        c = train_config(config, task, n, family)
        layout = _layout(config, task, n, family)
        length, generated = layout.length, layout.generated_len
        width = c.model.width
        blocks = c.model.get("depth") or c.model.get("loops") or c.model.get("layers") or 1
        per_token = 12 * width ** 2 * blocks + 2 * length * width * blocks
        train += 6.0 * c.total_steps * c.batch_size * length * per_token
        nfe = sum(family_steps(config, family, generated)) * len(samplers_for(config, family))
        sample += 2.0 * nfe * config.n_seeds * length * per_token
    return {"train": train, "sample": sample}


def validate(config: ml_collections.ConfigDict) -> None:
    """Raise ValueError for a config that cannot run, before anything is compiled."""
    for name in config.samplers:
        lookup(MASKED_SAMPLERS, "sampler", name)
    for name in config.continuous_samplers:
        lookup(CONTINUOUS_SAMPLERS, "continuous sampler", name)
    lookup(SCHEDULES, "schedule", config.schedule)
    for field in ("tasks", "families", "samplers", "continuous_samplers", "steps"):
        if not config[field]:
            raise ValueError(f"config.{field} must not be empty")
    for task in config.tasks:
        if task not in SIZED_TASKS:
            raise ValueError(f"unknown task {task!r} in config.tasks; valid: {', '.join(SIZED_TASKS)}")
        if task not in config.sizes or not config.sizes[task]:
            raise ValueError(f"config.sizes.{task} must list the sizes n of task {task!r}, got none")
    for family in config.families:
        lookup(FAMILIES, "family", family)
    sizes = {f"sizes.{task}": tuple(config.sizes[task]) for task in config.tasks}
    for field, values in {**sizes, "steps": tuple(config.steps)}.items():
        if any(isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in values):
            raise ValueError(f"config.{field} must be integers >= 1, got {values}")
    for field in ("n_seeds", "block_size", "train_steps", "continuous_train_steps", "circuit_width", "ca_width",
                  "arithmetic_modulus", "billiards_side"):
        if isinstance(config[field], bool) or not isinstance(config[field], int) or config[field] < 1:
            raise ValueError(f"config.{field} must be an integer >= 1, got {config[field]!r}")
    for task, steps in config.train_steps_by_task.items():
        if task not in SIZED_TASKS:
            raise ValueError(f"unknown task {task!r} in config.train_steps_by_task; valid: {', '.join(SIZED_TASKS)}")
        if steps is not None and not (is_int(steps) and steps >= 1):
            raise ValueError(f"config.train_steps_by_task.{task} must be an integer >= 1 or None, got {steps!r}")
    if not config.loops_per_n > 0:
        raise ValueError(f"config.loops_per_n must be > 0, got {config.loops_per_n}")
    for run in runs(config):
        loop.validate(train_config(config, *run))


def _layout(config, task: str, n: int, family: str) -> training_tasks.SerialLayout:
    return training_tasks.serial_layout(train_config(config, task, n, family))


def points(config: ml_collections.ConfigDict) -> list[tuple[str, int, str, str, int]]:
    """(task, n, family, sampler, steps) in order."""
    out = []
    for task, n, family in runs(config):
        steps = family_steps(config, family, _layout(config, task, n, family).generated_len)
        out += [(task, n, family, sampler, t) for sampler in samplers_for(config, family) for t in steps]
    return out


def sample(config, layout: training_tasks.SerialLayout, predictor, sampler: str, steps: int, key, mesh,
           pad_to: int) -> jax.Array:
    """Final sequences (n_seeds, L) of `sampler` run for `steps` from PromptThenMasks(layout); the prompt
    positions are fixed by every masked rule (they are unmasked at init)."""
    return sample_masked(
        predictor, make_schedule(config.schedule), masked_sampler(sampler), masked_grid(steps), key=key,
        n_seeds=config.n_seeds, length=layout.length, vocab_size=layout.task.vocab_size,
        init_fn=PromptThenMasks(layout), mesh=mesh, block_size=config.block_size, pad_to=pad_to)


def best_one_token(prompt: np.ndarray, truth: np.ndarray) -> float:
    """Accuracy of the best guess of the whole answer from one prompt token, in-sample on N prompts:

        max_p (1/N) sum_v max_a #{i : prompt[i, p] = v, truth_i = a},

    i.e. for each position p, guess per token value v the most common answer a among the prompts with v at p.
    It is >= the best constant guess (max_a #{i : truth_i = a} / N) and, fitted on the same prompts, optimistic
    by at most (number of token values) / N when the answers are all distinct."""
    _, answer_id = np.unique(truth.reshape(len(truth), -1), axis=0, return_inverse=True)
    answer_id = answer_id.reshape(-1)
    best = np.bincount(answer_id).max()
    for column in np.asarray(prompt, np.int64).T:
        joint = np.zeros((column.max() + 1, answer_id.max() + 1), np.int64)
        np.add.at(joint, (column, answer_id), 1)
        best = max(best, joint.max(axis=1).sum())
    return float(best / len(truth))


def measure(layout: training_tasks.SerialLayout, tokens: np.ndarray) -> dict:
    """Exact accuracy of the sampled answers (task.check), its 95% interval, the accuracy of the best constant
    guess and of the best one-token guess (`best_one_token`) on the same prompts, and the number of sequences
    with a MASK left (0 for every rule)."""
    prompt, answer = layout.split(tokens)
    unfinished = np.any(tokens >= layout.task.vocab_size, axis=1)
    correct = np.asarray(layout.task.check(prompt, np.minimum(answer, layout.task.vocab_size - 1))) & ~unfinished
    truth = np.asarray(jax.jit(jax.vmap(layout.task.solve))(jnp.asarray(prompt)))  # one program, not op by op
    _, counts = np.unique(truth, axis=0, return_counts=True)
    k, n = int(correct.sum()), len(correct)
    lo, hi = clopper_pearson(k, n)
    return {"n_seeds": n, "n_correct": k, "accuracy": k / n, "accuracy_lo": lo, "accuracy_hi": hi,
            "best_constant": float(counts.max() / n), "best_one_token": best_one_token(prompt, truth),
            "n_unfinished": int(unfinished.sum())}


TOKEN_ACCURACY_KEYS = ("answer_token_accuracy", "answer_argmax_accuracy", "cot_token_accuracy",
                       "cot_teacher_forced_accuracy", "teacher_forced_exact")
TEACHER_FORCED_EXAMPLES = 128  # G forward passes each: a quarter of the sampler's cost at T = G, 512 seeds


def token_accuracy(layout: training_tasks.SerialLayout, predictor, key: jax.Array, n_examples: int) -> dict:
    """Per-token accuracy of a masked predictor on examples i = 0..n_examples-1 drawn from fold_in(key, i)
    (the prompts of `PromptThenMasks`), argmax of the logits against the true tokens x0, in two settings:

    - from the prompt alone (every generated position masked): "answer_token_accuracy", "cot_token_accuracy"
      (None without cot), "answer_argmax_accuracy" (whole answer right). A model that ignores the prompt gets
      about 1/V per token on a uniform answer (1/2 for bits).
    - teacher-forced, left to right, on the first min(n_examples, TEACHER_FORCED_EXAMPLES) examples: position
      j >= P (P = prompt length) predicted from x0[:j] with every position >= j masked,

          right_j = [argmax_v f(x0[:j], MASK, ..., MASK)_{j, v} = x0_j],

      "cot_teacher_forced_accuracy" = the mean of right_j over the cot positions (None without cot): whether
      the model learned one step of the computation given the true earlier steps (the cot tokens from the
      prompt alone measure the whole chain at once); "teacher_forced_exact" = the fraction of examples with
      every generated right_j: what a left-to-right sampler would get, one token per step, if its errors did
      not compound."""
    mask = layout.task.vocab_size
    positions = jnp.arange(layout.length)

    def all_masked(x0):
        x_t = jnp.where(layout.prompt_mask(), x0, mask)
        return jnp.argmax(predictor(x_t, jnp.float32(1.0)), axis=-1) == x0

    def teacher_forced(x0):
        def at(j):
            x_t = jnp.where(positions < j, x0, mask)
            t = (layout.length - j) / layout.generated_len  # the masked fraction of the generated positions
            return jnp.argmax(predictor(x_t, jnp.float32(t))[j]) == x0[j]
        return jax.lax.map(at, jnp.arange(layout.prompt_len, layout.length))

    x0 = jax.jit(jax.vmap(lambda i: layout.sequence(layout.task.sample_one(jax.random.fold_in(key, i)))))(
        jnp.arange(n_examples))
    right = np.asarray(jax.jit(jax.vmap(all_masked))(x0))
    forced = np.asarray(jax.jit(jax.vmap(teacher_forced))(x0[:TEACHER_FORCED_EXAMPLES]))
    answer = right[:, layout.length - layout.answer_len:]
    cot = right[:, layout.prompt_len:layout.prompt_len + layout.cot_len]
    return {"answer_token_accuracy": float(answer.mean()), "answer_argmax_accuracy": float(answer.all(1).mean()),
            "cot_token_accuracy": float(cot.mean()) if layout.cot_len else None,
            "cot_teacher_forced_accuracy": float(forced[:, :layout.cot_len].mean()) if layout.cot_len else None,
            "teacher_forced_exact": float(forced.all(1).mean())}


def loss_bounds(layout: training_tasks.SerialLayout) -> dict:
    """What the final training loss is compared with: `loss_lower_bound` = 0, the NELBO of the exact
    conditional law (every sized task's cot and answer are functions of the prompt, so the data's
    conditional entropy is 0), and `loss_uniform` = G ln V, the NELBO (and the supervised loss) of a model
    that predicts the uniform law on every generated position."""
    return {"loss_lower_bound": 0.0, "loss_uniform": layout.generated_len * math.log(layout.task.vocab_size)}


def training_log(train_dir: str, batch_size: int) -> dict:
    """From WORKDIR/train_*/metrics.jsonl: `final_loss` (the last logged loss), `loss_at_three_quarters` (the
    first loss logged at or after 3/4 of the steps: final_loss - loss_at_three_quarters is what the last
    quarter of training still gained, the convergence check of the summary) and `train_steps_per_s`, the
    median over the logged intervals after the first (which holds the compilation) of examples_per_s /
    batch_size; None where nothing (or only one interval) was logged."""
    path = os.path.join(train_dir, "metrics.jsonl")
    rows = report.read_jsonl(path) if os.path.exists(path) else []
    speeds = [r["examples_per_s"] / batch_size for r in rows[1:] if "examples_per_s" in r]
    late = [r for r in rows if r["step"] >= 0.75 * rows[-1]["step"]] if rows else []
    return {"final_loss": rows[-1]["loss"] if rows else None,
            "loss_at_three_quarters": late[0]["loss"] if late else None,
            "train_steps_per_s": float(np.median(speeds)) if speeds else None}


def run(config: ml_collections.ConfigDict, mesh=None, workdir: str | None = None,
        done=frozenset()) -> Iterator[dict]:
    """Train (or resume) each (task, n, family), then yield one row per (sampler, steps) not in `done` (a
    run none of whose points is left is skipped whole); see the module docstring. Seeds are sharded over
    `mesh`; the evaluation key differs from every training key."""
    if workdir is None:
        raise ValueError("serial_accuracy trains its models into WORKDIR/train_*: a workdir is required")
    mesh = mesh if mesh is not None else seed_mesh(jax.local_devices())
    eval_key = jax.random.fold_in(jax.random.key(config.seed), 7)
    left = {p[:3] for p in points(config) if p not in done}
    for task, n, family in runs(config):
        if (task, n, family) not in left:
            continue
        train_dir = os.path.join(workdir, f"train_{task}_n{n}_{family}")
        start = time.perf_counter()
        loop.train(train_config(config, task, n, family), train_dir)
        train_seconds = time.perf_counter() - start
        trained = loop.load_trained(train_dir)
        layout = training_tasks.serial_layout(trained.config)
        predictor = trained.sampling_fn()
        steps = family_steps(config, family, layout.generated_len)
        is_continuous = family == CONTINUOUS
        common = {"study": STUDY, "task": task, "n": n, "family": family, "model": trained.config.model.name,
                  "cot": bool(trained.config.cot), "loops": trained.config.model.get("loops"),
                  "train_steps": trained.step, **training_log(train_dir, trained.config.batch_size),
                  "train_seconds": train_seconds, "generated_len": layout.generated_len,
                  "cot_len": layout.cot_len, "schedule": trained.config.process if is_continuous else config.schedule,
                  "grid": "uniform", "objective": trained.config.get("objective", "nelbo"), **loss_bounds(layout)}
        key = jax.random.fold_in(eval_key, n)
        common.update(dict.fromkeys(TOKEN_ACCURACY_KEYS) if is_continuous  # no argmax of a score
                      else token_accuracy(layout, predictor, key, min(config.n_seeds, 1024)))
        for sampler in samplers_for(config, family):
            rule = continuous_sampler(sampler) if is_continuous else masked_sampler(sampler)
            for t in steps:
                if (task, n, family, sampler, t) in done:
                    continue
                start = time.perf_counter()
                if is_continuous:
                    tokens = serial_continuous.sample_sequences(predictor, sampler, t, key=key, n_seeds=config.n_seeds,
                                                                mesh=mesh, block_size=config.block_size,
                                                                pad_to=max(steps))
                else:
                    tokens = sample(config, layout, predictor, sampler, t, key, mesh, pad_to=max(steps))
                tokens = jax.block_until_ready(tokens)
                yield {**common, "sampler": sampler, "steps": t, "nfe": t * rule.nfe_per_step, "steps_per_n": t / n,
                       "seconds": time.perf_counter() - start, **measure(layout, np.asarray(tokens))}


def _plateau(group: list[dict]) -> int:
    """The fewest steps whose accuracy interval reaches the best accuracy over all steps of the group."""
    best = max(r["accuracy"] for r in group)
    return min(r["steps"] for r in group if r["accuracy_hi"] >= best)


def above_chance(row: dict) -> bool:
    """True when the accuracy is significantly above the best one-token guess (>= the best constant one): its
    95% interval's lower end accuracy_lo > best_one_token (so "at chance" = the interval reaches down to what
    reading a single prompt token gives)."""
    return row["accuracy_lo"] > row["best_one_token"]


def final_rows(rows: list[dict], sampler: str) -> dict[tuple[str, int, str], dict]:
    """(task, n, family) -> the row of `sampler` at the most steps measured (T = G)."""
    out = {}
    for r in rows:
        key = (r["task"], r["n"], r["family"])
        if r["sampler"] == sampler and (key not in out or r["steps"] > out[key]["steps"]):
            out[key] = r
    return out


def cliff(rows: list[dict], task: str, sampler: str) -> dict:
    """The size cliff of `task` under `sampler` at T = G, between the smallest and the largest n measured: per
    family and end, the accuracy, its interval's lower end and `above_chance`; the best constant and one-token
    guesses per end; and `found` = the fixed-depth transformer is above chance at the smallest n but not at the
    largest, while the cot family (the same network, one computation layer per cot block) is above chance at the
    largest n.
    `found` is None when a single size was measured or the transformer or cot family is missing."""
    final = final_rows([r for r in rows if r["task"] == task], sampler)
    sizes = sorted({n for _, n, _ in final})
    ends = {"small": sizes[0], "large": sizes[-1]}
    families = {}
    for family in dict.fromkeys(f for _, _, f in final):
        families[family] = {}
        for end, n in ends.items():
            r = final.get((task, n, family))
            families[family][end] = None if r is None else {
                "accuracy": r["accuracy"], "accuracy_lo": r["accuracy_lo"], "above_chance": above_chance(r)}
    def baseline(name):
        return {end: next(r[name] for (_, m, _), r in final.items() if m == n) for end, n in ends.items()}
    fixed, cot = families.get("transformer", {}), families.get("cot", {})
    known = len(sizes) > 1 and all(fam.get(end) for fam in (fixed, cot) for end in ends)
    found = (fixed["small"]["above_chance"] and not fixed["large"]["above_chance"]
             and cot["large"]["above_chance"]) if known else None
    return {"sampler": sampler, "small_n": ends["small"], "large_n": ends["large"],
            "best_constant": baseline("best_constant"), "best_one_token": baseline("best_one_token"),
            "families": families, "found": found}


def training_evidence(rows: list[dict]) -> dict[str, dict]:
    """Per training run "task/n/family": how well it was trained, from its rows (the same in every row of a
    run): final_loss, loss_uniform (G ln V: nothing learned), `loss_fraction` = final_loss / loss_uniform (0 =
    the exact law, 1 = nothing learned), `last_quarter_gain` = (loss_at_three_quarters - final_loss) /
    loss_uniform (what the last quarter of the steps still gained: near 0 = the loss had plateaued), the
    per-token and whole-answer argmax accuracies from the prompt alone, and train_steps_per_s."""
    out = {}
    for (task, n, family), group in report.group_by(rows, "task", "n", "family").items():
        r = group[0]
        final, uniform, late = r.get("final_loss"), r.get("loss_uniform"), r.get("loss_at_three_quarters")
        known = final is not None and uniform
        out[f"{task}/{n}/{family}"] = {
            "final_loss": final, "loss_uniform": uniform, "loss_fraction": final / uniform if known else None,
            "last_quarter_gain": (late - final) / uniform if known and late is not None else None,
            **{k: r.get(k) for k in (*TOKEN_ACCURACY_KEYS, "train_steps_per_s")}}
    return out


def summarize(rows: list[dict]) -> dict:
    """Per (task, n, family, sampler): accuracy by T, the plateau (fewest T within the 95% interval of the
    best accuracy), the accuracy at T = G and the best-constant baseline; per (task, family, sampler): the
    accuracy at T = G by n; per task: the `cliff` (first sampler) between the smallest and the largest n; per
    training run: `training_evidence` (the loss against its bounds, whether it still fell, token accuracy)."""
    by_point, by_n = {}, {}
    for key, group in sorted(report.group_by(rows, "task", "n", "family", "sampler").items()):
        group = sorted(group, key=lambda r: r["steps"])
        by_point["/".join(map(str, key))] = {
            "accuracy_by_steps": {str(r["steps"]): r["accuracy"] for r in group},
            "plateau_steps": _plateau(group), "generated_len": group[-1]["generated_len"],
            "accuracy_at_max_steps": group[-1]["accuracy"], "best_constant": group[-1]["best_constant"],
            "best_one_token": group[-1]["best_one_token"],
            "final_loss": group[-1]["final_loss"], "loss_uniform": group[-1].get("loss_uniform"),
            "answer_token_accuracy": group[-1].get("answer_token_accuracy"),
            "cot_token_accuracy": group[-1].get("cot_token_accuracy")}
        task, n, family, sampler = key
        by_n.setdefault(f"{task}/{family}/{sampler}", {})[str(n)] = group[-1]["accuracy"]
    sampler = rows[0]["sampler"]
    cliffs = {task: cliff(rows, task, sampler) for task in dict.fromkeys(r["task"] for r in rows)}
    return {"study": STUDY, "by_point": by_point, "accuracy_vs_n": by_n, "cliff": cliffs,
            "training": training_evidence(rows)}


def plot(rows: list[dict], workdir: str) -> list[str]:
    """accuracy_vs_steps.png (a panel per (task, n); colour = family, solid = first sampler, dashed =
    others), accuracy_vs_n.png (a panel per task, accuracy at T = G, first sampler), plateau_vs_n.png
    (`_plot_plateau`), cot_rounds.png (the cot family's accuracy vs T / n, when present)."""
    import matplotlib.pyplot as plt

    families = list(dict.fromkeys(r["family"] for r in rows))
    samplers = list(dict.fromkeys(r["sampler"] for r in rows))
    color = {f: plt.cm.tab10(i % 10) for i, f in enumerate(families)}
    style = {s: "-" if i == 0 else "--" for i, s in enumerate(samplers)}
    panels = sorted(report.group_by(rows, "task", "n").items())
    fig, axes = plt.subplots(1, len(panels), figsize=(4 * len(panels), 3.8), squeeze=False, sharey=True)
    for ax, ((task, n), group) in zip(axes[0], panels):
        for (family, sampler), curve in report.group_by(group, "family", "sampler").items():
            curve = sorted(curve, key=lambda r: r["steps"])
            xs = [r["steps"] for r in curve]
            ax.errorbar(xs, [r["accuracy"] for r in curve], marker="o", ms=3, ls=style[sampler],
                        color=color[family], label=f"{family}, {sampler}",
                        yerr=[[r["accuracy"] - r["accuracy_lo"] for r in curve],
                              [r["accuracy_hi"] - r["accuracy"] for r in curve]])
        ax.axhline(group[0]["best_one_token"], color="k", ls=":", lw=1, label="chance (best one-token guess)")
        ax.set_xscale("log", base=2)
        ax.set_ylim(-0.02, 1.02)
        ax.set_title(f"{task}, n = {n}")
        ax.set_xlabel("sampling steps T")
        ax.grid(True, alpha=0.3)
    axes[0][0].set_ylabel("exact accuracy")
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=4, fontsize=7)
    fig.tight_layout(rect=(0, 0.16, 1, 1))
    fig.savefig(os.path.join(workdir, "accuracy_vs_steps.png"), dpi=110)
    plt.close(fig)

    last = [r for g in report.group_by(rows, "task", "n", "family", "sampler").values()
            for r in g if r["steps"] == max(x["steps"] for x in g) and r["sampler"] == samplers[0]]
    tasks = list(dict.fromkeys(r["task"] for r in rows))
    fig, axes = plt.subplots(1, len(tasks), figsize=(4 * len(tasks), 3.8), squeeze=False, sharey=True)
    for ax, task in zip(axes[0], tasks):
        for family in families:
            curve = sorted((r for r in last if r["task"] == task and r["family"] == family), key=lambda r: r["n"])
            ax.plot([r["n"] for r in curve], [r["accuracy"] for r in curve], marker="o", color=color[family],
                    label=family)
        base = sorted((r for r in last if r["task"] == task), key=lambda r: r["n"])
        ax.plot([r["n"] for r in base], [r["best_one_token"] for r in base], "k:", lw=1, label="best one-token guess")
        ax.set_title(task)
        ax.set_xlabel("problem size n")
        ax.set_ylim(-0.02, 1.02)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7)
    axes[0][0].set_ylabel(f"exact accuracy at T = G ({samplers[0]})")
    fig.tight_layout()
    fig.savefig(os.path.join(workdir, "accuracy_vs_n.png"), dpi=110)
    plt.close(fig)
    names = ["accuracy_vs_steps.png", "accuracy_vs_n.png", _plot_plateau(rows, workdir, color, style)]

    cot = [r for r in rows if r["family"] == "cot"]
    if cot:
        fig, ax = plt.subplots(figsize=(5.5, 4))
        for (task, n, sampler), curve in sorted(report.group_by(cot, "task", "n", "sampler").items()):
            curve = sorted(curve, key=lambda r: r["steps"])
            ax.plot([r["steps_per_n"] for r in curve], [r["accuracy"] for r in curve], marker="o",
                    ls=style[sampler], label=f"{task} n={n}, {sampler}")
        ax.set_xscale("log", base=2)
        ax.set_xlabel("steps T / n (rounds per layer of the computation)")
        ax.set_ylabel("exact accuracy")
        ax.set_ylim(-0.02, 1.02)
        ax.set_title("chain of thought: accuracy vs rounds / depth")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(os.path.join(workdir, "cot_rounds.png"), dpi=110)
        plt.close(fig)
        names.append("cot_rounds.png")
    return names


def _plot_plateau(rows: list[dict], workdir: str, color: dict, style: dict) -> str:
    """plateau_vs_n.png: per task, the plateau T* (the fewest steps within the 95% interval of the best
    accuracy, `_plateau`) vs n per family and sampler, beside G (the most steps that reveal anything) of
    each family; Theorem 4.1 predicts a T* that does not grow with n for the fixed-depth families."""
    import matplotlib.pyplot as plt

    tasks = list(dict.fromkeys(r["task"] for r in rows))
    fig, axes = plt.subplots(1, len(tasks), figsize=(4.5 * len(tasks), 3.8), squeeze=False)
    for ax, task in zip(axes[0], tasks):
        groups = report.group_by([r for r in rows if r["task"] == task], "family", "sampler", "n")
        curves = {}
        for (family, sampler, n), group in groups.items():
            curves.setdefault((family, sampler), []).append((n, _plateau(group), max(r["steps"] for r in group)))
        for (family, sampler), points in curves.items():
            points.sort()
            ax.plot([p[0] for p in points], [p[1] for p in points], marker="o", ls=style[sampler],
                    color=color[family], label=f"T*: {family}, {sampler}")
        for family in dict.fromkeys(f for f, _ in curves):
            points = sorted(next(p for (f, _), p in curves.items() if f == family))
            ax.plot([p[0] for p in points], [p[2] for p in points], ls=":", lw=1, color=color[family],
                    label=f"G (most steps): {family}")
        ax.set_yscale("log", base=2)
        ax.set_xlabel("problem size n")
        ax.set_title(f"{task}: plateau T* vs n")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=6)
    axes[0][0].set_ylabel("sampling steps")
    fig.tight_layout()
    fig.savefig(os.path.join(workdir, "plateau_vs_n.png"), dpi=110)
    plt.close(fig)
    return "plateau_vs_n.png"


def _point_table(rows: list[dict], summary: dict) -> str:
    """One line per (task, n, family, sampler): accuracy at each T, the plateau, the baseline, the loss."""
    steps = sorted({r["steps"] for r in rows})
    lines = []
    for (task, n, family, sampler), group in sorted(report.group_by(rows, "task", "n", "family", "sampler").items()):
        by = {r["steps"]: r for r in group}
        entry = summary["by_point"][f"{task}/{n}/{family}/{sampler}"]
        line = {"task": task, "n": n, "family": family, "sampler": sampler, "G": entry["generated_len"],
                "plateau_T": entry["plateau_steps"], "const": entry["best_constant"],
                "one_tok": entry["best_one_token"], "loss": entry["final_loss"],
                "loss_unif": entry["loss_uniform"], "ans_tok": entry["answer_token_accuracy"],
                "cot_tok": entry["cot_token_accuracy"]}
        line.update({f"T={t}": by[t]["accuracy"] if t in by else None for t in steps})
        lines.append(line)
    cols = (["task", "n", "family", "sampler", "G"] + [f"T={t}" for t in steps]
            + ["plateau_T", "const", "one_tok", "loss", "loss_unif", "ans_tok", "cot_tok"])
    return ("exact accuracy per point (G = generated positions, const / one_tok = best constant / one-token "
            "guess, loss = final "
            "training loss: NELBO, supervised CE for 'supervised', DSM for 'continuous'; its lower bound is 0, "
            "loss_unif = G ln V for a model that learned nothing; ans_tok / cot_tok = per-token accuracy from "
            "the prompt alone):\n" + report.format_table(lines, cols))


def _size_table(rows: list[dict], sampler: str) -> str:
    """One line per (task, n): each family's accuracy at T = G under `sampler` (* = not above chance), the
    cot family's accuracy at T = 1 (all positions revealed in one step), and the best constant and one-token
    guesses."""
    final = final_rows(rows, sampler)
    families = list(dict.fromkeys(r["family"] for r in rows if r["sampler"] == sampler))
    cot_one = {(r["task"], r["n"]): r for r in rows if r["family"] == "cot" and r["sampler"] == sampler
               and r["steps"] == 1}
    lines = []
    for task, n in dict.fromkeys((t, m) for t, m, _ in final):
        first = next(r for (t, m, _), r in final.items() if (t, m) == (task, n))
        line = {"task": task, "n": n, "const": first["best_constant"], "one_tok": first["best_one_token"]}
        for family in families:
            r = final.get((task, n, family))
            line[family] = None if r is None else f"{r['accuracy']:.3f}" + ("" if above_chance(r) else "*")
        if (task, n) in cot_one:
            line["cot T=1"] = f"{cot_one[task, n]['accuracy']:.3f}"
        lines.append(line)
    cols = ["task", "n"] + families + (["cot T=1"] if cot_one else []) + ["const", "one_tok"]
    return (f"exact accuracy at T = G ({sampler}; * = 95% interval reaches the best one-token guess):\n"
            + report.format_table(lines, cols))


def _cliff_line(task: str, c: dict) -> str:
    """One sentence per task: whether the cliff was found, with each family's accuracy at the two ends."""
    verdict = {True: "cliff found", False: "no cliff", None: "cliff undetermined"}[c["found"]]
    ends = "; ".join(f"{family} {v['small']['accuracy']:.3f} -> {v['large']['accuracy']:.3f}"
                     for family, v in c["families"].items() if v["small"] and v["large"])
    return (f"{task}: {verdict} (n = {c['small_n']} -> {c['large_n']}, {c['sampler']} at T = G: {ends}; "
            f"chance (best one-token guess) {c['best_one_token']['small']:.3f} -> "
            f"{c['best_one_token']['large']:.3f})")


def _training_table(summary: dict) -> str:
    """One line per training run: the loss against its bounds, the last quarter's gain, token accuracy."""
    lines = []
    for name, e in summary["training"].items():
        task, n, family = name.split("/")
        lines.append({"task": task, "n": int(n), "family": family, "loss": e["final_loss"],
                      "loss/unif": e["loss_fraction"], "q4_gain": e["last_quarter_gain"],
                      "ans_tok": e["answer_token_accuracy"], "ans_argmax": e["answer_argmax_accuracy"],
                      "cot_tok": e["cot_token_accuracy"], "cot_tf": e["cot_teacher_forced_accuracy"],
                      "tf_exact": e["teacher_forced_exact"], "steps/s": e["train_steps_per_s"]})
    cols = ["task", "n", "family", "loss", "loss/unif", "q4_gain", "ans_tok", "ans_argmax", "cot_tok", "cot_tf",
            "tf_exact", "steps/s"]
    return ("training (loss/unif = final loss / G ln V: 0 = exact, 1 = nothing learned; q4_gain = the loss the "
            "last quarter of the steps still removed, / G ln V; ans_argmax = whole answer right from the prompt "
            "alone, all generated positions masked; cot_tf = cot tokens right given the true earlier tokens, "
            "tf_exact = examples with every generated token right so, teacher-forced left to right):\n"
            + report.format_table(lines, cols))


def table(rows: list[dict], summary: dict) -> str:
    """The per-point table, the per-size table of the first sampler, the training table, and one cliff
    verdict per task."""
    sampler = rows[0]["sampler"]
    cliffs = "\n".join(_cliff_line(task, c) for task, c in summary["cliff"].items())
    return "\n\n".join([_point_table(rows, summary), _size_table(rows, sampler), _training_table(summary), cliffs])


__all__ = ["CONTINUOUS", "FAMILIES", "POINT_KEYS", "POSTFIX_KEYS", "PromptThenMasks", "STUDY", "SIZED_TASKS", "above_chance", "best_one_token", "cliff",
           "family_steps", "flop_estimate", "loss_bounds", "TEACHER_FORCED_EXAMPLES", "token_accuracy", "SUPERVISED", "final_rows", "loops_for", "measure", "plot",
           "points", "run", "runs", "sample", "samplers_for", "sizes_for", "steps_for", "summarize", "table", "task_args",
           "train_config", "training_evidence", "training_log", "validate"]
