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


def plot_loglog(path: str, panels: Mapping[str, Mapping[str, Sequence[Mapping]]], *, x: str = "steps",
                y: str = "tv", floor: str | None = "tv_floor", title: str = "") -> None:
    """One log-log panel per key of `panels`; each panel maps a curve label to its rows.

    Draws y vs x with the [y_lo, y_hi] band where present, and the mean noise floor dotted.
    """
    n = len(panels)
    cols = min(n, 3)
    rows_ = math.ceil(n / cols)
    fig, axes = plt.subplots(rows_, cols, figsize=(5 * cols, 4 * rows_), squeeze=False)
    for ax, (panel, curves) in zip(axes.flat, panels.items()):
        floors = []
        for label, rows in curves.items():
            rows = sorted(rows, key=lambda r: r[x])
            xs = [r[x] for r in rows]
            (line,) = ax.plot(xs, [r[y] for r in rows], marker="o", ms=3, label=label)
            if all(f"{y}_lo" in r for r in rows):
                ax.fill_between(xs, [r[f"{y}_lo"] for r in rows], [r[f"{y}_hi"] for r in rows],
                                color=line.get_color(), alpha=0.15, lw=0)
            floors += [r[floor] for r in rows if floor and r.get(floor) is not None]
        if floors:
            ax.axhline(max(floors), color="k", ls=":", lw=1, label="noise floor (mean)")
            ax.set_ylim(bottom=0.3 * min(floors))  # bands clipped at 0 would stretch the log axis
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel(x)
        ax.set_ylabel(y)
        ax.set_title(panel)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def group_by(rows: Iterable[Mapping], *keys: str) -> dict[tuple, list[Mapping]]:
    out: dict[tuple, list[Mapping]] = {}
    for r in rows:
        out.setdefault(tuple(r[k] for k in keys), []).append(r)
    return out
