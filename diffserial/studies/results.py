"""A study's workdir as data: `load_results` (results.jsonl as a pandas DataFrame) and `load_summary`.

    from diffserial.studies import load_results, load_summary
    df = load_results("runs/gmm_convergence")          # one row per measured point
    df.pivot_table(index="steps", columns="sampler", values="tv")    # e.g. TV per sampler and step count
    load_summary("runs/gmm_convergence")["fits"]        # the fitted slopes the study printed

pandas is an optional dependency (``pip install 'diffserial[analysis]'``); `read_rows` gives the same rows
as dicts without it. Paths go through ``etils.epath``, so ``gs://`` workdirs read as local ones.
"""

from __future__ import annotations

import json
import os

from etils import epath

from diffserial import jsonl

RESULTS_FILE = "results.jsonl"
SUMMARY_FILE = "summary.json"


def _study_file(workdir: str | os.PathLike, name: str) -> epath.Path:
    """WORKDIR/name, or FileNotFoundError saying that workdir holds no study output."""
    path = epath.Path(workdir) / name
    if not path.exists():
        raise FileNotFoundError(f"{os.fspath(path)} does not exist: {os.fspath(workdir)} is not the workdir of a "
                                f"finished or running study (python sample.py --workdir {os.fspath(workdir)})")
    return path


def read_rows(workdir: str | os.PathLike) -> list[dict]:
    """The rows of WORKDIR/results.jsonl, one JSON object per non-blank line, in file order.

    A final line that has no newline and is not JSON (an append cut short by a kill) is ignored; any
    other line that is not a JSON object raises ValueError naming it.
    """
    path = _study_file(workdir, RESULTS_FILE)
    return [row for _, row in jsonl.parse_objects(path.read_text(), os.fspath(path))]


def load_results(workdir: str | os.PathLike):
    """WORKDIR/results.jsonl as a pandas DataFrame: one row per measured point, one column per field
    (a field missing from some rows is NaN there; list-valued fields stay Python lists).

    Rows are in the order the study measured them; a torn last line is ignored (`read_rows`).
    FileNotFoundError if the file does not exist; ImportError naming the extra if pandas is missing.
    """
    try:
        import pandas as pd
    except ImportError:
        raise ImportError("load_results needs pandas: pip install 'diffserial[analysis]' (or pandas); "
                          "diffserial.studies.read_rows gives the rows as dicts without it") from None
    return pd.DataFrame.from_records(read_rows(workdir))


def load_summary(workdir: str | os.PathLike) -> dict:
    """WORKDIR/summary.json (the study's fitted rates and what they used), as a dict."""
    return json.loads(_study_file(workdir, SUMMARY_FILE).read_text())


__all__ = ["RESULTS_FILE", "SUMMARY_FILE", "load_results", "load_summary", "read_rows"]
