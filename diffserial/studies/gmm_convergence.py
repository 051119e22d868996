"""Convergence study: TV(sampler output, p_eps) vs number of steps, for exact-score Gaussian mixtures.

For each dimension d a diagonal Gaussian mixture is built deterministically from the seed; samples
are quantized into axis-aligned grid cells whose exact probabilities under p_eps (the law the
sampler targets when it stops at t = eps) come from normal CDFs. With the default exact prior
(x_1 ~ p_1 drawn from the closed form, not N(0, I)), the measured TV is the time-discretization
error alone, plus the finite-sample noise floor reported beside it. Li & Yan (2024) bound it by
c d log^3 T / T (+ c eps_score sqrt(log T) when the score has error eps_score).
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

from diffserial.metrics.slopes import fit_loglog_slope
from diffserial.metrics.tv import tv_report
from diffserial.processes.gaussian import PROCESSES, LinearGaussianSDE
from diffserial.registry import lookup
from diffserial.samplers import CONTINUOUS_GRIDS, continuous_grid, continuous_sampler, sample_continuous
from diffserial.studies import report
from diffserial.targets import gmm as gmm_lib
from diffserial.targets.perturbed import perturbed_score_fn
from diffserial.targets.quantize import GridCells
from diffserial.validation import check_variance_preserving

STUDY = "gmm_convergence"
TV_LABEL = r"TV(samples, $p_\varepsilon$) over grid cells"
POINT_KEYS = ("d", "sampler", "steps")  # a row's point (the tuples of points())
PRIORS = ("exact", "process")


def make_cells(mixture: gmm_lib.GaussianMixture, max_cells: int) -> GridCells:
    """Uniform grid over [min(mu - 3 sd), max(mu + 3 sd)] with bins_per_dim = max(2, floor(max_cells^(1/d)))."""
    d = mixture.dim
    sd = np.sqrt(np.diagonal(np.asarray(mixture.covs), axis1=1, axis2=2))
    mu = np.asarray(mixture.means)
    bins = max(2, int(math.floor(max_cells ** (1.0 / d) + 1e-9)))
    return GridCells.uniform(d, float((mu - 3 * sd).min()), float((mu + 3 * sd).max()), bins)


def _exact_prior(mixture, process, t_start, key):
    """x at the first grid time drawn from the closed-form p_t (removes the prior-mismatch error)."""
    return gmm_lib.sample_at(mixture, process, t_start, key, 1)[0]


def validate(config: ml_collections.ConfigDict) -> None:
    """Raise ValueError for a config that cannot run, before anything is compiled."""
    lookup(PROCESSES, "process", config.process)
    for name in config.samplers:
        continuous_sampler(name)
    lookup(CONTINUOUS_GRIDS, "grid", config.grid)
    if not config.steps or any(int(s) != s or s < 1 for s in config.steps):
        raise ValueError(f"config.steps must be integers >= 1, got {tuple(config.steps)}")
    if not 0.0 < config.eps < 1.0:
        raise ValueError(f"config.eps (early-stop time) must lie in (0, 1), got {config.eps}")
    if not config.dims or any(int(d) != d or d < 1 for d in config.dims):
        raise ValueError(f"config.dims must be integers >= 1, got {tuple(config.dims)}")
    for name in ("n_seeds", "n_components", "max_cells", "floor_reps", "block_size"):
        if config[name] < 1:
            raise ValueError(f"config.{name} must be >= 1, got {config[name]}")
    if config.prior not in PRIORS:
        raise ValueError(f"config.prior must be one of {PRIORS}, got {config.prior!r}")
    if not (config.eps_score >= 0.0 and math.isfinite(config.eps_score)):
        raise ValueError(f"config.eps_score must be finite and >= 0, got {config.eps_score}")
    if config.prior == "exact":
        return
    for name in config.samplers:
        rule = continuous_sampler(name)
        check_variance_preserving(rule, PROCESSES[config.process](), name, config.process)


def points(config: ml_collections.ConfigDict) -> list[tuple[int, str, int]]:
    """The (d, sampler, steps) points the study measures, in order."""
    return [(d, s, t) for d in config.dims for s in config.samplers for t in config.steps]


def setup(mixture: gmm_lib.GaussianMixture, process: LinearGaussianSDE, config) -> tuple[GridCells, np.ndarray]:
    """The grid cells of the study and their exact probabilities under p_eps."""
    cells = make_cells(mixture, config.max_cells)
    return cells, cells.pmf(gmm_lib.noised(mixture, process, config.eps))


def measure(score, mixture, process, cells, pmf, name: str, steps: int, key, config, mesh=None) -> dict:
    """Sample config.n_seeds seeds with sampler `name` in `steps` steps from `score` (prior per
    config.prior) and return the row fields: TV report, NFE, non-finite count, seconds."""
    rule = continuous_sampler(name)
    ts = continuous_grid(config.grid, process, steps, config.eps)
    init = (jax.tree_util.Partial(_exact_prior, mixture, process, ts[0]) if config.prior == "exact" else None)
    start = time.perf_counter()
    x = sample_continuous(score, process, rule, ts, key=key, n_seeds=config.n_seeds, shape=(mixture.dim,),
                      init_fn=init, mesh=mesh, block_size=config.block_size, pad_to=max(config.steps))
    x = jax.block_until_ready(x)
    seconds = time.perf_counter() - start
    tv = tv_report(np.asarray(cells.cell_index(x)), cells.n_cells, pmf, seed=config.seed, reps=config.floor_reps)
    return {"process": process.name, "sampler": name, "grid": config.grid, "steps": steps,
            "nfe": steps * rule.nfe_per_step, "d": mixture.dim, "eps": config.eps, "prior": config.prior,
            "n_cells": cells.n_cells, "n_nonfinite": int(jnp.sum(~jnp.all(jnp.isfinite(x), axis=1))),
            "seconds": seconds, **tv}


def run(config: ml_collections.ConfigDict, mesh=None, workdir=None, done=frozenset()) -> Iterator[dict]:
    """Yield one result row per (d, sampler, steps) not in `done`; see the module docstring."""
    process: LinearGaussianSDE = PROCESSES[config.process]()
    key = jax.random.key(config.seed)
    setups = {}
    for d, name, steps in points(config):
        if (d, name, steps) in done:
            continue
        if d not in setups:
            mixture = gmm_lib.make_mixture(d, config.n_components, config.seed)
            score = gmm_lib.score_fn(mixture, process)
            if config.eps_score > 0:
                score = perturbed_score_fn(score, config.eps_score, d, seed=config.seed)
            setups[d] = (mixture, *setup(mixture, process, config), score)
        mixture, cells, pmf, score = setups[d]
        row = measure(score, mixture, process, cells, pmf, name, steps, jax.random.fold_in(key, d), config, mesh)
        yield {"study": STUDY, "target": f"gmm{config.n_components}_d{d}", "eps_score": config.eps_score, **row}


def summarize(rows: list[dict]) -> dict:
    """Fitted log-log slope of TV vs steps per (sampler, d), with the points it used."""
    fits = {}
    for (name, d), group in sorted(_groups(rows).items()):
        group = sorted(group, key=lambda r: r["steps"])
        fit = fit_loglog_slope([r["steps"] for r in group], [r["tv"] for r in group],
                               [r["tv_lo"] for r in group], [r["tv_floor"] for r in group])
        fits[f"{name}/d{d}"] = {
            "sampler": name, "d": d, "slope": fit.slope, "intercept": fit.intercept,
            "used_steps": list(fit.used_steps), "n_used": fit.n_used, "rule": fit.rule,
            "tv_at_max_steps": group[-1]["tv"], "tv_floor": group[-1]["tv_floor"],
        }
    return {"study": STUDY, "fits": fits}


def _groups(rows):
    out = {}
    for r in rows:
        out.setdefault((r["sampler"], r["d"]), []).append(r)
    return out


POSTFIX_KEYS = ("d", "sampler", "steps")


def plot(rows: list[dict], workdir: str) -> list[str]:
    """convergence.png: TV vs steps (log-log), one panel per d, one curve per sampler, the noise floor
    dotted and 1/T, 1/T^2 slope guides (the claim is a slope)."""
    panels = {}
    for (name, d), group in sorted(_groups(rows).items(), key=lambda kv: (kv[0][1], kv[0][0])):
        panels.setdefault(f"d = {d}", {})[name] = group
    report.plot_loglog(os.path.join(workdir, "convergence.png"), panels, ylabel=TV_LABEL,
                       title="Exact-score Gaussian mixture: TV to the target vs sampling steps")
    return ["convergence.png"]


def table(rows: list[dict], summary: dict) -> str:
    """One line per (d, sampler): TV at each step count, the fitted slope and the points it used."""
    steps = sorted({r["steps"] for r in rows})
    lines = []
    for (name, d), group in sorted(_groups(rows).items(), key=lambda kv: (kv[0][1], kv[0][0])):
        by_steps = {r["steps"]: r for r in group}
        fit = summary["fits"][f"{name}/d{d}"]
        line = {"d": d, "sampler": name, "floor": group[0]["tv_floor"]}
        line.update({f"T={t}": by_steps[t]["tv"] if t in by_steps else None for t in steps})
        line["slope"] = fit["slope"]
        line["fit_steps"] = ",".join(map(str, fit["used_steps"])) or "-"
        line["nonfinite"] = sum(r["n_nonfinite"] for r in group)
        lines.append(line)
    columns = ["d", "sampler", "floor"] + [f"T={t}" for t in steps] + ["slope", "fit_steps", "nonfinite"]
    return "TV per point (floor = mean noise floor):\n" + report.format_table(lines, columns)
