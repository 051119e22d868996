"""training.loop and training.tasks in process, on the 8 simulated CPU devices: both parallel paths,
both tasks, NaN injection, SIGTERM and resume, a changed config on resume, config validation, load_trained."""

import json
import os
import signal

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import gmm_train, parity_train
from diffserial.training import checkpoint, loop, preemption, resume, tasks


def _small_gmm(**overrides):
    c = gmm_train.get_config()
    c.model.update(dict(hidden=16, n_blocks=1, embed_dim=8))
    c.update(dict(batch_size=64, total_steps=12, log_every=4, checkpoint_every=5))
    c.optimizer.warmup_steps = 2
    c.update(overrides)
    return c


def _small_parity(model="transformer", **overrides):
    c = parity_train.get_config(model)
    c.n = 6
    c.model.width = 16
    c.update(dict(batch_size=32, total_steps=6, log_every=3, checkpoint_every=3))
    c.optimizer.warmup_steps = 1
    c.update(overrides)
    return c


def _close(a, b, rtol=1e-5, atol=1e-6):
    jax.tree.map(lambda u, v: np.testing.assert_allclose(np.asarray(u), np.asarray(v), rtol=rtol, atol=atol), a, b)


@pytest.mark.slow
def test_shard_map_and_pmap_runs_agree(tmp_path):
    """--config.parallel=pmap trains the same parameters as the default shard_map path (float tolerance:
    the two programs may reduce in different orders)."""
    a = loop.train(_small_gmm(), str(tmp_path / "sm"))
    b = loop.train(_small_gmm(parallel="pmap"), str(tmp_path / "pm"))
    assert int(a.step) == int(b.step) == 12
    _close(a.params, b.params)
    _close(a.ema_params, b.ema_params)
    rows = [json.loads(line) for line in open(tmp_path / "pm" / "metrics.jsonl")]
    assert [r["step"] for r in rows] == [4, 8, 12]
    assert set(rows[0]) >= {"loss", "lr", "grad_norm", "examples_per_s"}
    moved = max(float(jnp.max(jnp.abs(u - v))) for u, v in zip(
        jax.tree.leaves(a.params), jax.tree.leaves(tasks.make_task(_small_gmm()).init(jax.random.key(0)))))
    assert moved > 1e-3


@pytest.mark.parametrize("model", ["transformer", "looped", "recurrent"])
def test_masked_parity_trains_and_loads(tmp_path, model):
    workdir = str(tmp_path / model)
    state = loop.train(_small_parity(model), workdir)
    trained = loop.load_trained(workdir)
    assert trained.step == 6 and trained.config.model.name == model
    _close(trained.params, state.ema_params, 0, 0)
    logits = trained.sampling_fn()(jnp.full((6,), 2, jnp.int32), jnp.float32(0.5))
    assert logits.shape == (6, 2) and bool(jnp.all(jnp.isfinite(logits)))
    loss = [json.loads(line)["loss"] for line in open(os.path.join(workdir, "metrics.jsonl"))]
    assert len(loss) == 2 and all(np.isfinite(loss))


def test_even_parity_examples_are_uniform_on_even_strings():
    keys = jax.random.split(jax.random.key(0), 20000)
    x = np.asarray(jax.vmap(lambda k: tasks.even_parity_example(k, 4))(keys))
    assert np.all(x.sum(1) % 2 == 0)
    counts = np.bincount(x @ (1 << np.arange(4)), minlength=16)
    even = [i for i in range(16) if bin(i).count("1") % 2 == 0]
    assert counts[[i for i in range(16) if i not in even]].sum() == 0
    np.testing.assert_allclose(counts[even] / len(x), 1 / 8, atol=0.01)  # 8 sd of a binomial(20000, 1/8)


def test_batch_rows_split_equals_whole():
    task = tasks.make_task(_small_gmm())
    key = jax.random.key(3)
    whole = tasks.batch_rows(task, key, 5, 0, 8)
    halves = [tasks.batch_rows(task, key, 5, a, b) for a, b in ((0, 4), (4, 8))]
    np.testing.assert_array_equal(np.concatenate([h["x"] for h in halves]), whole["x"])
    np.testing.assert_array_equal(whole["index"], np.arange(8))
    assert not np.array_equal(tasks.batch_rows(task, key, 6, 0, 8)["x"], whole["x"])


def _raw_checkpoint(workdir, step):
    manager = checkpoint.open_manager(os.path.join(workdir, "checkpoints"), async_save=False)
    steps, raw = manager.all_steps(), manager.restore(step)  # raw pytree of numpy arrays: enough for bits
    checkpoint.close(manager)
    return steps, jax.tree.leaves(raw)


@pytest.fixture(scope="module")
def clean_gmm(tmp_path_factory):
    """Workdir of an uninterrupted run of _small_gmm(keep_checkpoints=3): checkpoints 5, 10, 12."""
    workdir = str(tmp_path_factory.mktemp("clean"))
    loop.train(_small_gmm(keep_checkpoints=3), workdir)
    return workdir


def test_nan_stops_with_step_and_keeps_last_good_checkpoint(tmp_path, monkeypatch, clean_gmm):
    real = tasks.batch_rows

    def poisoned(task, data_key, step, start, stop):
        batch = real(task, data_key, step, start, stop)
        return {**batch, "x": jnp.where(step == 7, jnp.nan, batch["x"])}

    monkeypatch.setattr(tasks, "batch_rows", poisoned)  # what loop.train's jitted_batch_rows calls
    with pytest.raises(FloatingPointError, match="at step 7"):
        loop.train(_small_gmm(), str(tmp_path / "nan"))
    steps, bad_run = _raw_checkpoint(str(tmp_path / "nan"), 5)
    assert steps == [5]
    _, clean_run = _raw_checkpoint(clean_gmm, 5)
    for a, b in zip(bad_run, clean_run):
        np.testing.assert_array_equal(a, b)


def _metrics(workdir):
    """metrics.jsonl without its timing fields."""
    rows = [json.loads(line) for line in open(os.path.join(workdir, "metrics.jsonl"))]
    return [{k: v for k, v in r.items() if k not in ("wall_time", "examples_per_s")} for r in rows]


def test_sigterm_saves_the_current_step_and_resume_is_bitwise_identical(tmp_path, monkeypatch, capsys, clean_gmm):
    """A real SIGTERM to this process right after step 5's periodic save: the run finishes step 6, saves it
    (not a multiple of checkpoint_every), and raises Preempted (exit status 143); the rerun resumes from 6
    and ends with the uninterrupted run's checkpoint and metrics, bit for bit."""
    workdir = str(tmp_path / "preempted")
    real_save = checkpoint.save

    def save_then_sigterm(manager, step, state, **kwargs):
        started = real_save(manager, step, state, **kwargs)
        if step == 5:
            os.kill(os.getpid(), signal.SIGTERM)
        return started

    monkeypatch.setattr(checkpoint, "save", save_then_sigterm)
    handler = signal.getsignal(signal.SIGTERM)
    with pytest.raises(preemption.Preempted) as stopped:
        loop.train(_small_gmm(keep_checkpoints=3), workdir)
    assert (stopped.value.step, stopped.value.code) == (6, 143)
    assert signal.getsignal(signal.SIGTERM) is handler  # put back
    assert "preempted: saved step 6" in capsys.readouterr().out
    assert _raw_checkpoint(workdir, 6)[0] == [5, 6]
    assert [r["step"] for r in _metrics(workdir)] == [4]

    monkeypatch.setattr(checkpoint, "save", real_save)
    state = loop.train(_small_gmm(keep_checkpoints=3), workdir)
    assert "resumed from step 6" in capsys.readouterr().out
    assert int(state.step) == 12
    steps, resumed = _raw_checkpoint(workdir, 12)
    assert steps == [6, 10, 12]
    for a, b in zip(resumed, _raw_checkpoint(clean_gmm, 12)[1]):
        np.testing.assert_array_equal(a, b)
    assert _metrics(workdir) == _metrics(clean_gmm)


def test_resume_with_a_changed_config(tmp_path, capsys):
    """A changed config stops the resumed run with every differing key, old -> new, and leaves the workdir
    as it was; allow_config_change=True alone is no change; with it the run resumes and keeps the old file."""
    workdir = tmp_path / "run"
    first = _small_gmm(total_steps=3, checkpoint_every=3, log_every=1)
    loop.train(first, str(workdir))
    saved = (workdir / "config.json").read_text()
    changed = _small_gmm(total_steps=3, checkpoint_every=3, log_every=2)
    changed.optimizer.lr = 2e-3
    with pytest.raises(resume.ConfigChangedError) as error:
        loop.train(changed, str(workdir))
    assert "  log_every: 1 -> 2\n  optimizer.lr: 0.001 -> 0.002\n" in str(error.value)
    assert "--config.allow_config_change=True" in str(error.value)
    assert (workdir / "config.json").read_text() == saved

    same = _small_gmm(total_steps=3, checkpoint_every=3, log_every=1, allow_config_change=True)
    loop.train(same, str(workdir))
    assert sorted(os.listdir(workdir)) == ["checkpoints", "config.json", "metrics.jsonl", "tb"]

    changed.allow_config_change = True
    state = loop.train(changed, str(workdir))
    out = capsys.readouterr().out
    assert "log_every: 1 -> 2" in out and "optimizer.lr: 0.001 -> 0.002" in out and "config.1.json" in out
    assert int(state.step) == 3
    assert resume.config_diff(json.loads((workdir / "config.1.json").read_text()), first) == []
    assert json.loads((workdir / "config.json").read_text())["optimizer"]["lr"] == 2e-3


@pytest.mark.parametrize("change, match", [
    (dict(batch_size=60), "not divisible by the 8 devices"),
    (dict(parallel="vmap"), "config.parallel"),
    (dict(task="nope"), "unknown task"),
    (dict(total_steps=0), "total_steps"),
    (dict(process="vp_nope"), "unknown process"),
    (dict(optimizer=dict(warmup_steps=50)), "warmup_steps"),  # not below total_steps = 12
])
def test_bad_gmm_configs(change, match):
    with pytest.raises(ValueError, match=match):
        loop.validate(_small_gmm(**change))


def test_bad_model_configs():
    c = _small_parity()
    c.model.width = 18  # not a multiple of 4 heads
    with pytest.raises(ValueError, match="multiple of heads"):
        loop.validate(c)
    with pytest.raises(ValueError, match="unknown field.*depth.*valid"):
        c = _small_parity("looped")
        with c.unlocked():
            c.model.depth = 3
        loop.validate(c)
    with pytest.raises(ValueError, match="unknown model"):
        parity_train.get_config("mamba")


def test_load_trained_errors(tmp_path):
    with pytest.raises(ValueError, match="config.json"):
        loop.load_trained(str(tmp_path))
