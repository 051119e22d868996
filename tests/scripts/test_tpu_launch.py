"""scripts/tpu_launch.sh without a TPU: the syntax, sourcing runs nothing, the dry run names every worker,
and the remote launch command, run by a shell with a fake python and gcloud, passes the arguments through
unchanged and copies the workdir only where it exists."""

import os
import shlex
import subprocess

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCRIPT = os.path.join(ROOT, "scripts", "tpu_launch.sh")
FAKE = '#!/bin/sh\nfor a in "$@"; do printf "%s\\n" "$a"; done > "$HOME/{name}.args"\n'


def _bash(command, **env):
    return subprocess.run(["bash", "-c", command], capture_output=True, text=True, timeout=60,
                          env={**os.environ, **env}, cwd=ROOT)


def test_syntax_and_sourcing_runs_nothing():
    assert subprocess.run(["bash", "-n", SCRIPT], timeout=60).returncode == 0
    out = _bash(f"source {SCRIPT} && type main launch_command >/dev/null && echo sourced")
    assert out.returncode == 0 and out.stdout == "sourced\n" and out.stderr == ""


@pytest.mark.parametrize("config, workdir, script", [
    ("configs/gmm_convergence.py:paper", "runs/gmm", "sample.py"),
    ("configs/gmm_train.py", "gs://bucket/runs/gmm", "train.py"),
])
def test_dry_run_installs_and_launches_on_every_worker(config, workdir, script):
    out = _bash(f"{SCRIPT} my-tpu us-central2-b {config} {workdir}", DRY_RUN="1")
    assert out.returncode == 0, out.stderr
    commands = out.stdout.splitlines()[:-1]
    assert [c.split()[0] for c in commands] == ["git", "gcloud", "gcloud", "gcloud"]
    assert all("--worker=all" in c and "--zone=us-central2-b" in c for c in commands[1:])
    assert script in commands[-1] and "--distributed" in commands[-1]


def test_sample_py_refuses_a_bucket_workdir():
    out = _bash(f"{SCRIPT} my-tpu us-central2-b configs/pinball.py gs://bucket/runs/p", DRY_RUN="1")
    assert out.returncode == 2 and "COPY_TO" in out.stderr and out.stdout == ""


def test_remote_command_passes_arguments_and_copies_the_written_workdir(tmp_path):
    venv = tmp_path / "diffserial" / ".venv" / "bin"
    venv.mkdir(parents=True)
    for path, name in ((venv / "python", "python"), (tmp_path / "gcloud", "gcloud")):
        path.write_text(FAKE.format(name=name))
        path.chmod(0o755)
    (tmp_path / "diffserial" / "runs" / "a b").mkdir(parents=True)  # what process 0 wrote
    flags = ["--config.steps=(1, 2)", "--config.samplers=('pf_euler',)"]
    launch = _bash(f"source {SCRIPT} && launch_command sample.py configs/x.py:paper 'runs/a b' {shlex.join(flags)}",
                   COPY_TO="gs://bucket/out")
    foreground = launch.stdout.replace("nohup ", "", 1).replace(" &\n", "; wait\n")
    env = dict(HOME=str(tmp_path), PATH=f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    run = _bash(foreground, **env)
    assert run.returncode == 0, run.stderr
    assert (tmp_path / "python.args").read_text().splitlines() == [
        "sample.py", "--config=configs/x.py:paper", "--workdir=runs/a b", "--distributed", *flags]
    assert (tmp_path / "gcloud.args").read_text().splitlines() == [
        "storage", "rsync", "--recursive", "runs/a b", "gs://bucket/out"]
    (tmp_path / "gcloud.args").unlink()
    (tmp_path / "diffserial" / "runs" / "a b").rmdir()  # a worker other than process 0's
    assert _bash(foreground, **env).returncode == 0 and not (tmp_path / "gcloud.args").exists()
