"""Run a study: progress bar (`progress.progress_bar`), results.jsonl row by row, summary.json, plot,
and a table on stdout.

A study module provides
    STUDY: str                      its name (config.study)
    validate(config)                raises ValueError before anything compiles
    points(config) -> list          the measured points, for the progress bar
    run(config, mesh, workdir)      yields one result row (a JSON-able dict) per point (workdir: where
                                    a study may keep by-products, e.g. the models it trains)
    summarize(rows) -> dict         fitted rates and what they used
    plot(rows, path), table(rows, summary) -> str
"""

from __future__ import annotations

import os
import types

import jax
import ml_collections

from diffserial.progress import progress_bar
from diffserial.registry import lookup
from diffserial.samplers import seed_mesh
from diffserial.studies import report


def studies() -> dict[str, types.ModuleType]:
    """The registry of studies, by config.study name (imported lazily: no work at import)."""
    from diffserial.studies import gmm_convergence, gmm_learned, parity_convergence, parity_learned, pinball
    from diffserial.studies import serial_accuracy, sudoku_decoding

    return {m.STUDY: m for m in (gmm_convergence, gmm_learned, parity_convergence, parity_learned, pinball,
                                 serial_accuracy, sudoku_decoding)}


def run_study(config: ml_collections.ConfigDict, workdir: str, mesh=None) -> dict:
    """Validate `config`, run its study into `workdir`, and return the summary.

    Seeds are sharded over `mesh` (default: all local devices); results do not depend on it.
    """
    study = lookup(studies(), "study", config.study)
    study.validate(config)
    mesh = mesh if mesh is not None else seed_mesh(jax.local_devices())
    writer = jax.process_index() == 0
    results = os.path.join(workdir, "results.jsonl")
    if writer:
        report.prepare_workdir(workdir)
        with open(os.path.join(workdir, "config.json"), "w") as f:
            f.write(config.to_json_best_effort(indent=2) + "\n")
    rows = []
    bar = progress_bar(total=len(study.points(config)), desc=config.study, disable=not writer)
    for row in study.run(config, mesh=mesh, workdir=workdir):
        rows.append(row)
        if writer:
            report.append_jsonl(results, row)
        bar.set_postfix_str(", ".join(f"{k}={row[k]}" for k in study.POSTFIX_KEYS), refresh=False)
        bar.update()
    bar.close()
    summary = study.summarize(rows)
    if writer:
        report.write_json(os.path.join(workdir, "summary.json"), summary)
        for name in study.plot(rows, workdir):
            print(f"wrote {os.path.join(workdir, name)}")
        print(study.table(rows, summary))
        print(f"wrote {results} ({len(rows)} rows) and {os.path.join(workdir, 'summary.json')}")
    return summary
