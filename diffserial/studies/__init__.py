"""Studies (`runner.studies()` lists them; `python sample.py --list` shows their configs) and their
outputs as data: `load_results(workdir)` (a pandas DataFrame of results.jsonl), `load_summary(workdir)`."""

from diffserial.studies.results import load_results, load_summary, read_rows

__all__ = ["load_results", "load_summary", "read_rows"]
