"""Redraw a convergence study's TV curves from its workdir, through the results DataFrame.

    python sample.py --workdir runs/gmm_convergence                  # any study whose rows have steps and tv
    python examples/redraw_convergence.py runs/gmm_convergence        # -> runs/gmm_convergence/redrawn.png
    python examples/redraw_convergence.py runs/gmm_convergence --x nfe --out /tmp/tv_vs_nfe.png

Needs pandas (pip install 'diffserial[analysis]'). The study's own plot puts sampling steps on the x axis;
--x nfe puts score evaluations there instead, which compares samplers at equal cost (a Heun step costs
two evaluations). One panel per value of --panel (default: d, else n), one curve per sampler (and per
model or predictor where the rows have one), and the noise floor the study measured (dotted).
"""

from __future__ import annotations

import argparse
import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from diffserial.studies import load_results  # noqa: E402

X_LABELS = {"steps": "sampling steps T", "nfe": "score evaluations (NFE)"}
CURVE_FIELDS = ("model", "predictor", "sampler")  # the fields that tell the curves of a panel apart


def redraw(workdir: str, out: str, x: str = "steps", panel: str | None = None) -> str:
    """Draw TV vs `x` from WORKDIR/results.jsonl into `out`, a panel per value of `panel`; return out."""
    df = load_results(workdir)
    missing = {x, "tv", "sampler"} - set(df.columns)
    if missing:
        raise SystemExit(f"{workdir}: the rows have no {', '.join(sorted(missing))} field: not a TV-vs-steps study")
    panel = panel or next((c for c in ("d", "n") if c in df.columns), None)
    curve_fields = [c for c in CURVE_FIELDS if c in df.columns]
    df = df.dropna(subset=["tv"])  # e.g. parity rows beyond exact_tv_max_n carry no TV
    groups = list(df.groupby(panel)) if panel else [("all", df)]
    fig, axes = plt.subplots(1, len(groups), figsize=(4.5 * len(groups), 4), squeeze=False, sharey=True)
    for ax, (value, group) in zip(axes[0], groups):
        curves = group.pivot(index=x, columns=curve_fields, values="tv")  # duplicates raise: no silent means
        curves.columns = [", ".join(map(str, c)) if isinstance(c, tuple) else str(c) for c in curves.columns]
        curves.plot(ax=ax, marker="o", ms=3, legend=False)
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        if "tv_floor" in group:
            ax.axhline(group["tv_floor"].max(), color="k", ls=":", lw=1, label="noise floor")
        ax.set_title(f"{panel} = {value}" if panel else workdir)
        ax.set_xlabel(X_LABELS.get(x, x))
        ax.grid(True, which="both", alpha=0.3)
    axes[0][0].set_ylabel("total variation distance")
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=min(5, len(labels)), fontsize=8)
    fig.tight_layout(rect=(0, 0.08 + 0.04 * ((len(labels) - 1) // 5), 1, 1))
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("workdir", help="a sample.py workdir (holds results.jsonl)")
    parser.add_argument("--x", default="steps", choices=sorted(X_LABELS), help="the x axis")
    parser.add_argument("--panel", default=None, help="the field with one panel per value (default: d, else n)")
    parser.add_argument("--out", default=None, help="output image (default: WORKDIR/redrawn.png)")
    args = parser.parse_args()
    print("wrote", redraw(args.workdir, args.out or os.path.join(args.workdir, "redrawn.png"), args.x, args.panel))


if __name__ == "__main__":
    main()
