"""MetricsWriter: metrics.jsonl rows, TensorBoard scalars read back by the tensorboard package's own
readers (which verify every record's CRC), resume semantics, disabled writers, bad input."""

import glob
import json
import os
import time

import numpy as np
import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.backend.event_processing.event_file_loader import LegacyEventFileLoader

from diffserial.training import summaries
from diffserial.training.summaries import MetricsWriter

TAGS = ("loss", "lr", "grad_norm", "examples_per_s")


def _scalars(step, offset=0.0):
    return {"loss": 1.0 / step + offset, "lr": 1e-3 * step, "grad_norm": 2.5 + step,
            "examples_per_s": 1e4 + offset}


def _jsonl(workdir):
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        return [json.loads(line) for line in f]


def _tensorboard_scalars(workdir):
    """{tag: [(step, value, wall_time), ...]} as TensorBoard's EventAccumulator loads them."""
    accumulator = EventAccumulator(os.path.join(workdir, "tb"), size_guidance={"scalars": 0})
    accumulator.Reload()
    return {tag: [(e.step, e.value, e.wall_time) for e in accumulator.Scalars(tag)]
            for tag in accumulator.Tags()["scalars"]}


def _event_files(workdir):
    return glob.glob(os.path.join(workdir, "tb", summaries.EVENTS_PATTERN))


def _events(workdir):
    (path,) = _event_files(workdir)
    return list(LegacyEventFileLoader(path).Load())


def test_rows_and_tensorboard_scalars_round_trip(tmp_path):
    workdir = str(tmp_path / "run")
    before = time.time()
    with MetricsWriter(workdir, enabled=True) as writer:
        for step in (10, 20, 30):
            writer.write(step, _scalars(step))
        writer.write(np.int64(40), {name: np.float32(v) for name, v in _scalars(40).items()})
    after = time.time()

    rows = _jsonl(workdir)
    assert [r["step"] for r in rows] == [10, 20, 30, 40]
    for row in rows:
        assert list(row) == ["step", *TAGS, "wall_time"]
        expected = _scalars(row["step"])
        for tag in TAGS:  # the last row went through float32
            np.testing.assert_allclose(row[tag], expected[tag], rtol=0 if row["step"] < 40 else 1e-7)
        assert before <= row["wall_time"] <= after

    scalars = _tensorboard_scalars(workdir)
    assert sorted(scalars) == sorted(TAGS)
    for tag in TAGS:
        assert [step for step, _, _ in scalars[tag]] == [10, 20, 30, 40]
        for (step, value, wall_time), row in zip(scalars[tag], rows):
            assert value == np.float32(row[tag])
            assert wall_time == row["wall_time"]

    events = _events(workdir)
    assert events[0].file_version == "brain.Event:2"
    assert [e.step for e in events[1:]] == [10, 20, 30, 40]
    assert [v.tag for v in events[1].summary.value] == list(TAGS)
    assert sorted(os.listdir(workdir)) == ["metrics.jsonl", "tb"]  # no staged .tmp file left
    assert len(os.listdir(os.path.join(workdir, "tb"))) == 1


def test_values_beyond_float32_become_inf_in_tensorboard_only(tmp_path):
    with MetricsWriter(str(tmp_path), enabled=True) as writer:
        writer.write(1, {"grad_norm": 1e40, "loss": -1e40, "nan": float("nan")})
    assert _jsonl(tmp_path)[0]["grad_norm"] == 1e40
    scalars = _tensorboard_scalars(str(tmp_path))
    assert scalars["grad_norm"][0][1] == np.inf and scalars["loss"][0][1] == -np.inf
    assert np.isnan(scalars["nan"][0][1]) and np.isnan(_jsonl(tmp_path)[0]["nan"])


def test_resume_keeps_rows_up_to_start_step_and_drops_the_crashed_runs_later_rows(tmp_path):
    workdir = str(tmp_path)
    with MetricsWriter(workdir, enabled=True) as writer:  # the first run logged to 40, checkpointed at 20
        for step in (10, 20, 30, 40):
            writer.write(step, _scalars(step))
    first = _jsonl(workdir)

    (first_events,) = _event_files(workdir)

    writer = MetricsWriter(workdir, enabled=True, start_step=20)
    assert _jsonl(workdir) == first[:2]  # truncated at once, before any new write
    assert [s for s, _, _ in _tensorboard_scalars(workdir)["loss"]] == [10, 20]
    (resumed_events,) = _event_files(workdir)  # the crashed run's file is replaced, not left beside
    assert resumed_events != first_events
    for step in (30, 40):
        writer.write(step, _scalars(step, offset=100.0))
    writer.close()

    rows = _jsonl(workdir)
    assert rows[:2] == first[:2]
    assert [r["step"] for r in rows] == [10, 20, 30, 40]
    assert [r["examples_per_s"] for r in rows] == [1e4, 1e4, 1e4 + 100.0, 1e4 + 100.0]
    loss = _tensorboard_scalars(workdir)["loss"]
    assert [s for s, _, _ in loss] == [10, 20, 30, 40]  # each step once
    np.testing.assert_array_equal([v for _, v, _ in loss],
                                  np.float32([0.1, 0.05, 1 / 30 + 100.0, 1 / 40 + 100.0]))


def test_resume_keeps_the_last_copy_of_duplicated_steps_from_an_append_only_file(tmp_path):
    lines = [{"step": 10, "loss": 1.0}, {"step": 20, "loss": 2.0}, {"step": 30, "loss": 3.0},
             {"step": 30, "loss": 3.5}, {"step": 40, "loss": 4.0}, {"step": 50, "loss": 5.0}]
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines) + "\n")
    MetricsWriter(str(tmp_path), enabled=True, start_step=40).close()
    assert _jsonl(tmp_path) == [lines[0], lines[1], lines[3], lines[4]]
    loss = _tensorboard_scalars(str(tmp_path))["loss"]
    assert loss == [(10, 1.0, 0.0), (20, 2.0, 0.0), (30, 3.5, 0.0), (40, 4.0, 0.0)]  # no wall_time: 0


def test_resume_drops_a_torn_final_line_and_rejects_other_bad_lines(tmp_path):
    good = json.dumps({"step": 10, "loss": 1.0}) + "\n"
    (tmp_path / "metrics.jsonl").write_text(good + '{"step": 20, "lo')
    MetricsWriter(str(tmp_path), enabled=True, start_step=20).close()
    assert _jsonl(tmp_path) == [{"step": 10, "loss": 1.0}]
    (tmp_path / "metrics.jsonl").write_text(good + '{"step": 20, "lo\n')  # complete line, bad JSON
    with pytest.raises(ValueError, match="line 2, is not JSON"):
        MetricsWriter(str(tmp_path), enabled=True, start_step=20)


def test_local_flushes_append_in_place_so_a_running_tensorboard_follows(tmp_path):
    writer = MetricsWriter(str(tmp_path), enabled=True)
    writer.write(1, {"loss": 1.0})
    files = [tmp_path / "metrics.jsonl", *_event_files(str(tmp_path))]
    inodes = [os.stat(path).st_ino for path in files]
    writer.write(2, {"loss": 0.5})
    writer.close()
    assert [os.stat(path).st_ino for path in files] == inodes
    assert [s for s, _, _ in _tensorboard_scalars(str(tmp_path))["loss"]] == [1, 2]


def test_object_store_flushes_rewrite_whole_files_with_the_same_content(tmp_path, monkeypatch):
    appended, rewritten = str(tmp_path / "appended"), str(tmp_path / "rewritten")
    for workdir in (appended, rewritten):
        if workdir == rewritten:  # the gs:// code path, on a local directory
            monkeypatch.setattr(summaries, "_is_object_store", lambda path: True)
        with MetricsWriter(workdir, enabled=True) as writer:
            for step in (1, 2, 3):
                writer.write(step, {"loss": 1.0 / step})
    strip = lambda rows: [{k: v for k, v in r.items() if k != "wall_time"} for r in rows]
    assert strip(_jsonl(rewritten)) == strip(_jsonl(appended)) and len(_jsonl(rewritten)) == 3
    values = lambda workdir: [(s, v) for s, v, _ in _tensorboard_scalars(workdir)["loss"]]
    assert values(rewritten) == values(appended) == [(s, np.float32(1.0 / s)) for s in (1, 2, 3)]


def test_a_fresh_run_replaces_rows_left_in_its_workdir(tmp_path):
    (tmp_path / "metrics.jsonl").write_text(json.dumps({"step": 5, "loss": 1.0}) + "\n")
    with MetricsWriter(str(tmp_path), enabled=True) as writer:
        writer.write(1, {"loss": 2.0})
    assert [r["step"] for r in _jsonl(tmp_path)] == [1]


def test_disabled_writer_writes_nothing_and_still_checks_arguments(tmp_path):
    workdir = tmp_path / "not_created"
    writer = MetricsWriter(str(workdir), enabled=False, start_step=3)
    writer.write(4, _scalars(4))
    writer.flush()
    with pytest.raises(ValueError, match="step must be an integer > 4"):
        writer.write(4, _scalars(4))
    writer.close()
    assert not workdir.exists()

    (tmp_path / "metrics.jsonl").write_text("not json\n")  # a disabled writer does not even read
    MetricsWriter(str(tmp_path), enabled=False).close()
    assert os.listdir(tmp_path) == ["metrics.jsonl"]


def test_min_flush_interval_defers_writes_until_flush(tmp_path):
    writer = MetricsWriter(str(tmp_path), enabled=True, min_flush_interval_s=3600.0)
    assert _jsonl(tmp_path) == []  # the opening flush always happens
    writer.write(1, {"loss": 1.0})
    writer.write(2, {"loss": 0.5})
    assert _jsonl(tmp_path) == []
    writer.flush()
    assert [r["loss"] for r in _jsonl(tmp_path)] == [1.0, 0.5]
    writer.write(3, {"loss": 0.25})
    writer.close()
    assert [s for s, _, _ in _tensorboard_scalars(str(tmp_path))["loss"]] == [1, 2, 3]


@pytest.mark.parametrize("step, scalars, match", [
    (0, {"loss": 1.0}, "step must be an integer > 0"),
    (1.0, {"loss": 1.0}, "step must be an integer"),
    (True, {"loss": 1.0}, "step must be an integer"),
    (1, {}, "non-empty mapping"),
    (1, [("loss", 1.0)], "non-empty mapping"),
    (1, {"step": 1.0}, "other than"),
    (1, {"wall_time": 1.0}, "other than"),
    (1, {"loss": "low"}, "'loss' must be one real number"),
    (1, {"loss": np.ones(2)}, "'loss' must be one real number"),
])
def test_bad_writes_raise(tmp_path, step, scalars, match):
    writer = MetricsWriter(str(tmp_path), enabled=True)
    with pytest.raises(ValueError, match=match):
        writer.write(step, scalars)


def test_bad_construction_and_misuse_raise(tmp_path):
    with pytest.raises(ValueError, match="start_step must be an int >= 0"):
        MetricsWriter(str(tmp_path), enabled=True, start_step=-1)
    with pytest.raises(ValueError, match="min_flush_interval_s"):
        MetricsWriter(str(tmp_path), enabled=True, min_flush_interval_s=float("nan"))
    writer = MetricsWriter(str(tmp_path), enabled=True, start_step=10)
    with pytest.raises(ValueError, match="step must be an integer > 10"):
        writer.write(10, {"loss": 1.0})
    writer.write(11, {"loss": 1.0})
    with pytest.raises(ValueError, match="step must be an integer > 11"):
        writer.write(11, {"loss": 1.0})
    writer.close()
    with pytest.raises(ValueError, match="after close"):
        writer.write(12, {"loss": 1.0})
    (tmp_path / "metrics.jsonl").write_text('{"step": 1}\n{"step": 2, "loss": \n')
    with pytest.raises(ValueError, match="line 2, is not JSON"):
        MetricsWriter(str(tmp_path), enabled=True, start_step=5)
    (tmp_path / "metrics.jsonl").write_text('{"step": "1"}\n')
    with pytest.raises(ValueError, match='line 1, is not an object with an integer "step"'):
        MetricsWriter(str(tmp_path), enabled=True, start_step=5)
