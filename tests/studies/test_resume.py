"""Resuming a study: results.jsonl kept (a torn last line dropped), done points skipped by every study, the
rerun's rows and summary those of an uninterrupted run, and the config.json rule."""

import json
import os

import pytest

from configs import gmm_convergence as gmm_config
from diffserial.studies import gmm_convergence, report, runner
from diffserial.training import resume

TIMING = ("seconds",)


class Killed(BaseException):
    """What a kill looks like to the study: not an Exception, so nothing on the way catches it."""


def _tiny(**overrides):
    c = gmm_config.get_config()
    c.update(dict(dims=(1,), samplers=("pf_heun",), steps=(1, 2, 4), n_seeds=1024, floor_reps=5,
                  block_size=512))
    c.update(overrides)
    return c


def _rows(workdir):
    rows = report.read_jsonl(os.path.join(workdir, "results.jsonl"))
    return [{k: v for k, v in r.items() if k not in TIMING} for r in rows]


def test_resume_jsonl_drops_a_torn_last_line(tmp_path):
    path = str(tmp_path / "results.jsonl")
    assert report.resume_jsonl(path) == []
    for row in ({"a": 1}, {"a": 2}):
        report.append_jsonl(path, row)
    with open(path, "a") as f:
        f.write('{"a": 3, "b"')  # a kill in the middle of an append
    assert report.resume_jsonl(path) == [{"a": 1}, {"a": 2}]
    assert open(path).read() == '{"a": 1}\n{"a": 2}\n'
    with open(path, "a") as f:
        f.write('{"a": 3}')  # cut between the row and its newline: the row is whole
    assert report.resume_jsonl(path) == [{"a": 1}, {"a": 2}, {"a": 3}]
    assert open(path).read().endswith('{"a": 3}\n')
    with open(path, "w") as f:
        f.write('{"a": 1}\nnot json\n{"a": 2}\n')
    with pytest.raises(ValueError, match="line 2, is not JSON"):
        report.resume_jsonl(path)


def test_a_study_killed_mid_run_resumes_to_the_rows_of_an_uninterrupted_run(tmp_path, monkeypatch, capsys):
    straight, killed = str(tmp_path / "straight"), str(tmp_path / "killed")
    summary = runner.run_study(_tiny(), straight)

    real, calls = gmm_convergence.measure, []

    def measure(*args, **kwargs):
        calls.append(args[5:7])  # (sampler, steps) of the point
        if len(calls) == 3:
            raise Killed("while measuring the 3rd point")
        return real(*args, **kwargs)

    monkeypatch.setattr(gmm_convergence, "measure", measure)
    with pytest.raises(Killed):
        runner.run_study(_tiny(), killed)
    with open(os.path.join(killed, "results.jsonl"), "a") as f:
        f.write('{"d": 1, "sampler": "pf_he')  # as if the kill had come during the next append
    calls.clear()
    assert runner.run_study(_tiny(), killed) == summary
    assert calls == [("pf_heun", 4)]  # only the point not in results.jsonl
    assert _rows(killed) == _rows(straight)
    assert "3 rows, 2 of them from an earlier run" in capsys.readouterr().out

    calls.clear()
    listed = r"  n_seeds: 1024 -> 2048\n  steps: \[1, 2, 4\] -> \[1, 2, 4, 8\]\n"
    with pytest.raises(resume.ConfigChangedError, match=listed):
        runner.run_study(_tiny(n_seeds=2048, steps=(1, 2, 4, 8)), killed)
    assert calls == []
    runner.run_study(_tiny(steps=(1, 2, 4, 8), allow_config_change=True), killed)
    assert calls == [("pf_heun", 8)]  # the new point only
    assert json.load(open(os.path.join(killed, "config.1.json")))["steps"] == [1, 2, 4]
    assert len(_rows(killed)) == 4


@pytest.mark.parametrize("name", sorted(runner.studies()))
def test_every_study_skips_its_done_points(tmp_path, name):
    """run(..., done=every point) measures (and trains) nothing; points are distinct and POINT_KEYS long."""
    study = runner.studies()[name]
    config = __import__(f"configs.{name}", fromlist=["get_config"]).get_config()
    points = study.points(config)
    assert len(set(points)) == len(points) and {len(p) for p in points} == {len(study.POINT_KEYS)}
    assert list(study.run(config, workdir=str(tmp_path), done=frozenset(points))) == []
    assert os.listdir(tmp_path) == []
