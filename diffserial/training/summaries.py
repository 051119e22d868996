"""Training metrics, written by process 0: WORKDIR/metrics.jsonl and TensorBoard scalars in WORKDIR/tb/.

    writer = MetricsWriter(workdir, enabled=jax.process_index() == 0, start_step=resumed_step)
    writer.write(step, {"loss": ..., "lr": ..., "grad_norm": ..., "examples_per_s": ...})
    writer.close()

Files
-----
* ``WORKDIR/metrics.jsonl``: one JSON object per `write`, ``{"step": s, **scalars, "wall_time": t}``
  with t in Unix seconds. Non-finite values are written the way Python's json writes them (NaN, Infinity).
* ``WORKDIR/tb/events.out.tfevents.diffserial``: a TFRecord file of TensorBoard ``Event`` protos, a
  file-version event then one event per row holding every scalar of the row (tag = its key, value cast
  to float32). ``tensorboard --logdir WORKDIR/tb`` reads it, ``gs://`` included; TensorFlow is not needed.

Why a hand-written event writer rather than tensorboardX
--------------------------------------------------------
Scalars need only the TFRecord framing and three protobuf messages, all fixed formats:
  record  = uint64 len, uint32 masked_crc32c(len bytes), data, uint32 masked_crc32c(data)  (little endian),
            masked_crc32c(b) = ((c >> 15) | (c << 17)) + 0xA282EAD8 mod 2^32, c = CRC-32C(b);
  Event   = {wall_time = 1: double, step = 2: int64, file_version = 3: string, summary = 5: Summary};
  Summary = {value = 1: repeated Value};  Value = {tag = 1: string, simple_value = 2: float}.
That is about forty lines and no dependency. tensorboardX would add a package tied to protobuf versions
and owns its files: it opens a new timestamped event file per run, so after a crash the steps the dead
run logged past its last checkpoint stay in the old file, and hiding them relies on TensorBoard purging
orphaned steps on a restart event, which not every reader does. Writing the one event file ourselves
makes its content a pure function of the kept rows (see Resume): every reader sees each step once.

Durability, local disks and object stores
-----------------------------------------
The writer keeps every row in memory, encoded once (~200 bytes a row). On a local disk a flush appends
the new lines and records to both files, as any event writer does, so a running TensorBoard follows the
file. Cloud Storage objects cannot be appended to: on ``gs://`` (or any ``scheme://`` path, through
``etils.epath``, the path layer orbax uses; ``gs://`` goes through fsspec and needs ``gcsfs`` unless
TensorFlow is installed) each flush uploads both files whole, as TensorFlow's GCS file system does on
each flush. An upload is atomic (a reader sees the previous object or the new one) and the new object
starts with the old bytes, so a TensorBoard reading the bucket should follow it as it follows a growing
file (not tested here: no bucket). This costs O(rows) bytes a flush, fine for thousands of rows (log
every few dozen steps); each flush is two uploads (tens of milliseconds, not measured here). With
``min_flush_interval_s = 0`` (the default) every `write` flushes and a crash loses nothing written. A
positive interval flushes at most that often; then call `flush` before each checkpoint save, so that
every row up to a committed checkpoint is stored (the resume rule below relies on it). A crash in the
middle of a local append can leave a torn last line: on resume a final line that is not valid JSON and
has no newline is dropped as such (any other bad line raises ValueError); a torn last event record is
read by TensorBoard as not yet written.

Resume
------
``start_step`` is the step the run resumes from (0 for a fresh run). The writer reads the existing
metrics.jsonl, keeps the rows with step <= start_step (one per step: the last written, should an older
writer have left duplicates), drops the rows past it (a crashed run logged them after its last
checkpoint; the resumed run recomputes and rewrites those steps), and at once replaces both files by
files of the kept rows (written whole, then renamed over the old ones on a local disk). The event file
is rebuilt from metrics.jsonl, so the two agree. Rows without ``wall_time`` (older files) get wall
time 0 in TensorBoard. A TensorBoard that is running while a run resumes keeps showing the old file
(dropped steps included, later rows missing) until it is restarted.

With ``enabled=False`` (every process but 0) nothing is read or written; arguments are still checked.
"""

from __future__ import annotations

import json
import os
import struct
import time
from collections.abc import Mapping

import numpy as np
from etils import epath

METRICS_FILE = "metrics.jsonl"
EVENTS_DIR = "tb"
EVENTS_FILE = "events.out.tfevents.diffserial"  # TensorBoard loads files whose name contains "tfevents"
RESERVED_KEYS = ("step", "wall_time")
_CRC32C_POLYNOMIAL = 0x82F63B78  # Castagnoli, bit-reversed
_MASK_DELTA = 0xA282EAD8
_U32 = 0xFFFFFFFF


def _crc32c_table() -> tuple[int, ...]:
    """CRC-32C of every byte value: the lookup table of the byte-at-a-time algorithm."""
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ (_CRC32C_POLYNOMIAL if crc & 1 else 0)
        table.append(crc)
    return tuple(table)


_CRC32C_TABLE = _crc32c_table()


def crc32c(data: bytes) -> int:
    """CRC-32C (Castagnoli): reflected polynomial 0x82F63B78, initial value and final xor 0xFFFFFFFF."""
    crc = _U32
    for byte in data:
        crc = _CRC32C_TABLE[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ _U32


def masked_crc32c(data: bytes) -> int:
    """TFRecord's masked checksum: ((c >> 15) | (c << 17)) + 0xA282EAD8 mod 2^32, c = crc32c(data)."""
    c = crc32c(data)
    return ((((c >> 15) | (c << 17)) & _U32) + _MASK_DELTA) & _U32


def tfrecord(data: bytes) -> bytes:
    """One TFRecord: uint64 len(data), masked_crc32c of those 8 bytes, data, masked_crc32c(data)."""
    length = struct.pack("<Q", len(data))
    return length + struct.pack("<I", masked_crc32c(length)) + data + struct.pack("<I", masked_crc32c(data))


def _varint(n: int) -> bytes:
    """Protobuf base-128 varint of a non-negative integer, least significant group first."""
    out = bytearray()
    while n > 0x7F:
        out.append(n & 0x7F | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _key(field: int, wire_type: int) -> bytes:
    """Protobuf field key: varint(field << 3 | wire_type); wire types 0 varint, 1 64-bit, 2 bytes, 5 32-bit."""
    return _varint(field << 3 | wire_type)


def _length_delimited(field: int, payload: bytes) -> bytes:
    """A bytes / string / sub-message field: key, varint length, payload."""
    return _key(field, 2) + _varint(len(payload)) + payload


def scalar_event(step: int, wall_time: float, scalars: Mapping[str, float]) -> bytes:
    """Serialized Event{wall_time, step, summary = Summary{value = [Value{tag, simple_value}, ...]}}.

    Values are cast to float32 (simple_value's type); finite values beyond its range become +-inf.
    """
    with np.errstate(over="ignore"):
        as_float32 = np.asarray(list(scalars.values()), np.float32).tobytes()
    values = b"".join(
        _length_delimited(1, _length_delimited(1, tag.encode()) + _key(2, 5) + as_float32[4 * i:4 * i + 4])
        for i, tag in enumerate(scalars))
    return _key(1, 1) + struct.pack("<d", wall_time) + _key(2, 0) + _varint(step) + _length_delimited(5, values)


def file_version_event(wall_time: float) -> bytes:
    """Serialized Event{wall_time, file_version = "brain.Event:2"}, the first record of an event file."""
    return _key(1, 1) + struct.pack("<d", wall_time) + _length_delimited(3, b"brain.Event:2")


def parse_rows(text: str, source: str) -> list[dict]:
    """The JSON objects of a metrics.jsonl text, one per non-blank line, each with an integer "step"; a
    final line that has no newline and is not JSON (an append cut short by a crash) is dropped."""
    lines = text.splitlines()
    rows = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as error:
            if number == len(lines) and not text.endswith("\n"):
                break  # a torn final append
            raise ValueError(f"{source}, line {number}, is not JSON ({error}): {line[:80]!r}") from None
        step = row.get("step") if isinstance(row, dict) else None
        if isinstance(step, bool) or not isinstance(step, int):
            raise ValueError(f'{source}, line {number}, is not an object with an integer "step": {line[:80]!r}')
        rows.append(row)
    return rows


def rows_to_keep(rows: list[dict], start_step: int) -> list[dict]:
    """The rows with step <= start_step, one per step (the last one written), in increasing step order."""
    by_step = {row["step"]: row for row in rows if row["step"] <= start_step}
    return [by_step[step] for step in sorted(by_step)]


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


def _append_file(path: epath.Path, data: bytes) -> None:
    """Append data to a local file."""
    with path.open("ab") as f:
        f.write(data)


class MetricsWriter:
    """Rows of scalars to metrics.jsonl and TensorBoard; see the module docstring for files and resume."""

    def __init__(self, workdir: str | os.PathLike, enabled: bool, start_step: int = 0,
                 min_flush_interval_s: float = 0.0):
        if isinstance(start_step, bool) or not isinstance(start_step, int) or start_step < 0:
            raise ValueError(f"start_step must be an integer >= 0, got {start_step!r}")
        if not min_flush_interval_s >= 0:
            raise ValueError(f"min_flush_interval_s must be >= 0, got {min_flush_interval_s!r}")
        self.enabled = bool(enabled)
        self.min_flush_interval_s = float(min_flush_interval_s)
        self._last_step = start_step
        self._closed = False
        self._lines: list[str] = []
        self._records: list[bytes] = []
        if not self.enabled:
            return
        self._metrics_path = epath.Path(workdir) / METRICS_FILE
        self._events_path = epath.Path(workdir) / EVENTS_DIR / EVENTS_FILE
        self._events_path.parent.mkdir(parents=True, exist_ok=True)
        previous = (parse_rows(self._metrics_path.read_text(), os.fspath(self._metrics_path))
                    if self._metrics_path.exists() else [])
        kept = rows_to_keep(previous, start_step)
        self._header = tfrecord(file_version_event(kept[0].get("wall_time", 0.0) if kept else time.time()))
        for row in kept:
            self._encode(row)
        self._rewrite()

    def _encode(self, row: dict) -> None:
        """Encode one row for both files, once: flushes reuse the encodings."""
        scalars = {name: value for name, value in row.items() if name not in RESERVED_KEYS}
        self._lines.append(json.dumps(row) + "\n")
        self._records.append(tfrecord(scalar_event(row["step"], row.get("wall_time", 0.0), scalars)))

    def _rewrite(self) -> None:
        """Replace both files, metrics.jsonl first, by files of every row so far."""
        _replace_file(self._metrics_path, "".join(self._lines).encode())
        _replace_file(self._events_path, self._header + b"".join(self._records))
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
        self._encode(row)
        if row["wall_time"] - self._flushed_at >= self.min_flush_interval_s:
            self.flush()

    def flush(self) -> None:
        """Store the rows written since the last flush: append them to both local files (metrics.jsonl
        first), or upload both files whole to an object store. Nothing to do if there are none."""
        if not self.enabled or self._stored == len(self._lines):
            return
        if _is_object_store(self._metrics_path):
            self._rewrite()
            return
        _append_file(self._metrics_path, "".join(self._lines[self._stored:]).encode())
        _append_file(self._events_path, b"".join(self._records[self._stored:]))
        self._stored = len(self._lines)
        self._flushed_at = time.time()

    def close(self) -> None:
        """Flush and refuse further writes; closing twice is a no-op."""
        if not self._closed:
            self.flush()
            self._closed = True

    def __enter__(self) -> MetricsWriter:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()
