"""Training metrics, written by process 0: WORKDIR/metrics.jsonl and TensorBoard scalars in WORKDIR/tb/.

    writer = MetricsWriter(workdir, enabled=jax.process_index() == 0, start_step=resumed_step)
    writer.write(step, {"loss": ..., "lr": ..., "grad_norm": ..., "examples_per_s": ...})
    writer.close()

Files
-----
* ``WORKDIR/metrics.jsonl``: one JSON object per `write`, ``{"step": s, **scalars, "wall_time": t}``
  with t in Unix seconds. Non-finite values are written the way Python's json writes them (NaN, Infinity).
  It is the record of the run: the event file is rebuilt from it on resume.
* ``WORKDIR/tb/events.out.tfevents.<time>.<host>.<id>``: TensorBoard events written by tensorboardX (no
  TensorFlow needed): tensorboardX's file-version event, then one event per row holding every scalar of
  the row (tag = its key, ``simple_value`` = the value as float32, so finite values beyond float32's
  range become +-inf there, not in metrics.jsonl). ``tensorboard --logdir WORKDIR/tb`` reads it.

The events go through tensorboardX's `EventsWriter`, the synchronous writer under its `SummaryWriter`:
`SummaryWriter` hands events to a background thread whose queue its `flush()` does not wait for, so a
flush before a checkpoint would not guarantee that the rows up to that checkpoint are stored.

Flushes, local disks and object stores
--------------------------------------
With ``min_flush_interval_s = 0`` (the default) every `write` flushes and a crash loses nothing written;
a positive interval flushes at most that often, and then `flush` must be called before each checkpoint
save so that every row up to a committed checkpoint is stored (the resume rule below relies on it).
On a local disk a flush appends the new lines to metrics.jsonl and the new events to the event file
(tensorboardX writes and fsyncs), so a running TensorBoard follows the file. Object stores cannot be
appended to: on ``gs://`` or ``s3://`` metrics.jsonl is uploaded whole at each flush (through
``etils.epath``, the path layer orbax uses; ``gs://`` needs ``gcsfs``) and so is the event file, by
tensorboardX (which needs ``google-cloud-storage`` for ``gs://``, ``boto3`` for ``s3://``). That is
O(rows) bytes a flush, fine for thousands of rows (not tested here: no bucket). A crash in the middle of
a local append can leave a torn last line: on resume a final line that is not valid JSON and has no
newline is dropped as such (any other bad line raises ValueError); TensorBoard reads a torn last event
record as not yet written.

Resume
------
``start_step`` is the step the run resumes from (0 for a fresh run). The writer reads the existing
metrics.jsonl, keeps the rows with step <= start_step (one per step: the last written, should an older
writer have left duplicates) and drops the rows past it (a crashed run logged them after its last
checkpoint; the resumed run recomputes and rewrites those steps). At once it replaces metrics.jsonl by
the kept rows (written whole, then renamed over the old file on a local disk), writes a new event file
holding the kept rows, and only then deletes the event files left in tb/ by earlier runs. So tb/ holds
one event file in which every reader sees each step once (tensorboardX alone would leave the crashed
run's later steps in the old file). A crash during that replacement leaves the old file beside the new
one until the next resume replaces both. Rows without ``wall_time`` (older files) get wall time 0 in
TensorBoard. A TensorBoard that is running while a run resumes may keep showing the old rows until it
is restarted.

With ``enabled=False`` (every process but 0) nothing is read or written; arguments are still checked.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Mapping

import numpy as np
from etils import epath
from tensorboardX.event_file_writer import EventsWriter
from tensorboardX.proto.event_pb2 import Event
from tensorboardX.proto.summary_pb2 import Summary

from diffserial import jsonl
from diffserial.validation import check_int

METRICS_FILE = "metrics.jsonl"
EVENTS_DIR = "tb"
EVENTS_PATTERN = "*tfevents*"  # the event files TensorBoard loads
RESERVED_KEYS = ("step", "wall_time")


def parse_rows(text: str, source: str) -> list[dict]:
    """The JSON objects of a metrics.jsonl text, one per non-blank line, each with an integer "step"; a
    final line that has no newline and is not JSON (an append cut short by a crash) is dropped."""
    rows = []
    for number, row in jsonl.parse_objects(text, source):
        step = row.get("step")
        if isinstance(step, bool) or not isinstance(step, int):
            raise ValueError(f'{source}, line {number}, is not an object with an integer "step": {row!r:.80}')
        rows.append(row)
    return rows


def rows_to_keep(rows: list[dict], start_step: int) -> list[dict]:
    """The rows with step <= start_step, one per step (the last one written), in increasing step order."""
    by_step = {row["step"]: row for row in rows if row["step"] <= start_step}
    return [by_step[step] for step in sorted(by_step)]


def scalar_event(row: Mapping) -> Event:
    """One TensorBoard Event of a metrics row: its step, wall time (0 if absent) and every other key as a
    scalar."""
    values = [Summary.Value(tag=tag, simple_value=value) for tag, value in row.items() if tag not in RESERVED_KEYS]
    return Event(step=row["step"], wall_time=row.get("wall_time", 0.0), summary=Summary(value=values))


def _check_scalars(scalars: Mapping[str, float]) -> dict[str, float]:
    """scalars as {name: float}, or ValueError for an empty mapping, a reserved or non-string name or a
    value that is not one real number."""
    if not isinstance(scalars, Mapping) or not scalars:
        raise ValueError(f"scalars must be a non-empty mapping of name -> number, got {scalars!r}")
    checked = {}
    for name, value in scalars.items():
        if not isinstance(name, str) or not name or name in RESERVED_KEYS:
            raise ValueError(f"scalar names must be non-empty strings other than {RESERVED_KEYS}, got {name!r}")
        try:
            checked[name] = float(value)
        except (TypeError, ValueError):
            raise ValueError(f"scalar {name!r} must be one real number, got {value!r}") from None
    return checked


def _is_object_store(path: epath.Path) -> bool:
    """True for scheme://... paths (gs://, s3://), whose objects are written whole, never appended to."""
    return "://" in os.fspath(path)


def _replace_file(path: epath.Path, data: bytes) -> None:
    """Replace the file at path by data atomically: one upload on an object store (an object appears
    whole), a write to path.tmp then a rename over path on a local disk."""
    if _is_object_store(path):
        path.write_bytes(data)
    else:
        staged = path.with_name(path.name + ".tmp")
        staged.write_bytes(data)
        staged.replace(path)


class MetricsWriter:
    """Rows of scalars to metrics.jsonl and TensorBoard; see the module docstring for files and resume."""

    def __init__(self, workdir: str | os.PathLike, enabled: bool, start_step: int = 0,
                 min_flush_interval_s: float = 0.0):
        check_int("start_step", start_step, 0)
        if not min_flush_interval_s >= 0:
            raise ValueError(f"min_flush_interval_s must be >= 0, got {min_flush_interval_s!r}")
        self.enabled = bool(enabled)
        self.min_flush_interval_s = float(min_flush_interval_s)
        self._last_step = start_step
        self._closed = False
        self._lines: list[str] = []
        if not self.enabled:
            return
        self._metrics_path = epath.Path(workdir) / METRICS_FILE
        events_dir = epath.Path(workdir) / EVENTS_DIR
        events_dir.mkdir(parents=True, exist_ok=True)
        previous = (parse_rows(self._metrics_path.read_text(), os.fspath(self._metrics_path))
                    if self._metrics_path.exists() else [])
        kept = rows_to_keep(previous, start_step)
        self._lines = [json.dumps(row) + "\n" for row in kept]
        _replace_file(self._metrics_path, "".join(self._lines).encode())
        old_event_files = list(events_dir.glob(EVENTS_PATTERN))
        # A unique suffix: a new file never reuses (truncates) the name of one about to be deleted.
        self._events = EventsWriter(os.fspath(events_dir / "events"), filename_suffix=f".{uuid.uuid4().hex[:8]}")
        for row in kept:
            self._events.write_event(scalar_event(row))
        self._events.flush()
        for path in old_event_files:
            path.unlink()
        self._stored = len(self._lines)
        self._flushed_at = time.time()

    def write(self, step: int, scalars: Mapping[str, float]) -> None:
        """Record {"step": step, **scalars, "wall_time": now}; flush unless the last flush was less than
        min_flush_interval_s ago. Steps must increase and exceed start_step."""
        if self._closed:
            raise ValueError("write() after close()")
        if isinstance(step, bool) or not isinstance(step, (int, np.integer)) or step <= self._last_step:
            raise ValueError(f"step must be an integer > {self._last_step} (start_step or the last step "
                             f"written), got {step!r}")
        row = {"step": int(step), **_check_scalars(scalars), "wall_time": time.time()}
        self._last_step = row["step"]
        if not self.enabled:
            return
        self._lines.append(json.dumps(row) + "\n")
        self._events.write_event(scalar_event(row))
        if row["wall_time"] - self._flushed_at >= self.min_flush_interval_s:
            self.flush()

    def flush(self) -> None:
        """Store the rows written since the last flush: metrics.jsonl first (appended to locally, uploaded
        whole to an object store), then the event file. Nothing to do if there are none."""
        if not self.enabled or self._stored == len(self._lines):
            return
        if _is_object_store(self._metrics_path):
            _replace_file(self._metrics_path, "".join(self._lines).encode())
        else:
            with self._metrics_path.open("a") as f:
                f.write("".join(self._lines[self._stored:]))
        self._events.flush()
        self._stored = len(self._lines)
        self._flushed_at = time.time()

    def close(self) -> None:
        """Flush, close the event file and refuse further writes; closing twice is a no-op."""
        if not self._closed:
            self.flush()
            if self.enabled:
                self._events.close()
            self._closed = True

    def __enter__(self) -> MetricsWriter:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()
