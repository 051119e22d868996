"""Study outputs: results.jsonl (one object per measured point), summary.json, plots, a text table.

Only studies and scripts write files; in multi-process runs only process 0 should call these.
"""

from __future__ import annotations

import json
import math
import os
from typing import Iterable, Mapping, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def append_jsonl(path: str, row: Mapping) -> None:
    """Append one JSON object as a line (the file is a running record: it survives interruption)."""
    with open(path, "a") as f:
        f.write(json.dumps(row, sort_keys=True, allow_nan=False) + "\n")


def read_jsonl(path: str) -> list[dict]:
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def resume_jsonl(path: str) -> list[dict]:
    """The rows of a file written by `append_jsonl`, read to append more ([] if there is no file).

    A final line cut short (no newline and not JSON: an append interrupted by a kill) is cut off the file; a
    final row that lacks only its newline gets it, so the next append starts a line of its own. Any other
    line that is not a JSON object raises ValueError.
    """
    if not os.path.exists(path):
        return []
    with open(path, "rb") as f:
        data = f.read()
    complete, _, tail = data.rpartition(b"\n")
    lines = complete.split(b"\n")
    rows = [_json_object(line, path, number) for number, line in enumerate(lines, start=1) if line.strip()]
    if tail.strip():
        try:
            rows.append(_json_object(tail, path, data.count(b"\n") + 1))
        except ValueError:
            with open(path, "r+b") as f:
                f.truncate(len(data) - len(tail))
        else:
            with open(path, "ab") as f:
                f.write(b"\n")
    return rows


def _json_object(line: bytes, path: str, number: int) -> dict:
    try:
        row = json.loads(line)
    except ValueError as error:
        raise ValueError(f"{path}, line {number}, is not JSON ({error}): {line[:80]!r}") from None
    if not isinstance(row, dict):
        raise ValueError(f"{path}, line {number}, is not a JSON object: {line[:80]!r}")
    return row


def write_json(path: str, obj) -> None:
    with open(path, "w") as f:
        json.dump(obj, f, indent=2, sort_keys=True, allow_nan=False)
        f.write("\n")


def format_table(rows: Sequence[Mapping], columns: Sequence[str]) -> str:
    """Fixed-width text table; floats in 4 significant digits."""

    def cell(v):
        if isinstance(v, float):
            return f"{v:.4g}"
        return "-" if v is None else str(v)

    body = [[cell(r.get(c)) for c in columns] for r in rows]
    widths = [max(len(c), *(len(b[i]) for b in body)) if body else len(c) for i, c in enumerate(columns)]
    line = lambda vals: "  ".join(v.rjust(w) for v, w in zip(vals, widths))
    return "\n".join([line(columns), line(["-" * w for w in widths])] + [line(b) for b in body])


GUIDE_POWERS = (1, 2)  # slope guides drawn by plot_loglog: C / T and C / T^2
_GUIDE_STYLES = {1: "--", 2: "-."}


def guide_anchor(points: Sequence[tuple[float, float]], floor: float | None = None,
                 above_floor: float = 3.0) -> tuple[float, float] | None:
    """The measured point (x, y) that slope guides go through: among the points resolved above the noise
    (y > above_floor * floor; y > 0 when there is no floor), the one of median y (the lower of the two
    middle ones) at the middle x of those points' distinct x values. None when no point is resolved.

    Guides through the middle of the data run where the curves are, so each slope reads against them.
    """
    threshold = above_floor * floor if floor else 0.0
    resolved = [(x, y) for x, y in points if y > threshold]
    if not resolved:
        return None
    xs = sorted({x for x, _ in resolved})
    x_mid = xs[len(xs) // 2]
    ys = sorted(y for x, y in resolved if x == x_mid)
    return x_mid, ys[(len(ys) - 1) // 2]


def plot_loglog(path: str, panels: Mapping[str, Mapping[str, Sequence[Mapping]]], *, x: str = "steps",
                y: str = "tv", floor: str | None = "tv_floor", reference: str | None = None,
                styles: Mapping[str, Mapping] | None = None, xlabel: str = "sampling steps T",
                ylabel: str = "total variation distance", guides: Sequence[int] = GUIDE_POWERS,
                title: str = "") -> None:
    """One log-log panel per key of `panels`; each panel maps a curve label to its rows.

    Draws y vs x (matplotlib line keywords per curve label from `styles`, e.g. colour and line style)
    with the [y_lo, y_hi] band where present; the largest mean noise floor of the panel's rows (field
    `floor`) dotted; where rows carry a `reference` field (e.g. a closed form), that curve wide and pale
    in the measured curve's colour, behind it; and faint black slope guides C / x^p for p in
    `guides`, all through the measured point `guide_anchor` picks, so that a curve's slope can be read against
    them. One legend for the figure, below the panels.
    """
    n = len(panels)
    cols = min(n, 3)
    rows_ = math.ceil(n / cols)
    fig, axes = plt.subplots(rows_, cols, figsize=(5 * cols, 4 * rows_), squeeze=False)
    legend = {}
    for ax, (panel, curves) in zip(axes.flat, panels.items()):
        floors, points = [], []
        for label, rows in curves.items():
            rows = sorted(rows, key=lambda r: r[x])
            xs = [r[x] for r in rows]
            style = {"marker": "o", "ms": 3, **(styles or {}).get(label, {})}
            (line,) = ax.plot(xs, [r[y] for r in rows], label=label, **style)
            if all(f"{y}_lo" in r for r in rows):
                ax.fill_between(xs, [r[f"{y}_lo"] for r in rows], [r[f"{y}_hi"] for r in rows],
                                color=line.get_color(), alpha=0.15, lw=0)
            exact = [r for r in rows if reference and r.get(reference) is not None]
            if exact:
                ax.plot([r[x] for r in exact], [r[reference] for r in exact], color=line.get_color(), lw=5,
                        alpha=0.3, zorder=line.get_zorder() - 0.1, label=f"{label}: closed form")
            floors += [r[floor] for r in rows if floor and r.get(floor) is not None]
            points += [(r[x], r[y]) for r in rows]
        if floors:
            ax.axhline(max(floors), color="k", ls=":", lw=1, label="noise floor (exact sampler, same N)")
            ax.set_ylim(bottom=0.3 * min(floors))  # bands clipped at 0 would stretch the log axis
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        anchor = guide_anchor(points, max(floors) if floors else None)
        if anchor is not None and guides:
            ax.set_xlim(ax.get_xlim())  # freeze the data's limits: the guides span them, never widen them
            ax.set_ylim(ax.get_ylim())
            x0, y0 = anchor
            grid = sorted({px for px, _ in points})
            for p in guides:
                power = "" if p == 1 else f"^{p}"
                ax.plot(grid, [y0 * (x0 / g) ** p for g in grid], color="k", alpha=0.55, lw=1,
                        ls=_GUIDE_STYLES.get(p, ":"), label=f"slope -{p} guide ($\\propto 1/T{power}$)")
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.set_title(panel)
        ax.grid(True, which="both", alpha=0.3)
        for handle, label in zip(*ax.get_legend_handles_labels()):
            legend.setdefault(label, handle)
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    ncol = min(len(legend), 5)
    fig.legend(list(legend.values()), list(legend), loc="lower center", ncol=ncol, fontsize=8)
    if title:
        fig.suptitle(title)
    legend_rows = math.ceil(len(legend) / ncol)
    fig.tight_layout(rect=(0, (0.03 + 0.05 * legend_rows) / rows_, 1, 1))  # room for the legend below
    fig.savefig(path, dpi=120)
    plt.close(fig)


def group_by(rows: Iterable[Mapping], *keys: str) -> dict[tuple, list[Mapping]]:
    out: dict[tuple, list[Mapping]] = {}
    for r in rows:
        out.setdefault(tuple(r[k] for k in keys), []).append(r)
    return out
