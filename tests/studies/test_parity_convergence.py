"""The parity study end to end on a reduced grid: closed form, constructions, window predictor."""

import json
import os

import pytest

from configs import parity_convergence as default_config
from diffserial.studies import parity_convergence, runner

pytestmark = pytest.mark.slow  # its module fixture runs a whole study


def _small_config(**overrides):
    c = default_config.get_config()
    c.ns = (6, 64)
    c.samplers = ("ancestral", "first_hitting", "parity_revision", "parity_remask")
    c.steps = (2, 4, 64)
    c.n_seeds = 8192
    c.floor_reps = 50
    c.update(overrides)
    return c


@pytest.fixture(scope="module")
def rows(tmp_path_factory):
    workdir = str(tmp_path_factory.mktemp("parity"))
    runner.run_study(_small_config(), workdir)
    with open(os.path.join(workdir, "results.jsonl")) as f:
        out = [json.loads(line) for line in f]
    assert [runner.point_key(parity_convergence, r) for r in out] == parity_convergence.points(_small_config())
    assert os.path.getsize(os.path.join(workdir, "parity_odd_rate.png")) > 10_000
    assert os.path.exists(os.path.join(workdir, "parity_tv.png"))
    return out


def _row(rows, **kw):
    (row,) = [r for r in rows if all(r[k] == v for k, v in kw.items())]
    return row


def test_ancestral_with_exact_oracle_matches_the_closed_form(rows):
    for steps in (2, 4):
        r = _row(rows, n=6, predictor="exact", sampler="ancestral", steps=steps)
        assert r["odd_lo"] <= r["tv_closed_form"] <= r["odd_hi"], r
        assert r["tv_lo"] - 0.02 <= r["tv_closed_form"] <= r["tv_hi"] + 0.02, r


def test_constructions_sample_parity_exactly_in_constant_rounds(rows):
    for n in (6, 64):
        for name in ("parity_revision", "parity_remask"):
            r = _row(rows, n=n, sampler=name, steps=4)
            assert r["odd_rate"] == 0.0 and r["n_unfinished"] == 0, r
    for name in ("parity_revision", "parity_remask"):
        r = _row(rows, n=6, sampler=name, steps=4)
        assert r["tv"] < r["tv_floor_q95"] * 1.5, r


def test_first_hitting_with_exact_oracle_reaches_the_floor_but_window_predictor_fails(rows):
    exact = _row(rows, n=6, predictor="exact", sampler="first_hitting", steps=64)
    assert exact["odd_rate"] == 0.0 and exact["tv"] < 1.5 * exact["tv_floor_q95"]
    window = _row(rows, n=64, predictor="window", sampler="first_hitting", steps=64)
    assert window["odd_lo"] > 0.4, window  # the last reveal cannot see the whole string


def test_bad_config():
    with pytest.raises(ValueError, match="valid samplers"):
        parity_convergence.validate(_small_config(samplers=("nope",)))
    with pytest.raises(ValueError, match="predictors must be among"):
        parity_convergence.validate(_small_config(predictors=("oracle",)))
