"""Parity with a learned predictor: train a masked-diffusion network on even-parity strings of n bits,
then the odd-parity rate and exact TV vs steps for ancestral, remasking and revision samplers.

The exact oracle p(x_0^i | x_t) of `parity_convergence` is the reference ("exact"): without remasking or
revision its ancestral sampler has TV = q/2 > 0 at every fixed T (Thm 4.5 of the summary), and the
samplers that can revise or remask reach D_n in a few steps. The question here is whether a trained
fixed-depth Transformer (or a looped / recurrent network) behaves like the oracle. For each name in
config.models the study trains config.train with that network (fields config.model_fields[NAME]) for
config.train_steps steps into WORKDIR/train_NAME (resuming if already there), or uses the model of
config.checkpoint (a train.py workdir). Rows, plots and tables are those of `parity_convergence`, with
predictor = "exact" or the model's name.
"""

from __future__ import annotations

import os
import time
from typing import Iterator

import jax
import ml_collections
import numpy as np

from diffserial.processes.masked import SCHEDULES
from diffserial.registry import lookup
from diffserial.samplers import MASKED_SAMPLERS
from diffserial.studies import parity_convergence
from diffserial.targets import discrete
from diffserial.training import loop

STUDY = "parity_learned"
POSTFIX_KEYS = ("predictor", "sampler", "steps")
POINT_KEYS = ("predictor", "sampler", "steps")  # a row's point (the tuples of points())


def predictors(config: ml_collections.ConfigDict) -> list[str]:
    """"exact", then each trained model's name (or "checkpoint")."""
    return ["exact"] + (["checkpoint"] if config.checkpoint else list(config.models))


def _train_config(config: ml_collections.ConfigDict, model: str) -> ml_collections.ConfigDict:
    """config.train with total_steps = config.train_steps and, for a model other than config.train's,
    that model's fields from config.model_fields[model]."""
    c = ml_collections.ConfigDict(config.train.to_dict())
    c.total_steps = config.train_steps
    if model != c.model.name:
        if model not in config.model_fields:
            raise ValueError(f"unknown model {model!r}; valid: {', '.join(config.model_fields)}")
        c.model = ml_collections.ConfigDict(config.model_fields[model])
    return c


def validate(config: ml_collections.ConfigDict) -> None:
    """Raise ValueError for a config that cannot run, before anything is compiled."""
    for name in config.samplers:
        lookup(MASKED_SAMPLERS, "sampler", name)
    lookup(SCHEDULES, "schedule", config.schedule)
    if not config.steps or any(int(s) != s or s < 1 for s in config.steps):
        raise ValueError(f"config.steps must be integers >= 1, got {tuple(config.steps)}")
    for name in ("n_seeds", "floor_reps", "block_size", "train_steps"):
        if config[name] < 1:
            raise ValueError(f"config.{name} must be >= 1, got {config[name]}")
    if config.checkpoint:
        if not os.path.exists(os.path.join(config.checkpoint, "config.json")):
            raise ValueError(f"config.checkpoint={config.checkpoint!r} is not a train.py workdir (no config.json)")
        return
    if not config.models:
        raise ValueError("config.models must name at least one model (or set config.checkpoint)")
    for model in config.models:
        loop.validate(_train_config(config, model))


def points(config: ml_collections.ConfigDict) -> list[tuple[str, str, int]]:
    """(predictor, sampler, steps) in order."""
    return [(p, s, t) for p in predictors(config) for s in config.samplers for t in config.steps]


def _trained(config, name: str, workdir: str) -> loop.Trained:
    if name == "checkpoint":
        return loop.load_trained(config.checkpoint)
    train_dir = os.path.join(workdir, f"train_{name}")
    loop.train(_train_config(config, name), train_dir)
    return loop.load_trained(train_dir)


def run(config: ml_collections.ConfigDict, mesh=None, workdir: str | None = None,
        done=frozenset()) -> Iterator[dict]:
    """Yield one row per (predictor, sampler, steps) not in `done` (nothing is trained or loaded when no
    point is left); see the module docstring."""
    if set(points(config)) <= set(done):
        return
    trained = {name: _trained(config, name, workdir) for name in predictors(config)[1:]}
    for name, t in trained.items():
        if t.task.name != "masked_parity":
            raise ValueError(f"{name}: the checkpoint's task is {t.task.name!r}, not 'masked_parity'")
    ns = {t.config.n for t in trained.values()}
    if len(ns) != 1:
        raise ValueError(f"the trained models were trained on different lengths n: {sorted(ns)}")
    (n,) = ns
    key = jax.random.fold_in(jax.random.key(config.seed), n)
    for name in predictors(config):
        if name == "exact":
            predictor, train_steps = discrete.parity_predictor(), 0
        else:
            predictor, train_steps = trained[name].sampling_fn(), trained[name].step
        for sampler in config.samplers:
            for steps in config.steps:
                if (name, sampler, steps) in done:
                    continue
                start = time.perf_counter()
                tokens = jax.block_until_ready(parity_convergence.sample(config, n, predictor, sampler, steps, key,
                                                                         mesh))
                row = {"study": STUDY, "target": f"even_parity_n{n}", "n": n, "predictor": name,
                       "train_steps": train_steps, "sampler": sampler, "schedule": config.schedule,
                       "grid": "uniform", "steps": steps, "nfe": steps, "seconds": time.perf_counter() - start,
                       **parity_convergence.measure(config, n, np.asarray(tokens))}
                if sampler == "ancestral" and name == "exact" and config.schedule == "linear":
                    row["tv_closed_form"] = discrete.parity_tv_ancestral_uniform(n, steps)
                yield row


summarize = parity_convergence.summarize
plot = parity_convergence.plot
table = parity_convergence.table

__all__ = ["STUDY", "plot", "points", "predictors", "run", "summarize", "table", "validate"]
