"""Shared pieces of the benchmark scripts: interleaved median timing and the pass/fail table."""

from __future__ import annotations

import dataclasses
import statistics
import time
from typing import Callable

import jax


@dataclasses.dataclass(frozen=True)
class Row:
    """One line of the final table: value compared with target by `op` ('>=' or '<=')."""

    metric: str
    setting: str
    value: float
    op: str
    target: float

    @property
    def passed(self) -> bool:
        return self.value >= self.target if self.op == ">=" else self.value <= self.target


def median_times(fns: dict[str, Callable[[], object]], repeats: int,
                 warmups: dict[str, Callable[[], object]] | None = None, verbose: bool = False) -> dict[str, float]:
    """Median wall time (s) of each fn: one warm-up call each (warmups[name] if given, else fn itself,
    so compilation is excluded), then `repeats` interleaved rounds, so that load drifts hit all alike."""
    warmups = warmups or {}
    for name, fn in fns.items():
        jax.block_until_ready(warmups.get(name, fn)())
    times = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            jax.block_until_ready(fn())
            times[name].append(time.perf_counter() - start)
    if verbose:
        for name, ts in times.items():
            print(f"    {name}: " + ", ".join(f"{1e3 * t:.1f}" for t in ts) + " ms")
    return {name: statistics.median(ts) for name, ts in times.items()}


def print_table(rows: list[Row]) -> None:
    """metric | setting | measured | target | pass/fail."""
    header = ("metric", "setting", "measured", "target", "result")
    lines = [(r.metric, r.setting, f"{r.value:.3f}", f"{r.op} {r.target:g}", "pass" if r.passed else "FAIL")
             for r in rows]
    widths = [max(len(line[i]) for line in [header] + lines) for i in range(len(header))]
    for line in [header, tuple("-" * w for w in widths)] + lines:
        print("  ".join(cell.ljust(w) for cell, w in zip(line, widths)).rstrip())


def parse_cli(description: str, sections: tuple[str, ...], full, quick):
    """(args, config, chosen sections) from --quick, --repeats R and --sections a,b (default: all).

    `full` and `quick` are frozen dataclasses with a `repeats` field; --repeats overrides it."""
    import argparse

    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true", help="small sizes, to check that the script runs")
    parser.add_argument("--repeats", type=int, default=None, help="timed rounds per measurement")
    parser.add_argument("--sections", default=",".join(sections),
                        help=f"comma-separated subset of {', '.join(sections)}")
    args = parser.parse_args()
    chosen = set(args.sections.split(","))
    if not chosen <= set(sections):
        parser.error(f"unknown sections {sorted(chosen - set(sections))}; valid: {', '.join(sections)}")
    config = quick if args.quick else full
    if args.repeats is not None:
        config = dataclasses.replace(config, repeats=args.repeats)
    return args, config, chosen
