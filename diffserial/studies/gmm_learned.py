"""Convergence with a learned score: train the score MLP on a Gaussian mixture, measure its score error,
then TV(sampler output, p_eps) vs steps.

Li & Yan (2024): TV <= c d log^3 T / T + c eps_score sqrt(log T). With the exact score (the "exact"
model) TV keeps falling with T; with a learned score it must flatten at a floor set by eps_score, and
that floor must shrink when the model trains longer. For each length N in config.train_steps the study
trains `configs/gmm_train.py`'s model for N steps into WORKDIR/train_N (resuming if already there), or
uses the single model of config.checkpoint (a train.py workdir) instead. For each model it reports

    eps_score^2 = (1/K) sum_k E_{p_{t_k}} ||s_theta(x, t_k) - grad log p_{t_k}(x)||^2   (`metrics.score_error`)

on the uniform grid of K = config.eps_score_times points in [eps, 1], and TV per (sampler, steps) measured
exactly as in `gmm_convergence` (same mixture, cells, exact p_1 prior, noise floor).
"""

from __future__ import annotations

import os
from typing import Iterator

import jax
import ml_collections
import numpy as np

from diffserial.metrics.score_error import score_error
from diffserial.processes.gaussian import PROCESSES
from diffserial.samplers import continuous_grid, continuous_sampler
from diffserial.studies import gmm_convergence, report
from diffserial.targets import gmm as gmm_lib
from diffserial.training import loop

STUDY = "gmm_learned"
POSTFIX_KEYS = ("model", "sampler", "steps")
POINT_KEYS = ("model", "sampler", "steps")  # a row's point (the tuples of points())


def models(config: ml_collections.ConfigDict) -> list[str]:
    """Model names in order: "exact", then "train_N" per training length, or "checkpoint"."""
    trained = ["checkpoint"] if config.checkpoint else [f"train_{n}" for n in config.train_steps]
    return ["exact"] + trained


def _train_config(config: ml_collections.ConfigDict, steps: int) -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict(config.train.to_dict())
    c.total_steps = int(steps)
    return c


def validate(config: ml_collections.ConfigDict) -> None:
    """Raise ValueError for a config that cannot run, before anything is compiled."""
    if config.train.task != "gmm_score":
        raise ValueError(f"config.train.task must be 'gmm_score', got {config.train.task!r}")
    for name in config.samplers:
        continuous_sampler(name)
    for name in ("n_seeds", "max_cells", "floor_reps", "block_size", "eps_score_times", "eps_score_samples"):
        if config[name] < 1:
            raise ValueError(f"config.{name} must be >= 1, got {config[name]}")
    if not config.steps or any(int(s) != s or s < 1 for s in config.steps):
        raise ValueError(f"config.steps must be integers >= 1, got {tuple(config.steps)}")
    if not 0.0 < config.eps < 1.0:
        raise ValueError(f"config.eps (early-stop time) must lie in (0, 1), got {config.eps}")
    if config.prior not in gmm_convergence.PRIORS:
        raise ValueError(f"config.prior must be one of {gmm_convergence.PRIORS}, got {config.prior!r}")
    if config.checkpoint:
        if not os.path.exists(os.path.join(config.checkpoint, "config.json")):
            raise ValueError(f"config.checkpoint={config.checkpoint!r} is not a train.py workdir (no config.json)")
    else:
        if not config.train_steps:
            raise ValueError("config.train_steps must list at least one training length (or set config.checkpoint)")
        for n in config.train_steps:
            loop.validate(_train_config(config, n))


def points(config: ml_collections.ConfigDict) -> list[tuple[str, str, int]]:
    """(model, sampler, steps) in order."""
    return [(m, s, t) for m in models(config) for s in config.samplers for t in config.steps]


def _load(config, model: str, workdir: str):
    """(training config, score_fn, trained steps) of `model`; trains it first when needed."""
    if model == "checkpoint":
        trained = loop.load_trained(config.checkpoint)
    else:
        steps = int(model.split("_")[1])
        train_dir = os.path.join(workdir, model)
        loop.train(_train_config(config, steps), train_dir)
        trained = loop.load_trained(train_dir)
    return trained.config, trained.sampling_fn(), trained.step


def run(config: ml_collections.ConfigDict, mesh=None, workdir: str | None = None,
        done=frozenset()) -> Iterator[dict]:
    """Yield one row per (model, sampler, steps) not in `done` (a model none of whose points is left is
    neither trained nor loaded); see the module docstring."""
    train = config.train
    if config.checkpoint:
        train = loop.load_trained(config.checkpoint).config
    process = PROCESSES[train.process]()
    mixture = gmm_lib.make_mixture(train.d, train.n_components, train.seed)
    cells, pmf = gmm_convergence.setup(mixture, process, config)
    exact = gmm_lib.score_fn(mixture, process)
    key = jax.random.key(config.seed)
    ts = continuous_grid("uniform", process, config.eps_score_times - 1, config.eps)
    sample_at = jax.tree_util.Partial(gmm_lib.sample_at, mixture, process)
    for model in models(config):
        todo = [(name, steps) for name in config.samplers for steps in config.steps
                if (model, name, steps) not in done]
        if not todo:
            continue
        score, trained_steps = (exact, 0) if model == "exact" else _load(config, model, workdir)[1:]
        err = score_error(score, exact, sample_at, ts, jax.random.fold_in(key, 1),
                          config.eps_score_samples)
        for name, steps in todo:
            row = gmm_convergence.measure(score, mixture, process, cells, pmf, name, steps,
                                          jax.random.fold_in(key, 2), config, mesh)
            yield {"study": STUDY, "target": f"gmm{train.n_components}_d{train.d}", "model": model,
                   "train_steps": trained_steps, "eps_score_measured": err["eps_score"], **row}


def _groups(rows):
    """{(model, sampler): rows}, ordered by training length (exact first), then sampler."""
    groups = report.group_by(rows, "model", "sampler")
    return dict(sorted(groups.items(), key=lambda kv: (kv[1][0]["train_steps"], kv[0][0] != "exact", kv[0][1])))


def summarize(rows: list[dict]) -> dict:
    """Per (model, sampler): eps_score, TV at the largest T, the smallest TV over T, and the TV floor;
    per sampler: whether TV at the largest T falls as training gets longer."""
    entries = {}
    for (model, name), group in _groups(rows).items():
        group = sorted(group, key=lambda r: r["steps"])
        entries[f"{model}/{name}"] = {
            "model": model, "sampler": name, "train_steps": group[0]["train_steps"],
            "eps_score": group[0]["eps_score_measured"], "tv_at_max_steps": group[-1]["tv"],
            "tv_lo_at_max_steps": group[-1]["tv_lo"], "tv_hi_at_max_steps": group[-1]["tv_hi"],
            "min_tv": min(r["tv"] for r in group), "tv_floor": group[-1]["tv_floor"],
            "max_steps": group[-1]["steps"]}
    trend = {}
    for name in sorted({r["sampler"] for r in rows}):
        trained = sorted((e for e in entries.values() if e["sampler"] == name and e["model"] != "exact"),
                         key=lambda e: e["train_steps"])
        tvs = [e["tv_at_max_steps"] for e in trained]
        trend[name] = {"train_steps": [e["train_steps"] for e in trained], "tv_at_max_steps": tvs,
                       "eps_score": [e["eps_score"] for e in trained],
                       "floor_shrinks_with_training": bool(len(tvs) > 1 and all(
                           b < a for a, b in zip(tvs, tvs[1:])))}
    return {"study": STUDY, "by_model": entries, "trend": trend}


def plot(rows: list[dict], workdir: str) -> list[str]:
    """learned_convergence.png: TV vs steps (log-log), one panel per sampler, one curve per model (the
    exact score's curve is the floor a learned score can reach), the noise floor dotted, slope guides."""
    panels = {}
    for (model, name), group in _groups(rows).items():
        label = f"{model} (eps_score {group[0]['eps_score_measured']:.3g})"
        panels.setdefault(name, {})[label] = group
    report.plot_loglog(os.path.join(workdir, "learned_convergence.png"), panels, ylabel=gmm_convergence.TV_LABEL,
                       title="Learned vs exact score: TV to the target vs sampling steps")
    return ["learned_convergence.png"]


def table(rows: list[dict], summary: dict) -> str:
    """One line per (model, sampler): eps_score and TV at each step count."""
    steps = sorted({r["steps"] for r in rows})
    lines = []
    for (model, name), group in _groups(rows).items():
        by = {r["steps"]: r for r in group}
        line = {"model": model, "sampler": name, "eps_score": group[0]["eps_score_measured"],
                "floor": group[0]["tv_floor"]}
        line.update({f"T={t}": by[t]["tv"] if t in by else None for t in steps})
        lines.append(line)
    cols = ["model", "sampler", "eps_score", "floor"] + [f"T={t}" for t in steps]
    trend = "; ".join(f"{k}: {'yes' if v['floor_shrinks_with_training'] else 'no'}"
                      for k, v in summary["trend"].items())
    return ("TV per point (floor = noise floor):\n" + report.format_table(lines, cols)
            + f"\nTV at the largest T falls with longer training: {trend}")


__all__ = ["STUDY", "models", "plot", "points", "run", "summarize", "table", "validate"]
