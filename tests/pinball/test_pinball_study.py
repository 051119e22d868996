"""The pinball study end to end on a tiny config, its fit and interval helpers, and config validation."""

import json
import math
import os

import numpy as np
import pytest

from configs import pinball as default_config
from diffserial.studies import pinball, runner

pytestmark = pytest.mark.slow  # its module fixture runs a whole study


def _tiny_config(**overrides):
    c = default_config.get_config()
    c.leak_words = ("ab",)
    c.leak_seeds = (64,)
    c.leak_cells = (4.0, 12.0)
    c.programs = ("increment",)
    c.words_per_program = 1
    c.program_seeds = 16
    c.trajectory_points = 50
    c.update(overrides)
    return c


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    workdir = str(tmp_path_factory.mktemp("pinball"))
    return workdir, runner.run_study(_tiny_config(), workdir)


def test_outputs(study):
    workdir, summary = study
    with open(os.path.join(workdir, "results.jsonl")) as f:
        rows = [json.loads(line) for line in f]
    assert [r["sweep"] for r in rows] == ["leak", "leak", "programs", "trajectory"]
    assert [runner.point_key(pinball, r) for r in rows] == pinball.points(_tiny_config())
    leak = rows[:2]
    assert all(r["n_nonfinite"] == 0 and 0 <= r["p_correct"] <= 1 and r["machine_steps"] == 5 for r in leak)
    assert leak[1]["p_correct"] >= 0.9  # L = 12 is far past the leak regime of a 5-step run
    assert rows[2]["p_correct"] == 1.0  # increment, one machine step at L = 8
    assert np.asarray(rows[3]["y"]).shape[1] == 5
    with open(os.path.join(workdir, "summary.json")) as f:
        assert json.load(f) == summary
    assert summary["leak_fits"]["ab"]["machine_steps"] == 5
    for name in ("pinball_leak.png", "pinball_trajectory.png"):
        assert os.path.getsize(os.path.join(workdir, name)) > 10_000


def test_fit_recovers_an_exact_exponential():
    cells = [3.0, 4.0, 5.0, 6.0]
    rows = [{"cell": c, "n_seeds": 10_000, "p_leak": 0.5 * math.exp(-0.2 * (c * c - 9))} for c in cells]
    fit = pinball.fit_leak_slope(rows, max_leak=0.6, min_events=3)
    assert fit["slope"] == pytest.approx(-0.2, rel=1e-9) and fit["intercept"] == pytest.approx(math.log(0.5) + 1.8)
    # weights n p / (1 - p): the standard error of a 2-point fit is sqrt(1/w1 + 1/w2) / (x2 - x1)
    two = pinball.fit_leak_slope(rows[:2], 0.6, 3)
    w = [r["n_seeds"] * r["p_leak"] / (1 - r["p_leak"]) for r in rows[:2]]
    assert two["slope_se"] == pytest.approx(math.sqrt(1 / w[0] + 1 / w[1]) / (16 - 9))
    assert pinball.fit_leak_slope(rows[:1], 0.6, 3)["slope"] is None


@pytest.mark.parametrize("overrides, match", [
    (dict(leak_program="fib"), "valid programs"),
    (dict(programs=("add", "sort")), "valid programs"),
    (dict(leak_seeds=(64, 64)), "one seed count per leak word"),
    (dict(leak_cells=(0.5,)), "cell side L"),
    (dict(blend=0.6), "blend"),
    (dict(step_size=0.0), "step_size"),
    (dict(leak_words=("abc",)), "outside the alphabet"),
    (dict(target_correct=1.0), "target_correct"),
    (dict(program_seeds=0), "program_seeds"),
])
def test_bad_configs(overrides, match):
    with pytest.raises(ValueError, match=match):
        pinball.validate(_tiny_config(**overrides))
