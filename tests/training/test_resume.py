"""training.resume (config.json and the config-change rule) and training.preemption (the SIGTERM flag)."""

import json
import os
import signal
import threading

import ml_collections
import pytest

from diffserial.training import preemption, resume


def _config(**overrides):
    c = ml_collections.ConfigDict(dict(seed=0, steps=(1, 2), optimizer=dict(lr=1e-3, b1=0.9),
                                       allow_config_change=False))
    c.update(overrides)
    return c


def test_config_diff_lists_dotted_paths():
    old = json.loads(_config().to_json())
    new = _config(steps=(1, 2, 4), allow_config_change=True)
    new.optimizer.lr = 4e-4
    with new.unlocked():
        new.optimizer.clip = 1.0
        del new.optimizer["b1"]
    diff = resume.config_diff(old, new)
    assert [(path, a, b) for path, a, b in diff if resume._ABSENT not in (a, b)] == [
        ("optimizer.lr", 1e-3, 4e-4), ("steps", [1, 2], [1, 2, 4])]
    assert resume.format_diff(diff).splitlines() == [
        "  optimizer.b1: 0.9 -> <absent>", "  optimizer.clip: <absent> -> 1.0", "  optimizer.lr: 0.001 -> 0.0004",
        "  steps: [1, 2] -> [1, 2, 4]"]
    nested = _config()
    with nested.unlocked():
        nested.optimizer.allow_config_change = True  # e.g. a study's config.train: never a difference either
    assert resume.config_diff(old, nested) == []


def test_save_config_rules(tmp_path):
    resume.save_config(tmp_path, _config(), resuming=False)
    resume.save_config(tmp_path, _config(seed=1), resuming=False)  # nothing to resume: replaced
    assert json.loads((tmp_path / "config.json").read_text())["seed"] == 1
    with pytest.raises(resume.ConfigChangedError, match=r"(?s)differs:\n  seed: 1 -> 2\n"):
        resume.save_config(tmp_path, _config(seed=2), resuming=True)
    resume.save_config(tmp_path, _config(seed=2, allow_config_change=True), resuming=True, writer=False)
    assert sorted(os.listdir(tmp_path)) == ["config.json"]  # only the writer renames and writes
    resume.save_config(tmp_path, _config(seed=2, allow_config_change=True), resuming=True)
    resume.save_config(tmp_path, _config(seed=3, allow_config_change=True), resuming=True)
    kept = [json.loads((tmp_path / f"config.{k}.json").read_text())["seed"] for k in (1, 2)]
    assert kept == [1, 2] and json.loads((tmp_path / "config.json").read_text())["seed"] == 3
    assert sorted(os.listdir(tmp_path)) == ["config.1.json", "config.2.json", "config.json"]


def test_watcher_sets_a_flag_on_sigterm_and_puts_the_handler_back():
    before = signal.getsignal(signal.SIGTERM)
    watcher = preemption.Watcher()
    assert not watcher.reached(1)
    os.kill(os.getpid(), signal.SIGTERM)  # handled in this (main) thread before the next bytecode
    assert watcher.reached(2)
    watcher.close()
    watcher.close()
    assert signal.getsignal(signal.SIGTERM) is before


def test_watcher_outside_the_main_thread_installs_nothing():
    made = []
    thread = threading.Thread(target=lambda: made.append(preemption.Watcher()))
    thread.start()
    thread.join()
    assert not made[0].reached(1) and not made[0]._installed


def test_watcher_under_jax_distributed_uses_the_preemption_sync_point(monkeypatch):
    """With the distributed runtime up, the runtime owns SIGTERM: no Python handler, and `reached` asks JAX's
    sync point at every step."""
    asked = []
    monkeypatch.setattr(preemption.jax.distributed, "is_initialized", lambda: True)
    monkeypatch.setattr(preemption.multihost_utils, "reached_preemption_sync_point",
                        lambda step: asked.append(step) or step == 3)
    before = signal.getsignal(signal.SIGTERM)
    watcher = preemption.Watcher()
    assert signal.getsignal(signal.SIGTERM) is before
    assert [watcher.reached(s) for s in (1, 2, 3)] == [False, False, True] and asked == [1, 2, 3]
