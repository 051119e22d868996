"""Parity study: can a masked diffusion sampler draw the even-parity distribution D_n in few steps?

For each n, sampler, predictor and number of steps T, `n_seeds` seeds are sampled and compared with D_n
(uniform over the 2^(n-1) even-parity strings of n bits):
- the odd-parity rate with its Clopper-Pearson 95% interval: D_n gives odd strings probability 0, so
  TV >= odd rate for any n (an unbiased lower bound);
- for n <= `exact_tv_max_n`, the exact TV over all 2^n strings with its bootstrap CI and noise floor;
- for the MDLM ancestral sampler with the exact oracle (linear schedule, uniform grid), the closed form
  TV = q/2 (`diffserial.targets.discrete.parity_tv_ancestral_uniform`) beside the measurement.

Predictors: `exact` (the closed-form oracle p(x_0^i | x_t)) and `window` (the same oracle restricted to
the unmasked tokens within `window_radius` of each position: bounded fan-in, "AC0-like"). Theorem 4.5
of the summary says no sampler without remasking or revision reaches D_n in O(1) steps with such
predictors; the constructions `parity_revision` (Thm 4.1) and `parity_remask` (Thm 4.2) bring their own
local predictors and reach D_n exactly in 2 and 3 rounds for every n.
"""

from __future__ import annotations

import os
import time
from typing import Iterator

import jax
import ml_collections
import numpy as np

from diffserial.constructions import parity as parity_constructions
from diffserial.metrics.tv import tv_report
from diffserial.processes.masked import SCHEDULES, make_schedule
from diffserial.registry import lookup
from diffserial.samplers import MASKED_SAMPLERS, constant, masked_grid, masked_sampler, sample_masked
from diffserial.studies import report
from diffserial.targets import discrete

STUDY = "parity_convergence"
CONSTRUCTIONS = {"parity_revision": parity_constructions.parity_revision,
                 "parity_remask": parity_constructions.parity_remask}
PREDICTORS = ("exact", "window")
POSTFIX_KEYS = ("n", "predictor", "sampler", "steps")
POINT_KEYS = ("n", "predictor", "sampler", "steps")  # a row's point (the tuples of points())


def validate(config: ml_collections.ConfigDict) -> None:
    """Raise ValueError for a config that cannot run, before anything is compiled."""
    for name in config.samplers:
        if name not in CONSTRUCTIONS:
            lookup({**MASKED_SAMPLERS, **CONSTRUCTIONS}, "sampler", name)
    lookup(SCHEDULES, "schedule", config.schedule)
    for p in config.predictors:
        if p not in PREDICTORS:
            raise ValueError(f"config.predictors must be among {PREDICTORS}, got {p!r}")
    if not config.steps or any(int(s) != s or s < 1 for s in config.steps):
        raise ValueError(f"config.steps must be integers >= 1, got {tuple(config.steps)}")
    if not config.ns or any(int(n) != n or n < 2 for n in config.ns):
        raise ValueError(f"config.ns must be integers >= 2, got {tuple(config.ns)}")
    for name in ("n_seeds", "floor_reps", "block_size"):
        if config[name] < 1:
            raise ValueError(f"config.{name} must be >= 1, got {config[name]}")
    if config.window_radius < 0:
        raise ValueError(f"config.window_radius must be >= 0, got {config.window_radius}")
    if not 1 <= config.exact_tv_max_n <= 20:
        raise ValueError(f"config.exact_tv_max_n must lie in [1, 20] (2^n cells), got {config.exact_tv_max_n}")


def points(config: ml_collections.ConfigDict) -> list[tuple[int, str, str, int]]:
    """(n, predictor, sampler, steps) in order; constructions run once per n with their own predictor."""
    out = []
    for n in config.ns:
        for name in config.samplers:
            preds = ("construction",) if name in CONSTRUCTIONS else tuple(config.predictors)
            out += [(n, p, name, t) for p in preds for t in config.steps]
    return out


def _predictor(name: str, radius: int):
    if name == "construction":
        return None
    return discrete.parity_predictor() if name == "exact" else discrete.windowed_parity_predictor(radius)


def _even_parity_pmf(n: int) -> np.ndarray:
    """D_n over the 2^n strings indexed by sum_i x_i 2^i."""
    weights = np.array([bin(i).count("1") % 2 == 0 for i in range(2**n)], np.float64)
    return weights / weights.sum()


def _string_index(tokens: np.ndarray) -> np.ndarray:
    """sum_i x_i 2^i per row, or -1 where a MASK (or any non-bit) is left."""
    bits = tokens.astype(np.int64)
    valid = np.all((bits == 0) | (bits == 1), axis=1)
    return np.where(valid, bits @ (1 << np.arange(tokens.shape[1], dtype=np.int64)), -1)


def sample(config, n, predictor, name, steps, key, mesh):
    """Tokens (n_seeds, n) from the masked sampler `name` with `predictor` (x, t) -> logits, or from the
    construction `name` (which brings its own predictor and rule; `predictor` is ignored), run for `steps`."""
    ts = masked_grid(steps)
    common = dict(key=key, n_seeds=config.n_seeds, length=n, mesh=mesh, block_size=config.block_size,
                  pad_to=max(config.steps))
    schedule = make_schedule(config.schedule)  # a construction's rule ignores it
    if name in CONSTRUCTIONS:
        c = CONSTRUCTIONS[name](n)
        return sample_masked(c.predictor, schedule, c.rule, ts, vocab_size=c.vocab_size,
                             init_fn=constant(c.initial_sequence()), **common)
    return sample_masked(predictor, schedule, masked_sampler(name), ts, vocab_size=2, **common)


def measure(config, n: int, tokens: np.ndarray) -> dict:
    """Odd-parity rate with its 95% interval, unfinished strings, and for n <= exact_tv_max_n the exact TV."""
    n_masked = int(np.sum(np.any(tokens > 1, axis=1)))
    odd = discrete.odd_rate_lower_bound(np.where(tokens > 1, 1, tokens))
    row = {"n_seeds": config.n_seeds, "odd_rate": odd.rate, "odd_lo": odd.lower, "odd_hi": odd.upper,
           "n_unfinished": n_masked}
    if n <= config.exact_tv_max_n:
        row.update(tv_report(_string_index(tokens), 2**n, _even_parity_pmf(n), seed=config.seed,
                             reps=config.floor_reps))
    return row


def run(config: ml_collections.ConfigDict, mesh=None, workdir=None, done=frozenset()) -> Iterator[dict]:
    """Yield one result row per (n, predictor, sampler, steps) not in `done`; see the module docstring."""
    key = jax.random.key(config.seed)
    for n, predictor_name, name, steps in points(config):
        if (n, predictor_name, name, steps) in done:
            continue
        start = time.perf_counter()
        predictor = _predictor(predictor_name, config.window_radius)
        tokens = jax.block_until_ready(sample(config, n, predictor, name, steps, jax.random.fold_in(key, n), mesh))
        seconds = time.perf_counter() - start
        row = {"study": STUDY, "target": f"even_parity_n{n}", "n": n, "predictor": predictor_name,
               "sampler": name, "schedule": config.schedule, "grid": "uniform", "steps": steps, "nfe": steps,
               "seconds": seconds, **measure(config, n, np.asarray(tokens))}
        if name == "ancestral" and predictor_name == "exact" and config.schedule == "linear":
            row["tv_closed_form"] = discrete.parity_tv_ancestral_uniform(n, steps)
        yield row


def summarize(rows: list[dict]) -> dict:
    """Per (n, predictor, sampler): the fewest steps reaching odd rate 0 (upper CI < 1%), and the odd
    rate at the largest T; for ancestral+exact, the largest |measured - closed form| TV in CI units."""
    out = {}
    for key, group in sorted(report.group_by(rows, "n", "predictor", "sampler").items()):
        group = sorted(group, key=lambda r: r["steps"])
        solved = [r["steps"] for r in group if r["odd_hi"] < 0.01 and r["n_unfinished"] == 0]
        entry = {"n": key[0], "predictor": key[1], "sampler": key[2],
                 "min_steps_odd_rate_below_1pct": solved[0] if solved else None,
                 "odd_rate_at_max_steps": group[-1]["odd_rate"], "max_steps": group[-1]["steps"]}
        closed = [r for r in group if "tv_closed_form" in r and "tv" in r]
        if closed:
            entry["closed_form_check"] = [
                {"steps": r["steps"], "tv": r["tv"], "tv_lo": r["tv_lo"], "tv_hi": r["tv_hi"],
                 "tv_closed_form": r["tv_closed_form"], "odd_rate": r["odd_rate"],
                 "odd_closed_form": r["tv_closed_form"]} for r in closed]
        out["/".join(map(str, key))] = entry
    return {"study": STUDY, "by_sampler": out}


def plot(rows: list[dict], workdir: str) -> list[str]:
    """parity_odd_rate.png (every n; linear axis, 95% bands) and parity_tv.png (n <= exact_tv_max_n; log-log,
    noise floor dotted, the ancestral closed form wide and pale where the rows carry it, 1/T and 1/T^2
    guides).

    Colour = sampler, line style = predictor (solid exact, dashed window, dotted construction, dash-dot
    a learned predictor)."""
    import matplotlib.pyplot as plt

    groups = sorted(report.group_by(rows, "n", "predictor", "sampler").items())
    ns = sorted({n for (n, _, _), _ in groups})
    samplers = sorted({name for (_, _, name), _ in groups})
    color = {name: plt.cm.tab10(i % 10) for i, name in enumerate(samplers)}
    style = {"exact": "-", "window": "--", "construction": ":"}
    fig, axes = plt.subplots(1, len(ns), figsize=(4.2 * len(ns), 4), squeeze=False, sharey=True)
    for ax, n in zip(axes[0], ns):
        for (gn, pred, name), group in groups:
            if gn != n:
                continue
            group = sorted(group, key=lambda r: r["steps"])
            xs = [r["steps"] for r in group]
            ax.plot(xs, [r["odd_rate"] for r in group], style.get(pred, "-."), color=color[name], marker="o", ms=3,
                    label=f"{name} ({pred})")
            ax.fill_between(xs, [r["odd_lo"] for r in group], [r["odd_hi"] for r in group],
                            color=color[name], alpha=0.1, lw=0)
        ax.set_xscale("log", base=2)
        ax.set_ylim(-0.02, 0.6)
        ax.set_title(f"n = {n}")
        ax.set_xlabel("sampling steps T")
        ax.grid(True, alpha=0.3)
    axes[0][0].set_ylabel("odd-parity rate (<= TV)")
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=5, fontsize=7)
    fig.suptitle("Sampling even parity: odd-parity rate vs steps (solid exact, dashed window predictor, dotted construction)")
    fig.tight_layout(rect=(0, 0.12, 1, 1))
    fig.savefig(os.path.join(workdir, "parity_odd_rate.png"), dpi=110)
    plt.close(fig)
    names = ["parity_odd_rate.png"]
    tv_panels, tv_styles = {}, {}
    for (n, pred, name), group in groups:
        if "tv" in group[0]:
            tv_panels.setdefault(f"n = {n}", {})[f"{name} ({pred})"] = group
            tv_styles[f"{name} ({pred})"] = {"color": color[name], "ls": style.get(pred, "-.")}
    if tv_panels:
        report.plot_loglog(os.path.join(workdir, "parity_tv.png"), tv_panels, reference="tv_closed_form",
                           styles=tv_styles,
                           ylabel=r"TV(samples, $D_n$) over all $2^n$ strings",
                           title="Sampling even parity: exact TV vs sampling steps")
        names.append("parity_tv.png")
    return names


def table(rows: list[dict], summary: dict) -> str:
    """One line per (n, predictor, sampler): odd rate at each T and TV at the largest T."""
    steps = sorted({r["steps"] for r in rows})
    lines = []
    for (n, pred, name), group in sorted(report.group_by(rows, "n", "predictor", "sampler").items()):
        by = {r["steps"]: r for r in group}
        line = {"n": n, "predictor": pred, "sampler": name}
        line.update({f"T={t}": by[t]["odd_rate"] if t in by else None for t in steps})
        line["tv@maxT"] = by[steps[-1]].get("tv")
        lines.append(line)
    cols = ["n", "predictor", "sampler"] + [f"T={t}" for t in steps] + ["tv@maxT"]
    return "odd-parity rate per point (TV at the largest T where exact):\n" + report.format_table(lines, cols)
