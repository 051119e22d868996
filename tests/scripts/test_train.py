"""train.py end to end: metrics, checkpoints, bitwise resume after SIGKILL, save and exit 143 on SIGTERM, a
changed config on resume, bad configs."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SMALL = ["--config.model.hidden=16", "--config.model.n_blocks=1", "--config.model.embed_dim=8",
         "--config.batch_size=64", "--config.total_steps=40", "--config.checkpoint_every=10",
         "--config.log_every=10", "--config.optimizer.warmup_steps=5"]


def _cmd(workdir, *extra):
    return [sys.executable, os.path.join(ROOT, "train.py"), f"--config={os.path.join(ROOT, 'configs/gmm_train.py')}",
            f"--workdir={workdir}", *SMALL, *extra]


def _final_params(workdir):
    import jax

    from diffserial.training import checkpoint

    manager = checkpoint.open_manager(os.path.join(workdir, "checkpoints"), async_save=False)
    step = manager.latest_step()
    restored = manager.restore(step)  # raw pytree of numpy arrays: enough to compare bits
    checkpoint.close(manager)
    return step, jax.tree.leaves(restored)


@pytest.mark.slow
def test_resume_after_sigkill_is_bitwise_identical(tmp_path):
    straight, resumed = str(tmp_path / "straight"), str(tmp_path / "resumed")
    subprocess.run(_cmd(straight), check=True, capture_output=True, timeout=300)
    proc = subprocess.Popen(_cmd(resumed), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 240
    while not os.path.isdir(os.path.join(resumed, "checkpoints", "10")):
        assert proc.poll() is None and time.time() < deadline, "the run ended before its first checkpoint"
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    out = subprocess.run(_cmd(resumed), check=True, capture_output=True, text=True, timeout=300)
    assert "resumed from step" in out.stdout
    step_a, leaves_a = _final_params(straight)
    step_b, leaves_b = _final_params(resumed)
    assert step_a == step_b == 40
    for a, b in zip(leaves_a, leaves_b):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    rows = [json.loads(line) for line in open(os.path.join(straight, "metrics.jsonl"))]
    assert [r["step"] for r in rows] == [10, 20, 30, 40]
    assert all(np.isfinite(r["loss"]) and r["examples_per_s"] > 0 for r in rows)


@pytest.mark.slow
def test_sigterm_saves_and_exits_143_then_an_allowed_config_change_resumes(tmp_path):
    """SIGTERM after the first checkpoint of a run too long to finish: it saves the step it reached and
    exits 143; the rerun with another total_steps needs --config.allow_config_change=True (and keeps the
    old config). Bitwise resume after SIGTERM: tests/training/test_loop.py."""
    workdir = str(tmp_path / "run")
    proc = subprocess.Popen(_cmd(workdir, "--config.total_steps=1000000"), stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)
    deadline = time.time() + 240
    while not os.path.isdir(os.path.join(workdir, "checkpoints", "10")):
        assert proc.poll() is None and time.time() < deadline, "the run ended before its first checkpoint"
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 143
    step, _ = _final_params(workdir)
    assert step >= 10 and f"preempted: saved step {step}" in out
    resumed = subprocess.run(_cmd(workdir, f"--config.total_steps={step}", "--config.allow_config_change=True"),
                             check=True, capture_output=True, text=True, timeout=300)
    assert f"total_steps: 1000000 -> {step}" in resumed.stdout and f"resumed from step {step}" in resumed.stdout
    assert json.load(open(os.path.join(workdir, "config.1.json")))["total_steps"] == 1000000


@pytest.mark.parametrize("extra, match", [
    (["--config.batch_size=60"], "not divisible by the 8 devices"),  # loop.validate's errors: one of them here,
    (["--config.batch_size=abc"], "batch_size"),                      # all in tests/training/test_loop.py
    (["--config.nonexistent=1"], "nonexistent"),
])
def test_bad_configs_fail_before_training(tmp_path, extra, match):
    out = subprocess.run(_cmd(str(tmp_path), *extra), capture_output=True, text=True, timeout=300)
    assert out.returncode != 0
    assert match in out.stderr
