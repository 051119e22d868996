"""Multi-process data-parallel training (diffserial.training.distributed) on 127.0.0.1.

The rehearsal: two processes (2 simulated CPU devices each, gloo collectives, coordinator on a free
local port) each build only their rows of every global batch and train the same ScoreMLP for 5 steps;
a third process trains on ONE process with 4 devices from the whole batch. Tolerance of the parameter
comparison: both runs do the same float32 math, but the gradient all-reduce runs in a different order
(gloo across processes vs in-process), so they agree to rounding amplified by 5 Adam steps:
rtol 1e-5, atol 1e-6 (the max abs difference is printed; measured 6e-8 to 5e-7).
"""

import json
import os
import socket
import subprocess
import sys
import time

import jax
import numpy as np
import pytest
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from diffserial.training import distributed

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
WORKER = os.path.join(ROOT, "tests", "training", "multihost_worker.py")
BATCH, STEPS, TIMEOUT_S = 16, 5, 150
RTOL, ATOL = 1e-5, 1e-6
_PROXY_VARS = ("http_proxy", "https_proxy", "grpc_proxy", "all_proxy")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env(n_devices: int) -> dict:
    env = {k: v for k, v in os.environ.items() if k.lower() not in _PROXY_VARS}  # everything is local
    env.update(XLA_FLAGS=f"--xla_force_host_platform_device_count={n_devices}", JAX_PLATFORMS="cpu",
               PYTHONPATH=os.pathsep.join(filter(None, [ROOT, env.get("PYTHONPATH")])))
    env.pop(distributed.ENV_FLAG, None)
    return env


def _launch(out_dir, n_devices, *extra):
    os.makedirs(out_dir)
    cmd = [sys.executable, WORKER, "--out", str(out_dir), "--steps", str(STEPS), "--batch", str(BATCH), *extra]
    return subprocess.Popen(cmd, env=_env(n_devices), cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def _report(proc, deadline):
    """The worker's JSON line; raises with its stderr if it failed."""
    out, err = proc.communicate(timeout=max(1.0, deadline - time.time()))
    assert proc.returncode == 0, f"worker failed (rc {proc.returncode}):\n{err[-4000:]}"
    return json.loads(out.strip().splitlines()[-1])


@pytest.mark.slow
def test_two_processes_match_one_process(tmp_path):
    port = _free_port()
    start = time.time()
    procs = []
    try:
        for pid in (0, 1):
            procs.append(_launch(tmp_path / f"p{pid}", 2, "--coordinator", f"127.0.0.1:{port}",
                                 "--num-processes", "2", "--process-id", str(pid)))
        procs.append(_launch(tmp_path / "single", 4))
        deadline = time.time() + TIMEOUT_S
        reports = [_report(p, deadline) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    print(f"3 workers: {time.time() - start:.1f} s")

    half = BATCH // 2
    for pid, r in enumerate(reports[:2]):
        assert (r["process_index"], r["process_count"], r["local_devices"], r["devices"]) == (pid, 2, 2, 4)
        assert r["rows"] == [pid * half, (pid + 1) * half] and r["step"] == STEPS
    assert reports[2]["rows"] == [0, BATCH] and reports[2]["devices"] == 4
    assert reports[0]["losses"] == reports[1]["losses"]  # replicated metrics: every process sees the same

    assert sorted(os.listdir(tmp_path / "p0")) == ["params.npz"]
    assert os.listdir(tmp_path / "p1") == []  # only process 0 writes
    multi, single = np.load(tmp_path / "p0" / "params.npz"), np.load(tmp_path / "single" / "params.npz")
    assert sorted(multi.files) == sorted(single.files)
    final = [k for k in multi.files if k.startswith(("params", "ema"))]
    max_diff = max(float(np.max(np.abs(multi[k] - single[k]))) for k in final)
    print(f"max |params(2 processes x 2 devices) - params(1 process x 4 devices)| = {max_diff:.3g}")
    for k in final:
        np.testing.assert_allclose(multi[k], single[k], rtol=RTOL, atol=ATOL, err_msg=k)
    np.testing.assert_allclose(multi["losses"], single["losses"], rtol=RTOL)
    init = [k for k in multi.files if k.startswith("init")]
    moved = max(float(np.max(np.abs(multi["params" + k[len("init"):]] - multi[k]))) for k in init)
    for k in init:
        np.testing.assert_array_equal(multi[k], single[k])  # same start
    assert moved > 100 * ATOL  # the comparison is not between two untouched initialisations


@pytest.mark.parametrize("n_proc, n_local", [(1, 1), (1, 8), (2, 2), (4, 1), (4, 2)])
def test_process_rows_tile_the_batch(n_proc, n_local):
    b = 16
    rows = [distributed.process_rows(b, process_index=p, process_count=n_proc, local_device_count=n_local)
            for p in range(n_proc)]
    assert rows == [(p * b // n_proc, (p + 1) * b // n_proc) for p in range(n_proc)]
    assert distributed.process_rows(b) == (0, b)  # this (single) process, 8 devices


@pytest.mark.parametrize("size, kwargs, match", [
    (12, dict(process_count=2, local_device_count=4), r"12 must be divisible by .* 2 \* 4 = 8"),
    (10, {}, "divisible"),  # 1 process x 8 devices here
    (0, {}, "int >= 1"),
    (8.0, {}, "int >= 1"),
    (8, dict(process_index=2, process_count=2), "process_index"),
])
def test_process_rows_errors(size, kwargs, match):
    with pytest.raises(ValueError, match=match):
        distributed.process_rows(size, **kwargs)


def test_global_batch_single_process_layout():
    mesh = Mesh(np.asarray(jax.devices()), ("data",))
    n = len(jax.devices())
    local = {"x": np.arange(2 * n * 3, dtype=np.float32).reshape(2 * n, 3), "index": np.arange(2 * n)}
    batch = distributed.global_batch(local, mesh)
    for name, leaf in batch.items():
        assert leaf.sharding == NamedSharding(mesh, P("data")) and leaf.shape == local[name].shape
        np.testing.assert_array_equal(np.asarray(leaf), local[name])
        for k, device in enumerate(mesh.devices.flat):  # mesh device k holds rows [2k, 2k + 2)
            (shard,) = [s for s in leaf.addressable_shards if s.device == device]
            np.testing.assert_array_equal(np.asarray(shard.data), local[name][2 * k: 2 * k + 2])
    with pytest.raises(ValueError, match="same leading"):
        distributed.global_batch({"x": local["x"], "index": local["index"][:-1]}, mesh)
    with pytest.raises(ValueError, match="divisible"):
        distributed.global_batch({"x": local["x"][:-1]}, mesh)
    with pytest.raises(ValueError, match="1-D mesh"):
        distributed.global_batch(local, Mesh(np.asarray(jax.devices()).reshape(2, -1), ("data", "model")))


def test_requested(monkeypatch):
    monkeypatch.delenv(distributed.ENV_FLAG, raising=False)
    assert distributed.requested(True) and not distributed.requested(False)
    monkeypatch.setenv(distributed.ENV_FLAG, "1")
    assert distributed.requested(False)
    monkeypatch.setenv(distributed.ENV_FLAG, "0")
    assert not distributed.requested(False) and distributed.requested(True)
    monkeypatch.setenv(distributed.ENV_FLAG, "true")
    with pytest.raises(ValueError, match="'0' or '1'"):
        distributed.requested(False)


def test_initialize_after_backend_started_raises():
    jax.devices()  # the backend exists now, for this single process
    with pytest.raises(RuntimeError, match="before any JAX device is touched"):
        distributed.initialize("127.0.0.1:1", num_processes=2, process_id=0)
    assert not jax.distributed.is_initialized()
