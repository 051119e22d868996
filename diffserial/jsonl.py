"""JSON-lines text as written by an append-only logger (results.jsonl, metrics.jsonl), read back."""

from __future__ import annotations

import json


def parse_objects(text: str, source: str) -> list[tuple[int, dict]]:
    """(line number, object) for each non-blank line of `text`, in order. A final line that has no newline
    and is not JSON (an append cut short by a kill or a crash) is dropped; any other line that is not a
    JSON object raises ValueError naming `source` and the line."""
    lines = text.splitlines()
    out = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as error:
            if number == len(lines) and not text.endswith("\n"):
                break  # the torn last append
            raise ValueError(f"{source}, line {number}, is not JSON ({error}): {line[:80]!r}") from None
        if not isinstance(row, dict):
            raise ValueError(f"{source}, line {number}, is not a JSON object: {line[:80]!r}")
        out.append((number, row))
    return out


__all__ = ["parse_objects"]
