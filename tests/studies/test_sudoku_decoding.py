"""The Sudoku decoding study end to end on a few puzzles: outputs, the seed -> puzzle map, and the
pattern the fixed-depth denoiser must show (all at once = what r rounds solve; one cell per step in
confidence order solves every no-guess puzzle; a random order does not); bad configs fail early."""

import json
import math
import os

import jax
import numpy as np
import pytest

from configs import sudoku_decoding as default_config
from diffserial.samplers import seed_mesh
from diffserial.studies import runner, sudoku_decoding as study

pytestmark = pytest.mark.slow  # its module fixture runs a whole study


def _small_config(**overrides):
    c = default_config.get_config()
    c.buckets = ("easy", "medium")
    c.n_puzzles = 8
    c.samplers = ("topk_confidence", "topk_random")
    c.tokens_per_step = (81, 1)
    c.rounds = (1,)
    c.block_size = 4
    c.update(overrides)
    return c


@pytest.fixture(scope="module")
def outputs(tmp_path_factory):
    workdir = str(tmp_path_factory.mktemp("sudoku"))
    summary = runner.run_study(_small_config(), workdir, mesh=seed_mesh(jax.devices()[:2]))
    rows = [json.loads(line) for line in open(os.path.join(workdir, "results.jsonl"))]
    return workdir, rows, summary


def _row(rows, **kw):
    (row,) = [r for r in rows if all(r[k] == v for k, v in kw.items())]
    return row


def test_writes_rows_summary_and_plot(outputs):
    workdir, rows, summary = outputs
    assert len(rows) == len(study.points(_small_config())) == 8
    assert [runner.point_key(study, r) for r in rows] == study.points(_small_config())
    assert os.path.getsize(os.path.join(workdir, "accuracy_vs_tokens_per_step.png")) > 10_000
    with open(os.path.join(workdir, "summary.json")) as f:
        assert json.load(f) == summary
    assert summary["published"]["parallel_accuracy"] == {"easy": 0.994, "medium": 0.536, "hard": 0.008}
    for r in rows:
        assert r["steps"] == math.ceil(study.max_blanks(r["bucket"]) / r["tokens_per_step"])
        assert r["n_seeds"] == 8 and r["acc_lo"] <= r["accuracy"] <= r["acc_hi"]
        assert {"study", "bucket", "sampler", "tokens_per_step", "steps", "n_puzzles", "rounds", "seconds"} <= set(r)


def test_all_at_once_is_what_the_rounds_solve_and_the_same_for_every_order(outputs):
    _, rows, _ = outputs
    for bucket in ("easy", "medium"):
        conf, rand = (_row(rows, bucket=bucket, sampler=s, tokens_per_step=81) for s in ("topk_confidence", "topk_random"))
        assert conf["accuracy"] == rand["accuracy"] >= conf["solved_by_rounds"]
    assert _row(rows, bucket="medium", sampler="topk_confidence", tokens_per_step=81)["accuracy"] < 0.5


def test_one_cell_per_step_in_confidence_order_solves_every_no_guess_puzzle(outputs):
    _, rows, _ = outputs
    for bucket in ("easy", "medium"):
        conf = _row(rows, bucket=bucket, sampler="topk_confidence", tokens_per_step=1)
        assert conf["accuracy_depth0"] == 1.0, conf
    medium = {s: _row(rows, bucket="medium", sampler=s, tokens_per_step=1)["accuracy"]
              for s in ("topk_confidence", "topk_random")}
    assert medium["topk_random"] < medium["topk_confidence"] - 0.3, medium  # order matters


def test_seed_i_decodes_puzzle_i_mod_p():
    key = jax.random.key(5)
    prompts = np.arange(6 * 81, dtype=np.int32).reshape(6, 81) % 10
    init = jax.tree_util.Partial(study.puzzle_of_seed, study.init_key_table(key, 6), prompts)
    got = jax.vmap(lambda i: init(jax.random.fold_in(jax.random.fold_in(key, i), 0)))(np.arange(6, dtype=np.uint32))
    np.testing.assert_array_equal(np.asarray(got), prompts)
    # through the driver on the study's own compiled program (same shapes as the fixture's run): every seed
    # keeps the givens of puzzle i mod 4
    puzzles = study.generate_puzzles("medium", 4, key)
    config = _small_config(n_puzzles=4, samples_per_puzzle=2)
    init = jax.tree_util.Partial(study.puzzle_of_seed, study.init_key_table(key, 8), study.seed_prompts(puzzles, 8))
    tokens = study.sample(config, init, "topk_random", 81, 1, 1, key, seed_mesh(jax.devices()[:2]), pad_to=54)
    for i, row in enumerate(tokens):
        givens = puzzles.puzzles[i % 4] > 0
        np.testing.assert_array_equal(row[givens], puzzles.puzzles[i % 4][givens] - 1)
    assert len({row.tobytes() for row in tokens[:4]}) == 4 and not (tokens == 9).any()


@pytest.mark.parametrize("field, value, match", [
    ("buckets", ("easy", "expert"), "bucket"), ("samplers", ("maskgit",), "tokens-per-step"),
    ("tokens_per_step", (81, 0), "tokens_per_step"), ("tokens_per_step", (82,), "tokens_per_step"),
    ("rounds", (0,), "rounds"), ("rounds", (), "rounds"), ("n_puzzles", 0, "n_puzzles"),
    ("samples_per_puzzle", 0, "samples_per_puzzle"), ("schedule", "square", "schedule"),
    ("tokens_per_step", (9, 9), "duplicates")])
def test_bad_config_raises_before_running(field, value, match):
    with pytest.raises(ValueError, match=match):
        study.validate(_small_config(**{field: value}))


def test_paper_scale_is_valid_and_unknown_scale_raises():
    study.validate(default_config.get_config("paper"))
    with pytest.raises(ValueError, match="scale"):
        default_config.get_config("huge")
