"""Run a study: progress bar (`progress.progress_bar`), results.jsonl row by row, summary.json, plot,
and a table on stdout.

A study module provides
    STUDY: str                      its name (config.study)
    POINT_KEYS: tuple[str, ...]     the row fields that name the point a row measured (`point_key`), in the
                                    order of the tuples of points(config)
    validate(config)                raises ValueError before anything compiles
    points(config) -> list          the measured points (distinct tuples), in the order they are measured
    run(config, mesh, workdir, done)  yields one result row (a JSON-able dict) per point not in `done` (a set
                                    of points already measured), in points order (workdir: where a study may
                                    keep by-products, e.g. the models it trains)
    summarize(rows) -> dict         fitted rates and what they used
    plot(rows, path), table(rows, summary) -> str

Resume. results.jsonl is a running record, one line per point as soon as it is measured. Rerunning a study in
the same workdir keeps its rows and measures only the points they lack; a final line cut short by a kill is
dropped and its point measured again (`report.resume_jsonl`). The summary, plots and table are made from the
rows of points(config) in points order, kept and new alike, as after an uninterrupted run (timings aside).
A config that differs from the saved config.json stops the rerun before anything runs, unless
config.allow_config_change (`diffserial.training.resume`); the kept rows were then measured with the old
config, and rows of points the new config lacks stay in results.jsonl but out of the summary.
On several processes, process 0 reads and writes the files and tells the others which points are done.
"""

from __future__ import annotations

import os
import types

import jax
import ml_collections
import numpy as np
from jax.experimental import multihost_utils

from diffserial.progress import progress_bar
from diffserial.registry import lookup
from diffserial.samplers import seed_mesh
from diffserial.studies import report
from diffserial.training import resume

RESULTS_FILE = "results.jsonl"


def studies() -> dict[str, types.ModuleType]:
    """The registry of studies, by config.study name (imported lazily: no work at import)."""
    from diffserial.studies import gmm_convergence, gmm_learned, parity_convergence, parity_learned, pinball
    from diffserial.studies import serial_accuracy, sudoku_decoding

    return {m.STUDY: m for m in (gmm_convergence, gmm_learned, parity_convergence, parity_learned, pinball,
                                 serial_accuracy, sudoku_decoding)}


def point_key(study: types.ModuleType, row: dict) -> tuple:
    """The point `row` measured: its values of study.POINT_KEYS, comparable with the tuples of points()."""
    return tuple(row[k] for k in study.POINT_KEYS)


def _resume(study: types.ModuleType, config: ml_collections.ConfigDict, workdir: str,
            points: list[tuple]) -> tuple[list[dict], frozenset]:
    """(rows already in WORKDIR/results.jsonl, the points they measured). Process 0 reads the file and saves
    config.json (ConfigChangedError if it differs from the saved one), then every process learns from it which
    points are done (other processes get no rows)."""
    rows, error = [], None
    if jax.process_index() == 0:
        try:
            os.makedirs(workdir, exist_ok=True)
            rows = report.resume_jsonl(os.path.join(workdir, RESULTS_FILE))
            resume.save_config(workdir, config, resuming=bool(rows))
        except ValueError as e:
            error = e
    measured = {point_key(study, r) for r in rows}
    flags = multihost_utils.broadcast_one_to_all(np.array([error is None] + [p in measured for p in points]))
    if error is not None:
        raise error
    if not flags[0]:
        raise RuntimeError(f"process 0 could not resume {workdir}: see its error")
    return rows, frozenset(p for p, done in zip(points, flags[1:]) if done)


def run_study(config: ml_collections.ConfigDict, workdir: str, mesh=None) -> dict:
    """Validate `config`, run its study into `workdir` (resuming what is there, see the module docstring), and
    return the summary (on processes other than 0: of the rows this run measured).

    Seeds are sharded over `mesh` (default: all local devices); results do not depend on it.
    """
    study = lookup(studies(), "study", config.study)
    study.validate(config)
    mesh = mesh if mesh is not None else seed_mesh(jax.local_devices())
    writer = jax.process_index() == 0
    results = os.path.join(workdir, RESULTS_FILE)
    points = study.points(config)
    kept, done = _resume(study, config, workdir, points)
    by_point = {point_key(study, row): row for row in kept}
    bar = progress_bar(total=len(points), initial=len(done), desc=config.study, disable=not writer)
    for row in study.run(config, mesh=mesh, workdir=workdir, done=done):
        key = point_key(study, row)
        if key in done:
            raise RuntimeError(f"{config.study}.run measured {key} again, although it was passed as done")
        by_point[key] = row
        if writer:
            report.append_jsonl(results, row)
        bar.set_postfix_str(", ".join(f"{k}={row[k]}" for k in study.POSTFIX_KEYS), refresh=False)
        bar.update()
    bar.close()
    rows = [by_point[p] for p in points if p in by_point]
    summary = study.summarize(rows)
    if writer:
        report.write_json(os.path.join(workdir, "summary.json"), summary)
        for name in study.plot(rows, workdir):
            print(f"wrote {os.path.join(workdir, name)}")
        print(study.table(rows, summary))
        earlier = f", {len(done)} of them from an earlier run" if done else ""
        outside = len(kept) - len(done)
        outside = f"; {outside} rows of points this config lacks stay in it, out of the summary" if outside else ""
        print(f"wrote {results} ({len(rows)} rows{earlier}{outside}) and {os.path.join(workdir, 'summary.json')}")
    return summary
