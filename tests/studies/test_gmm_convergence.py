"""The GMM convergence study end to end on a reduced grid, and its config validation."""

import json
import os
import subprocess
import sys

import pytest

from configs import gmm_convergence as default_config
from diffserial.samplers import CONTINUOUS_SAMPLERS
from diffserial.studies import gmm_convergence, runner

REQUIRED_KEYS = {"study", "target", "sampler", "grid", "steps", "nfe", "d", "n_seeds", "tv", "tv_lo",
                 "tv_hi", "tv_floor", "seconds"}

pytestmark = pytest.mark.slow  # its module fixture runs a whole study


def _small_config(**overrides):
    c = default_config.get_config()
    c.dims = (1,)
    c.steps = (1, 2, 4, 8, 16, 32, 64)
    c.n_seeds = 20_000
    c.floor_reps = 50
    c.update(overrides)
    return c


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    workdir = str(tmp_path_factory.mktemp("gmm"))
    summary = runner.run_study(_small_config(), workdir)
    return workdir, summary


def test_every_sampler_converges_with_a_negative_slope(study):
    _, summary = study
    assert set(f["sampler"] for f in summary["fits"].values()) == set(CONTINUOUS_SAMPLERS)
    for name, fit in summary["fits"].items():
        assert fit["slope"] is not None and fit["n_used"] >= 2, (name, fit)
        assert fit["slope"] < -0.3, (name, fit)


def test_outputs_are_written(study):
    workdir, summary = study
    with open(os.path.join(workdir, "results.jsonl")) as f:
        rows = [json.loads(line) for line in f]
    assert len(rows) == 8 * 7
    assert [runner.point_key(gmm_convergence, r) for r in rows] == gmm_convergence.points(_small_config())
    assert all(REQUIRED_KEYS <= set(r) for r in rows)
    assert all(r["n_nonfinite"] == 0 and r["nfe"] >= r["steps"] for r in rows)
    with open(os.path.join(workdir, "summary.json")) as f:
        assert json.load(f) == summary
    assert os.path.getsize(os.path.join(workdir, "convergence.png")) > 10_000


@pytest.mark.parametrize("overrides, match", [
    (dict(samplers=("euler",)), "valid samplers"),
    (dict(grid="cosine"), "valid grids"),
    (dict(process="vp"), "valid processs"),
    (dict(steps=(0, 4)), "steps must be integers >= 1"),
    (dict(eps=1.0), r"must lie in \(0, 1\)"),
    (dict(prior="gaussian"), "prior must be one of"),
    (dict(n_seeds=0), "n_seeds must be >= 1"),
    (dict(eps_score=-1.0), "eps_score must be finite and >= 0"),
    (dict(process="ve_geometric", prior="process"), "needs a variance-preserving process"),
])
def test_bad_configs_raise_before_running(overrides, match):
    with pytest.raises(ValueError, match=match):
        gmm_convergence.validate(_small_config(**overrides))


def test_sample_py_cli(tmp_path):
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    cmd = [sys.executable, os.path.join(root, "sample.py"), f"--workdir={tmp_path}",
           "--config.samplers=('pf_heun',)", "--config.dims=(2,)", "--config.steps=(2,8)",
           "--config.n_seeds=2000", "--config.floor_reps=20"]
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=root, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "pf_heun" in out.stdout and "T=8" in out.stdout
    assert len(open(tmp_path / "results.jsonl").readlines()) == 2
