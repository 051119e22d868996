"""Run a sampling study from a config file.

    python sample.py                                    # the default GMM convergence study
    python sample.py --config configs/gmm_convergence.py --workdir runs/gmm --config.n_seeds=20000
    python sample.py --list                             # the study configs, one line each
    python sample.py --config configs/gmm_convergence.py:paper --workdir runs/gmm_paper --distributed   # a pod

Writes WORKDIR/results.jsonl, WORKDIR/summary.json, plots, and prints a table.

Seeds are sharded over every device of every process (`seed_mesh(jax.devices())`); seed i's sample
depends only on (key, i), not on how many devices or processes share the seeds. With --distributed
(or DIFFSERIAL_DISTRIBUTED=1) the multi-process runtime starts first; every process runs the same
command, each one gets every sample back, and only process 0 writes WORKDIR (a local path: each worker
may have its own). Studies that train (gmm_learned, parity_learned, serial_accuracy) write checkpoints
from every process and need one WORKDIR shared by all hosts. See GPU.md and TPU.md.
"""

import os

# On a CPU host, expose one XLA device per core so that seeds are sharded over all cores (a seed's
# result does not depend on the device count). Must happen before jax is imported.
if "xla_force_host_platform_device_count" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") +
                               f" --xla_force_host_platform_device_count={os.cpu_count() or 1}").strip()

import functools  # noqa: E402

from absl import app, flags  # noqa: E402
from ml_collections import config_flags  # noqa: E402

from configs import cli  # noqa: E402
from diffserial.training import distributed  # noqa: E402

_HERE = os.path.dirname(os.path.abspath(__file__))
_CONFIGS = os.path.join(_HERE, "configs")
_DEFAULT_CONFIG = os.path.join(_CONFIGS, "gmm_convergence.py")
# No default here: cli.parse_flags supplies it, so that errors in it are reported as usage errors.
_CONFIG = config_flags.DEFINE_config_file("config", None, "Study config file (default: configs/gmm_convergence.py; "
                                          "--list shows the others).", lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Output directory (default: runs/<study>).")
_LIST = flags.DEFINE_bool("list", False, "Print the study configs with their one-line descriptions and exit.")
_START_DISTRIBUTED = distributed.define_flags()


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    if _LIST.value:
        print(cli.list_configs(_CONFIGS, training=False))
        return
    config = _CONFIG.value
    workdir = _WORKDIR.value or os.path.join("runs", config.study)
    if "://" in workdir:
        raise app.UsageError(f"--workdir={workdir}: studies write with local file I/O; give a local or mounted "
                             "directory and copy it to the bucket afterwards (TPU.md)")
    _START_DISTRIBUTED()  # before anything touches a device
    import jax

    from diffserial.samplers import seed_mesh
    from diffserial.studies.runner import run_study

    run_study(config, workdir, mesh=seed_mesh(jax.devices()))


if __name__ == "__main__":
    app.run(main, flags_parser=functools.partial(cli.parse_flags, default_config=_DEFAULT_CONFIG))
