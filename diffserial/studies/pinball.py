"""Pinball study: does the SDE dx = (x/2 + f(x)) dt + dW with a compiled counter machine f halt with the
interpreter's answer, and how large must the cell side L be as the run length S grows?

Two sweeps, every point = (program, input word, L) with its seeds (`leak_seeds` per leak word,
`program_seeds`) through `samplers.run_chain`, then one seed's trajectory for the picture:

    leak      program `leak_program` on the words `leak_words` (run lengths S from the interpreter),
              every L in `leak_cells`: P(leak) = 1 - P(final configuration == interpreter's) against
              L^2 (weighted least squares of ln P(leak), weights n p / (1 - p), on points with
              0 < P(leak) <= `fit_max_leak` and at least `fit_min_events` leaks), and per S the smallest L
              with P(correct) >= `target_correct`, beside sqrt(ln(N S L)) (the essay's claim L = O(that));
    programs  every program in `programs` on `words_per_program` random words (up to `max_word_len`
              letters), at every L in `program_cells`.

P(correct) = P(the ball rests at a HALT instruction with the interpreter's accept/reject answer).
Each point runs `steps_needed` SDE steps (1.5 x the walk's length in cells x L / speed / h); the
compiled program is shared by every word and L of a machine (`pad_to`, tape padded with $).
"""

from __future__ import annotations

import math
import os
import time
from typing import Iterator

import jax
import matplotlib
import ml_collections
import numpy as np

from diffserial.metrics.intervals import wilson
from diffserial.pinball import counter_machine as cm
from diffserial.pinball import force_field as ff
from diffserial.pinball.programs import PROGRAMS, random_words
from diffserial.registry import lookup
from diffserial.studies import report

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

STUDY = "pinball"
POSTFIX_KEYS = ("program", "word", "cell")
POINT_KEYS = ("sweep", "program", "word", "cell")  # a row's point (the tuples of points())


def _params(config, cell: float) -> ff.PinballParams:
    return ff.PinballParams(cell=float(cell), speed=config.speed, kappa=config.kappa, blend=config.blend)


def validate(config: ml_collections.ConfigDict) -> None:
    """Raise ValueError for a config that cannot run, before anything is compiled."""
    for name in tuple(config.programs) + (config.leak_program,):
        lookup(PROGRAMS, "program", name)
    if not config.leak_words or not config.leak_cells or not config.program_cells:
        raise ValueError("config.leak_words, config.leak_cells and config.program_cells must be non-empty")
    for cell in tuple(config.leak_cells) + tuple(config.program_cells):
        _params(config, cell).check()
    machine = PROGRAMS[config.leak_program]()
    for word in config.leak_words:
        if not cm.run(machine, word).halted:
            raise ValueError(f"{config.leak_program} does not halt on {word!r} within the interpreter's step limit")
    if len(config.leak_seeds) != len(config.leak_words):
        raise ValueError(f"config.leak_seeds needs one seed count per leak word ({len(config.leak_words)}), "
                         f"got {tuple(config.leak_seeds)}")
    for count in config.leak_seeds:
        if int(count) != count or count < 1:
            raise ValueError(f"config.leak_seeds must be integers >= 1, got {tuple(config.leak_seeds)}")
    for name in ("program_seeds", "block_size", "words_per_program", "fit_min_events", "trajectory_points"):
        if int(config[name]) != config[name] or config[name] < 1:
            raise ValueError(f"config.{name} must be an integer >= 1, got {config[name]}")
    if config.max_word_len < 0:
        raise ValueError(f"config.max_word_len must be >= 0, got {config.max_word_len}")
    if not (config.step_size > 0 and math.isfinite(config.step_size)):
        raise ValueError(f"config.step_size must be finite and > 0, got {config.step_size}")
    for name in ("target_correct", "fit_max_leak"):
        if not 0.0 < config[name] < 1.0:
            raise ValueError(f"config.{name} must lie in (0, 1), got {config[name]}")


def _program_words(config) -> list[tuple[str, str]]:
    rng = np.random.default_rng(config.seed)
    return [(name, w) for name in config.programs
            for w in dict.fromkeys(random_words(rng, config.words_per_program, config.max_word_len))]


def points(config: ml_collections.ConfigDict) -> list[tuple[str, str, str, float]]:
    """(sweep, program, word, L) in run order."""
    leak = [("leak", config.leak_program, w, float(c)) for w in config.leak_words for c in config.leak_cells]
    progs = [("programs", p, w, float(c)) for p, w in _program_words(config) for c in config.program_cells]
    picture = [("trajectory", config.leak_program, config.leak_words[0], float(max(config.leak_cells)))]
    return leak + progs + picture


def run(config: ml_collections.ConfigDict, mesh=None, workdir: str | None = None,
        done=frozenset()) -> Iterator[dict]:
    """Yield one result row per point not in `done` (see the module docstring); the last row is one seed's
    trajectory. `workdir` is unused (the study keeps no by-products). Every point's SDE is padded to the
    longest of its program's points, done or not, so a point's result does not depend on `done`."""
    sde = ff.PinballSDE(step_size=config.step_size, noise=1.0)
    pts = [p for p in points(config) if p[0] != "trajectory"]
    tape_length = {p: max(len(w) for _, q, w, _ in pts if q == p) + 2 for _, p, _, _ in pts}
    traces = {(p, w): cm.run(PROGRAMS[p](), w) for _, p, w, _ in pts}
    pad = {}
    for _, p, w, c in pts:
        compiled = ff.compile_machine(PROGRAMS[p](), w, _params(config, c), tape_length[p])
        pad[p] = max(pad.get(p, 0), ff.steps_needed(compiled, traces[p, w].trace, sde))
    key = jax.random.key(config.seed)
    for index, (sweep, name, word, cell) in enumerate(pts):
        if (sweep, name, word, cell) in done:
            continue
        machine = PROGRAMS[name]()
        result = traces[name, word]
        compiled = ff.compile_machine(machine, word, _params(config, cell), tape_length[name])
        n_steps = ff.steps_needed(compiled, result.trace, sde)
        n = (config.leak_seeds[list(config.leak_words).index(word)] if sweep == "leak" else config.program_seeds)
        start = time.perf_counter()
        x, _ = ff.simulate(compiled, n_steps, key=jax.random.fold_in(key, index), n_seeds=n,
                           sde=sde, mesh=mesh, block_size=config.block_size, pad_to=pad[name])
        x = np.asarray(jax.block_until_ready(x))
        seconds = time.perf_counter() - start
        dec = ff.decode(compiled, x)
        exact = (dec.halted & (dec.pc == result.final.pc) & (dec.head == result.final.head)
                 & np.all(dec.registers == np.asarray(result.final.registers), axis=1))
        correct = dec.halted & (dec.accepted == bool(result.accepted))
        leaks, rights = int(n - exact.sum()), int(correct.sum())
        yield {
            "study": STUDY, "sweep": sweep, "program": name, "word": word, "accepted": bool(result.accepted),
            "machine_steps": result.steps, "n_instructions": len(machine.instructions),
            "n_lanes": len(compiled.lanes), "dim": compiled.field.dim, "cell": cell, "sde_steps": n_steps,
            "step_size": config.step_size, "speed": config.speed, "kappa": config.kappa, "blend": config.blend,
            "n_seeds": n, "p_correct": rights / n, "p_correct_ci": list(wilson(rights, n)),
            "p_leak": leaks / n, "p_leak_ci": list(wilson(leaks, n)), "p_halted": float(dec.halted.mean()),
            "n_nonfinite": int(np.sum(~np.all(np.isfinite(x), axis=1))), "seconds": seconds,
            "target_correct": config.target_correct, "fit_max_leak": config.fit_max_leak,
            "fit_min_events": config.fit_min_events,
        }
    picture = points(config)[-1]
    if picture not in done:
        yield trajectory(config, picture[2], picture[3], config.trajectory_points)


def fit_leak_slope(rows: list[dict], max_leak: float, min_events: int) -> dict:
    """Weighted least squares ln P(leak) = a + slope L^2 (weights n p / (1 - p), the inverse delta-method
    variance of ln p), over rows with min_events <= leaks and P(leak) <= max_leak; slope standard error
    from the weighted normal equations (known variances)."""
    used = [r for r in rows if r["p_leak"] * r["n_seeds"] >= min_events and r["p_leak"] <= max_leak]
    out = {"cells": [r["cell"] for r in used], "slope": None, "slope_se": None, "intercept": None}
    if len({r["cell"] for r in used}) < 2:
        return out
    x = np.array([r["cell"] ** 2 for r in used])
    p = np.array([r["p_leak"] for r in used])
    w = np.array([r["n_seeds"] for r in used]) * p / (1 - p)
    design = np.stack([np.ones_like(x), x], axis=1)
    cov = np.linalg.inv(design.T @ (w[:, None] * design))
    coef = cov @ design.T @ (w * np.log(p))
    out.update(slope=float(coef[1]), slope_se=float(math.sqrt(cov[1, 1])), intercept=float(coef[0]))
    return out


def summarize(rows: list[dict]) -> dict:
    """Per leak word: the ln P(leak) vs L^2 fit, the smallest L with P(correct) >= target and sqrt(ln(N S L))."""
    leak = [r for r in rows if r["sweep"] == "leak"]
    cfg = leak[0]
    fits = {}
    for (word,), group in sorted(report.group_by(leak, "word").items(), key=lambda kv: kv[1][0]["machine_steps"]):
        group = sorted(group, key=lambda r: r["cell"])
        good = [r["cell"] for r in group if r["p_correct"] >= cfg["target_correct"]]
        l_min = good[0] if good else None
        n, s = group[0]["n_instructions"], group[0]["machine_steps"]
        fits[word] = {
            "program": group[0]["program"], "machine_steps": s, "n_instructions": n,
            **fit_leak_slope(group, cfg["fit_max_leak"], cfg["fit_min_events"]),
            "smallest_cell_correct": l_min,
            "sqrt_ln_nsl": math.sqrt(math.log(n * s * l_min)) if l_min else None,
        }
    programs = {}
    measured = [r for r in rows if r["sweep"] != "trajectory"]
    for (name, cell), group in sorted(report.group_by(measured, "program", "cell").items()):
        programs[f"{name}/L={cell:g}"] = {
            "p_correct_mean": float(np.mean([r["p_correct"] for r in group])),
            "p_correct_min": float(np.min([r["p_correct"] for r in group])),
            "max_machine_steps": max(r["machine_steps"] for r in group), "n_words": len(group)}
    return {"study": STUDY, "target_correct": cfg["target_correct"],
            "predicted_slope_kramers": -cfg["kappa"] / math.pi**2, "leak_fits": fits, "programs": programs}


def plot(rows: list[dict], workdir: str) -> list[str]:
    """pinball_leak.png (ln P(leak) vs L^2, P(correct) vs L, per S) and pinball_trajectory.png."""
    leak = [r for r in rows if r["sweep"] == "leak"]
    fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(11, 4))
    for (word,), group in sorted(report.group_by(leak, "word").items(), key=lambda kv: kv[1][0]["machine_steps"]):
        group = sorted(group, key=lambda r: r["cell"])
        label = f"{group[0]['program']} {word!r} (S = {group[0]['machine_steps']})"
        xs = [r["cell"] ** 2 for r in group]
        ys = [max(r["p_leak"], 0.5 / r["n_seeds"]) for r in group]
        lo = [max(r["p_leak_ci"][0], 0.5 / r["n_seeds"]) for r in group]
        hi = [r["p_leak_ci"][1] for r in group]
        (line,) = ax0.plot(xs, ys, marker="o", label=label)
        ax0.fill_between(xs, lo, hi, color=line.get_color(), alpha=0.15, lw=0)
        fit = fit_leak_slope(group, group[0]["fit_max_leak"], group[0]["fit_min_events"])
        if fit["slope"] is not None:
            fx = np.array([min(fit["cells"]), max(fit["cells"])]) ** 2
            ax0.plot(fx, np.exp(fit["intercept"] + fit["slope"] * fx), ls="--", color=line.get_color(), lw=1)
        ax1.plot([r["cell"] for r in group], [r["p_correct"] for r in group], marker="o", label=label)
    ax0.set_yscale("log")
    ax0.set_xlabel(r"$L^2$ (cell side squared)")
    ax0.set_ylabel("P(leak)  (0 plotted at 1/(2 n))")
    ax0.legend(fontsize=7)
    ax0.grid(True, alpha=0.3)
    ax1.axhline(leak[0]["target_correct"], color="k", ls=":", lw=1)
    ax1.set_xlabel("cell side L")
    ax1.set_ylabel("P(correct)")
    ax1.grid(True, alpha=0.3)
    fig.tight_layout()
    fig.savefig(os.path.join(workdir, "pinball_leak.png"), dpi=120)
    plt.close(fig)
    names = ["pinball_leak.png"]
    for r in rows:
        if r["sweep"] == "trajectory":
            plot_trajectory(r, os.path.join(workdir, "pinball_trajectory.png"))
            names.append("pinball_trajectory.png")
    return names


def trajectory(config, word: str, cell: float, n_points: int) -> dict:
    """One seed's path (n_points snapshots, in cell units) for `leak_program` on `word` at cell side `cell`."""
    sde = ff.PinballSDE(step_size=config.step_size, noise=1.0)
    result = cm.run(PROGRAMS[config.leak_program](), word)
    compiled = ff.compile_machine(PROGRAMS[config.leak_program](), word, _params(config, cell))
    n_steps = ff.steps_needed(compiled, result.trace, sde)
    every = max(1, n_steps // n_points)
    snaps = tuple(range(every, n_steps + 1, every))
    _, s = ff.simulate(compiled, n_steps, key=jax.random.key(config.seed), n_seeds=1, sde=sde, block_size=1,
                       snapshot_steps=snaps)
    return {"study": STUDY, "sweep": "trajectory", "program": config.leak_program, "word": word, "cell": cell,
            "k": compiled.machine.n_registers, "sde_steps": n_steps, "every": every,
            "y": np.round(np.asarray(s[0], np.float64) / cell, 4).tolist()}


def plot_trajectory(traj: dict, path: str) -> None:
    """Two 2-D projections of one path: (pc + phase / 3, lane) and (head, r_0), coloured by time."""
    y, k = np.asarray(traj["y"]), traj["k"]
    t = np.arange(len(y))
    fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(11, 4.5))
    ax0.plot(y[:, k + 1] + y[:, k + 3] / 3, y[:, k + 2], color="0.8", lw=0.5, zorder=0)
    sc = ax0.scatter(y[:, k + 1] + y[:, k + 3] / 3, y[:, k + 2], c=t, s=3, cmap="viridis")
    ax0.set_xlabel("pc + phase / 3  (cells)")
    ax0.set_ylabel("lane (cells)")
    ax1.plot(y[:, k], y[:, 0], color="0.8", lw=0.5, zorder=0)
    ax1.scatter(y[:, k], y[:, 0], c=t, s=3, cmap="viridis")
    ax1.set_xlabel("head (cells)")
    ax1.set_ylabel("r_0 (cells)")
    for ax in (ax0, ax1):
        ax.grid(True, alpha=0.3)
    fig.colorbar(sc, ax=[ax0, ax1], label="snapshot")
    fig.suptitle(f"one seed: {traj['program']} on {traj['word']!r}, L = {traj['cell']:g}")
    fig.savefig(path, dpi=120)
    plt.close(fig)


def table(rows: list[dict], summary: dict) -> str:
    """P(correct) / P(leak) per point, then the fits."""
    rows = [r for r in rows if r["sweep"] != "trajectory"]
    cols = ["sweep", "program", "word", "machine_steps", "cell", "sde_steps", "p_correct", "p_leak", "p_halted"]
    lines = [report.format_table(rows, cols), "", "ln P(leak) vs L^2 and the smallest L with P(correct) >= "
             f"{summary['target_correct']} (Kramers: slope ~ -kappa/pi^2 = {summary['predicted_slope_kramers']:.3g}):"]
    fit_rows = [{"word": w, **f} for w, f in summary["leak_fits"].items()]
    lines.append(report.format_table(fit_rows, ["word", "machine_steps", "slope", "slope_se", "cells",
                                                "smallest_cell_correct", "sqrt_ln_nsl"]))
    return "\n".join(lines)
