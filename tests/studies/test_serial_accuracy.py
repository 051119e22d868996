"""The serial-task accuracy study: sampling + scoring against an exact oracle (accuracy 1) and a wrong one
(accuracy 0), the interval against scipy, a tiny end-to-end run of each code path (masked, cot, supervised,
continuous), and bad configs."""

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import serial_accuracy as serial_config
from diffserial import serial_tasks
from diffserial.metrics.intervals import clopper_pearson
from diffserial.models.continuous_answer import BinaryCode
from diffserial.processes.gaussian import VPLinear
from diffserial.samplers import seed_mesh
from diffserial.studies import runner, serial_accuracy, serial_continuous
from diffserial.training import tasks


def _tiny(**overrides):
    c = serial_config.get_config()
    c.tasks = ("parity",)
    c.sizes.parity = (3,)
    c.families = tuple(serial_accuracy.FAMILIES)  # every family (the small default has three)
    c.train_steps = 4
    c.continuous_train_steps = 4
    c.train.optimizer.warmup_steps = 1
    c.train.batch_size = 16
    c.train.log_every = 2
    for family in ("transformer", "looped", "recurrent"):
        c.models[family].width = 8
    c.models.transformer.depth = 1
    c.n_seeds = 64
    c.block_size = 32
    c.steps = (1, 2)
    for k, v in overrides.items():
        c[k] = v
    return c


def _parity_oracle(flip, x, t):
    """Exact predictor of [prompt, prefix parities h_1 h_2, parity] (n = 3) from the prompt alone, as one-hot
    logits; with flip = 1 the answer position predicts the wrong bit."""
    bits = x[:3]
    seq = jnp.concatenate([bits, jnp.cumsum(bits)[:-1] % 2, (jnp.sum(bits) + flip)[None] % 2])
    return 30.0 * jax.nn.one_hot(seq, 2)


@pytest.mark.parametrize("sampler", serial_config.get_config().samplers)
def test_oracle_predictor_scores_exactly(sampler):
    n = 3
    c = _tiny()
    layout = tasks.serial_layout(serial_accuracy.train_config(c, "parity", n, "cot"))
    mesh = seed_mesh(jax.devices()[:2])
    for flip, expected in ((0, 1.0), (1, 0.0)):  # the flip is a traced leaf: one compiled program
        predictor = jax.tree_util.Partial(_parity_oracle, jnp.int32(flip))
        for steps in (1, 2, layout.generated_len):
            tokens = np.asarray(serial_accuracy.sample(c, layout, predictor, sampler, steps,
                                                       jax.random.key(0), mesh, pad_to=layout.generated_len))
            prompts = tokens[:, :n]
            assert len({tuple(p) for p in prompts}) > 4  # each seed draws its own instance
            row = serial_accuracy.measure(layout, tokens)
            assert row["n_unfinished"] == 0 and row["accuracy"] == expected
            # numpy reference of the checker
            assert np.mean(tokens[:, -1] == prompts.sum(1) % 2) == expected
            assert row["best_constant"] == max(np.mean(prompts.sum(1) % 2), 1 - np.mean(prompts.sum(1) % 2))


def _one_token_by_counting(prompt, truth):
    """best_one_token by plain Python counting: per position and token value, the most common answer."""
    best = 0
    for p in range(prompt.shape[1]):
        groups = {}
        for v, a in zip(prompt[:, p], map(tuple, truth)):
            groups.setdefault(v, []).append(a)
        best = max(best, sum(max(g.count(a) for a in set(g)) for g in groups.values()))
    return best / len(truth)


def test_best_one_token_guess():
    rng = np.random.default_rng(0)
    prompt = rng.integers(0, 4, (300, 5))
    copy = prompt[:, 2:3]  # one token decides the answer
    xor = (prompt[:, :1] + prompt[:, 1:2]) % 4  # no single token tells anything
    gated = np.where(prompt[:, :1] == 0, 0, xor)  # token 0 decides a quarter of the answers
    for truth in (copy, xor, gated, np.concatenate([copy, xor], 1)):
        assert serial_accuracy.best_one_token(prompt, truth) == pytest.approx(_one_token_by_counting(prompt, truth))
    assert serial_accuracy.best_one_token(prompt, copy) == 1.0
    assert serial_accuracy.best_one_token(prompt, xor) < 0.4 < serial_accuracy.best_one_token(prompt, gated)


def _answer_oracle(x, t):
    """Exact predictor of [prompt, parity] (n = 3, no chain of thought) as one-hot logits."""
    return 30.0 * jax.nn.one_hot(jnp.concatenate([x[:3], jnp.sum(x[:3], keepdims=True) % 2]), 2)


def _point_mass_score(process, prompt, y, t):
    """Exact score of N(m_t c, s_t^2) with c = 2 parity(prompt) - 1, the codeword of the right answer."""
    m, s = process.marginal(t)
    return -(y - m * (2.0 * (jnp.sum(prompt) % 2) - 1.0)) / s**2


def test_continuous_family_is_paired_with_the_masked_families():
    n, c = 3, _tiny()
    masked_layout = tasks.serial_layout(serial_accuracy.train_config(c, "parity", n, "transformer"))
    layout = tasks.serial_layout(serial_accuracy.train_config(c, "parity", n, "continuous"))
    process = VPLinear()
    model = tasks.ContinuousAnswer(jax.tree_util.Partial(_point_mass_score, process), process, BinaryCode(2),
                                   layout, 1e-3)
    mesh = seed_mesh(jax.devices()[:2])
    masked = np.asarray(serial_accuracy.sample(c, masked_layout, _answer_oracle, "topk_confidence", 1,
                                               jax.random.key(4), mesh, pad_to=1))
    cont = np.asarray(serial_continuous.sample_sequences(model, "ancestral", 2, key=jax.random.key(4),
                                                         n_seeds=c.n_seeds, mesh=mesh, block_size=c.block_size))
    np.testing.assert_array_equal(cont[:, :n], masked[:, :n])  # the same prompt per seed
    assert serial_accuracy.measure(layout, cont)["accuracy"] == 1.0


def test_steps_and_loops():
    c = _tiny(steps=(1, 2, 4, 8, 16))
    assert serial_accuracy.steps_for(c, 1) == [1]
    assert serial_accuracy.steps_for(c, 9) == [1, 2, 4, 8, 9]
    assert serial_accuracy.family_steps(c, "supervised", 9) == [1]  # one-shot: trained at full masking only
    assert serial_accuracy.family_steps(c, "continuous", 1) == [1, 2, 4, 8, 16]
    assert serial_accuracy.loops_for(c, 3) == 2 and serial_accuracy.loops_for(c, 8) == 4
    assert serial_accuracy.train_config(c, "s5", 8, "looped").model.loops == 4
    assert serial_accuracy.train_config(c, "circuit_value", 3, "cot").task_args.depth == 3
    assert serial_accuracy.train_config(c, "circuit_value", 3, "cot").cot
    assert not serial_accuracy.train_config(c, "circuit_value", 1, "cot").cot  # depth 1: no layer to write down
    assert serial_accuracy.train_config(c, "arithmetic_circuit", 3, "cot").task_args.p == c.arithmetic_modulus
    billiards = serial_accuracy.train_config(c, "billiards_free_flight", 5, "cot").task_args
    assert (billiards.steps, billiards.height, billiards.width) == (5, c.billiards_side, c.billiards_side)


def test_flop_estimate_scales_with_steps_and_seeds():
    c = _tiny()
    base = serial_accuracy.flop_estimate(c)
    more = serial_accuracy.flop_estimate(_tiny(train_steps=8, continuous_train_steps=8, n_seeds=128))
    assert more["train"] == pytest.approx(2 * base["train"]) and more["sample"] == pytest.approx(2 * base["sample"])
    # one transformer run: steps * batch * L * 6 (12 D^2 k + 2 L D k), parity n = 3 -> L = 4, D = 8, k = 1
    one = serial_accuracy.flop_estimate(_tiny(families=("transformer",)))["train"]
    assert one == 4 * 16 * 4 * 6 * (12 * 64 + 2 * 4 * 8)


def test_every_sized_task_validates_at_its_default_sizes():
    c = _tiny(tasks=serial_accuracy.SIZED_TASKS, families=("cot",))  # builds every (task, n) cot layout
    serial_accuracy.validate(c)
    assert {t for t, _, _ in serial_accuracy.runs(c)} == set(serial_accuracy.SIZED_TASKS)


@pytest.mark.slow
def test_tiny_end_to_end(tmp_path):
    """The study's four code paths, one family each: a masked NELBO model without and with chain of thought
    (transformer, cot; looped and recurrent differ from transformer only in the network, trained and sampled
    in tests/training/test_loop.py and tests/models), the supervised baseline (T = 1 only) and the continuous
    family (its own samplers and every T)."""
    c = _tiny(families=("transformer", "cot", "supervised", "continuous"), samplers=("topk_confidence",),
              continuous_samplers=("dpm_solver_pp_2m",))
    summary = runner.run_study(c, str(tmp_path), mesh=seed_mesh(jax.devices()[:2]))
    rows = [json.loads(line) for line in open(tmp_path / "results.jsonl")]
    assert [runner.point_key(serial_accuracy, r) for r in rows] == serial_accuracy.points(c)
    assert {r["family"] for r in rows} == set(c.families)
    cont = [r for r in rows if r["family"] == "continuous"]  # every T of c.steps, the continuous samplers
    assert [(r["sampler"], r["steps"], r["schedule"]) for r in cont] == [("dpm_solver_pp_2m", t, "vp_linear")
                                                                         for t in (1, 2)]
    assert all(set(r) == set(rows[0]) for r in cont)  # the masked families' row keys
    assert json.load(open(tmp_path / "train_parity_n3_continuous" / "config.json"))["task"] == "serial_continuous"
    for r in rows:
        assert 0.0 <= r["accuracy_lo"] <= r["accuracy"] <= r["accuracy_hi"] <= 1.0
        assert r["n_unfinished"] == 0 and r["n_seeds"] == c.n_seeds and r["train_steps"] == c.train_steps
    cot_steps = sorted(r["steps"] for r in rows if r["family"] == "cot")
    assert cot_steps == [1, 2, 3]  # G = 2 cot (h_1, h_2) + 1 answer
    assert [r["steps"] for r in rows if r["family"] == "supervised"] == [1]
    assert set(summary["accuracy_vs_n"]) == {f"parity/{f}/{s}" for f in c.families
                                             for s in serial_accuracy.samplers_for(c, f)}
    for name in ("summary.json", "accuracy_vs_steps.png", "accuracy_vs_n.png", "plateau_vs_n.png", "cot_rounds.png"):
        assert os.path.exists(tmp_path / name)
    assert set(summary["training"]) == {f"parity/3/{f}" for f in c.families}
    assert all(r["train_steps_per_s"] > 0 for r in rows)  # 2 logged intervals: the second one's speed
    assert os.path.isdir(tmp_path / "train_parity_n3_cot" / "checkpoints")


@pytest.mark.parametrize("field, value, message", [
    ("tasks", ("nope",), "valid: parity"),
    ("families", ("mlp",), "unknown family"),
    ("samplers", ("nope",), "unknown sampler"),
    ("continuous_samplers", ("topk_confidence",), "unknown continuous sampler"),
    ("steps", (), "must not be empty"),
    ("n_seeds", 0, "n_seeds must be an integer >= 1"),
    ("loops_per_n", 0.0, "loops_per_n must be > 0"),
])
def test_bad_configs(field, value, message):
    c = _tiny()
    c[field] = value
    with pytest.raises(ValueError, match=message):
        serial_accuracy.validate(c)


def test_per_task_training_steps():
    """config.train_steps_by_task.TASK overrides config.train_steps for the masked families on that task only
    (the continuous family keeps continuous_train_steps); None means config.train_steps; bad values raise."""
    c = _tiny(tasks=("parity", "majority"))
    c.sizes.majority = (3,)
    c.train_steps_by_task.parity = 6
    families = ("transformer", "cot", "supervised", "continuous")
    assert [serial_accuracy.train_config(c, "parity", 3, f).total_steps for f in families] == [6, 6, 6, 4]
    assert serial_accuracy.train_config(c, "majority", 3, "cot").total_steps == c.train_steps == 4
    serial_accuracy.validate(c)
    c.train_steps_by_task.parity = 0
    with pytest.raises(ValueError, match="train_steps_by_task.parity must be an integer >= 1 or None"):
        serial_accuracy.validate(c)


@pytest.mark.parametrize("sizes, message", [((0,), "sizes.parity must be integers >= 1"),
                                            ((), "sizes.parity must list the sizes")])
def test_bad_sizes(sizes, message):
    c = _tiny()
    c.sizes.parity = sizes
    with pytest.raises(ValueError, match=message):
        serial_accuracy.validate(c)


def test_bad_training_config_and_scale():
    c = _tiny(train_steps=1)  # warmup 1 is not < total 1
    with pytest.raises(ValueError, match="warmup_steps"):
        serial_accuracy.validate(c)
    with pytest.raises(ValueError, match="unknown scale"):
        serial_config.get_config("huge")
    paper = serial_config.get_config("paper")
    small = serial_config.get_config()
    assert all(max(paper.sizes[t]) > max(small.sizes[t]) for t in small.tasks) and paper.train_steps > 10_000


def test_training_log_and_evidence(tmp_path):
    losses = [10.0, 8.0, 6.0, 5.0, 4.0, 3.5, 3.0, 2.8, 2.7, 2.6]
    with open(tmp_path / "metrics.jsonl", "w") as f:
        for i, loss in enumerate(losses):  # steps 100..1000; the first interval (compilation) is slow
            f.write(json.dumps({"step": 100 * (i + 1), "loss": loss,
                                "examples_per_s": 10.0 if i == 0 else 100.0 * (i + 1)}) + "\n")
    log = serial_accuracy.training_log(str(tmp_path), batch_size=10)
    assert log["final_loss"] == 2.6 and log["loss_at_three_quarters"] == 2.8  # step 800 >= 750
    assert log["train_steps_per_s"] == np.median([10.0 * (i + 1) for i in range(1, 10)])
    row = {"task": "rule110", "n": 2, "family": "cot", "loss_uniform": 13.0, "answer_token_accuracy": 0.9, **log}
    e = serial_accuracy.training_evidence([row, {**row, "steps": 2}])["rule110/2/cot"]
    assert e["loss_fraction"] == pytest.approx(2.6 / 13.0)
    assert e["last_quarter_gain"] == pytest.approx(0.2 / 13.0) and e["answer_token_accuracy"] == 0.9
    assert serial_accuracy.training_log(str(tmp_path / "none"), 10)["final_loss"] is None


def _rule110_next(rows):
    """Rule 110 on each periodic row (..., w), written out here: new_c = bit (4 l + 2 c + r) of 110."""
    code = 4 * jnp.roll(rows, 1, axis=-1) + 2 * rows + jnp.roll(rows, -1, axis=-1)
    return jnp.right_shift(110, code) & 1


def test_token_accuracy_teacher_forced_sees_one_learned_step_that_the_all_masked_one_misses():
    """A predictor that knows one automaton step (each cell from its three parents in the row above, when they
    are visible; else 0) is right on every token teacher-forced, but from the prompt alone only on the first cot
    row and where the truth happens to be 0."""
    steps, width = 3, 7
    task = serial_tasks.rule110_cell_task(steps)
    layout = tasks.SerialLayout(task, prompt_len=width, cot_len=task.cot_len, answer_len=1)
    vocab, length = task.vocab_size, layout.length

    def one_step(x, t):  # the sequence is rows 0 .. N in raster order, up to the middle cell of row N
        rows = jnp.pad(x, (0, (steps + 1) * width - length), constant_values=vocab).reshape(steps + 1, width)
        visible = rows < vocab
        parents = visible & jnp.roll(visible, 1, -1) & jnp.roll(visible, -1, -1)
        guess = jnp.where(parents, _rule110_next(jnp.where(visible, rows, 0)), 0)[:-1].reshape(-1)  # rows 1 .. N
        return jax.nn.one_hot(jnp.concatenate([x[:width], guess[:length - width]]), vocab + 1)

    key = jax.random.key(3)
    out = serial_accuracy.token_accuracy(layout, one_step, key, 300)
    assert out["cot_teacher_forced_accuracy"] == 1.0 and out["teacher_forced_exact"] == 1.0
    seqs = np.stack([np.asarray(layout.sequence(task.sample_one(jax.random.fold_in(key, i)))) for i in range(300)])
    later = seqs[:, 2 * width:-1]  # cot after its first row: right from the prompt alone only where it is 0
    assert out["cot_token_accuracy"] == pytest.approx(np.mean((width + (later == 0).sum(1)) / task.cot_len))
    zero_answer = np.mean(seqs[:, -1] == 0)
    assert out["answer_argmax_accuracy"] == pytest.approx(zero_answer) and zero_answer < 0.9


def _row(n, family, steps, accuracy, const=0.5, sampler="topk_confidence", seeds=1000):
    lo, hi = clopper_pearson(round(accuracy * seeds), seeds)
    return {"task": "parity", "n": n, "family": family, "sampler": sampler, "steps": steps, "accuracy": accuracy,
            "accuracy_lo": lo, "accuracy_hi": hi, "best_constant": const, "best_one_token": const,
            "generated_len": steps,
            "final_loss": 0.1}


def _cliff_rows(cot_large):
    """Transformer 1.0 -> chance, cot 1.0 -> cot_large at T = G = 9 (0.5 at T = 1), ancestral all at chance."""
    rows = [_row(4, "transformer", 1, 1.0), _row(8, "transformer", 1, 0.5), _row(4, "cot", 1, 1.0),
            _row(4, "cot", 5, 1.0), _row(8, "cot", 1, 0.5), _row(8, "cot", 9, cot_large)]
    return rows + [{**r, "sampler": "ancestral", "accuracy": 0.5, "accuracy_lo": 0.45} for r in rows]


@pytest.mark.parametrize("cot_large, found", [(0.99, True), (0.52, False)])
def test_cliff_verdict_and_tables(cot_large, found):
    rows = _cliff_rows(cot_large)
    summary = serial_accuracy.summarize(rows)
    c = summary["cliff"]["parity"]
    assert (c["small_n"], c["large_n"], c["sampler"], c["found"]) == (4, 8, "topk_confidence", found)
    assert c["families"]["cot"]["large"]["accuracy"] == cot_large  # T = G, not T = 1
    assert not c["families"]["transformer"]["large"]["above_chance"]
    text = serial_accuracy.table(rows, summary)
    assert ("cliff found" if found else "no cliff") in text and "0.500*" in text
    single = serial_accuracy.cliff([r for r in rows if r["family"] != "cot"], "parity", "topk_confidence")
    assert single["found"] is None
