"""gmm_learned and parity_learned end to end at tiny sizes: training inside the study, and a train.py
workdir passed as config.checkpoint (what `sample.py --config.checkpoint=DIR` does)."""

import json
import os

import numpy as np
import pytest

from configs import gmm_learned as gmm_config
from configs import parity_learned as parity_config
from diffserial.studies import gmm_learned, parity_learned
from diffserial.studies.runner import point_key, run_study
from diffserial.training import loop


def _tiny_gmm(**overrides):
    c = gmm_config.get_config()
    c.train.model.update(dict(hidden=16, n_blocks=1, embed_dim=8))
    c.train.update(dict(batch_size=64, log_every=5, checkpoint_every=5))
    c.train.optimizer.warmup_steps = 1
    c.update(dict(train_steps=(3, 6), samplers=("euler_maruyama", "pf_heun"), steps=(1, 4), n_seeds=512,
                  floor_reps=5, block_size=64, eps_score_times=4, eps_score_samples=64))
    c.update(overrides)
    return c


@pytest.mark.slow
def test_gmm_learned_trains_and_reports(tmp_path):
    summary = run_study(_tiny_gmm(), str(tmp_path))
    rows = [json.loads(line) for line in open(tmp_path / "results.jsonl")]
    assert len(rows) == 3 * 2 * 2 and {r["model"] for r in rows} == {"exact", "train_3", "train_6"}
    assert [point_key(gmm_learned, r) for r in rows] == gmm_learned.points(_tiny_gmm())
    assert all(r["eps_score_measured"] == 0 for r in rows if r["model"] == "exact")
    assert all(r["eps_score_measured"] > 0 for r in rows if r["model"] != "exact")
    assert {r["train_steps"] for r in rows} == {0, 3, 6}
    assert os.path.isdir(tmp_path / "train_6" / "checkpoints" / "6")
    assert summary["trend"]["pf_heun"]["train_steps"] == [3, 6]
    assert (tmp_path / "learned_convergence.png").exists()


def test_gmm_learned_from_checkpoint(tmp_path):
    train = _tiny_gmm().train
    train.total_steps = 4
    loop.train(train, str(tmp_path / "model"))
    run_study(_tiny_gmm(checkpoint=str(tmp_path / "model")), str(tmp_path / "study"))
    rows = [json.loads(line) for line in open(tmp_path / "study" / "results.jsonl")]
    assert {r["model"] for r in rows} == {"exact", "checkpoint"}
    assert {r["train_steps"] for r in rows if r["model"] == "checkpoint"} == {4}


@pytest.mark.slow
def test_parity_learned_runs(tmp_path):
    c = parity_config.get_config()
    c.train.n = 4
    c.train.model.width = 16
    c.train.update(dict(batch_size=32, log_every=2, checkpoint_every=2))
    c.train.optimizer.warmup_steps = 1
    c.update(dict(train_steps=2, samplers=("ancestral", "revision"), steps=(1, 2), n_seeds=256, floor_reps=5,
                  block_size=64))
    run_study(c, str(tmp_path))
    rows = [json.loads(line) for line in open(tmp_path / "results.jsonl")]
    assert [point_key(parity_learned, r) for r in rows] == parity_learned.points(c)
    assert {(r["predictor"], r["sampler"]) for r in rows} == {
        (p, s) for p in ("exact", "transformer") for s in ("ancestral", "revision")}
    assert all(0 <= r["odd_rate"] <= 1 and np.isfinite(r["tv"]) for r in rows)
    exact = [r for r in rows if r["predictor"] == "exact" and r["sampler"] == "ancestral"]
    assert all(abs(r["tv"] - r["tv_closed_form"]) < 0.15 for r in exact)


@pytest.mark.parametrize("module, config, change, match", [
    (gmm_learned, gmm_config, dict(train_steps=()), "train_steps"),
    (gmm_learned, gmm_config, dict(checkpoint="/nonexistent"), "not a train.py workdir"),
    (gmm_learned, gmm_config, dict(samplers=("nope",)), "unknown sampler"),
    (parity_learned, parity_config, dict(models=("mamba",)), "unknown model"),
    (parity_learned, parity_config, dict(samplers=("nope",)), "unknown sampler"),
])
def test_bad_configs(module, config, change, match):
    c = config.get_config()
    c.update(change)
    with pytest.raises(ValueError, match=match):
        module.validate(c)
