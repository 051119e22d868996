"""sample.py on two processes: `--distributed` on 127.0.0.1 (gloo CPU collectives, 2 simulated devices
each) shards the seeds over all 4 devices; process 0 gets every sample back and alone writes, and its
results.jsonl equals a one-process run's (timings aside), because seed i depends only on (key, i)."""

import os
import socket
import subprocess
import sys
import time

import jax
import pytest

from configs import gmm_convergence
from diffserial.samplers import seed_mesh
from diffserial.studies import report
from diffserial.studies.runner import run_study
from diffserial.training import distributed

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TINY = dict(n_seeds=300, steps=(1, 3), dims=(2,), samplers=("euler_maruyama",), block_size=32, floor_reps=10)
TIMEOUT_S = 120


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(workdir, port, process_id):
    env = {k: v for k, v in os.environ.items() if k.lower() not in ("http_proxy", "https_proxy", "grpc_proxy",
                                                                      "all_proxy")}  # the coordinator is local
    env.update(XLA_FLAGS="--xla_force_host_platform_device_count=2", JAX_PLATFORMS="cpu",
               PYTHONPATH=os.pathsep.join(filter(None, [ROOT, env.get("PYTHONPATH")])))
    env.pop(distributed.ENV_FLAG, None)
    overrides = [f"--config.{k}={v!r}" if isinstance(v, tuple) else f"--config.{k}={v}" for k, v in TINY.items()]
    cmd = [sys.executable, os.path.join(ROOT, "sample.py"), f"--workdir={workdir}", "--distributed",
           f"--coordinator_address=127.0.0.1:{port}", "--num_processes=2", f"--process_id={process_id}", *overrides]
    return subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _without_timings(rows):
    return [{k: v for k, v in r.items() if k != "seconds"} for r in rows]


@pytest.mark.slow
def test_two_processes_write_the_rows_of_one(tmp_path):
    start, port = time.time(), _free_port()
    procs = [_worker(tmp_path / f"worker{i}", port, i) for i in (0, 1)]
    try:
        config = gmm_convergence.get_config()
        config.update(TINY)
        run_study(config, str(tmp_path / "single"), mesh=seed_mesh(jax.devices()[:4]))  # meanwhile, 1 process
        outputs = [p.communicate(timeout=TIMEOUT_S)[0] for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    print(f"2 workers and the reference: {time.time() - start:.1f} s")
    for p, out in zip(procs, outputs):
        assert p.returncode == 0, out[-4000:]
    assert not (tmp_path / "worker1").exists()  # only process 0 writes
    multi = report.read_jsonl(str(tmp_path / "worker0" / "results.jsonl"))
    single = report.read_jsonl(str(tmp_path / "single" / "results.jsonl"))
    assert len(multi) == len(TINY["steps"]) and _without_timings(multi) == _without_timings(single)
