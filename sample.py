"""Run a sampling study from a config file.

    python sample.py                                    # the default GMM convergence study
    python sample.py --config configs/gmm_convergence.py --workdir runs/gmm --config.n_seeds=20000

Writes WORKDIR/results.jsonl, WORKDIR/summary.json, plots, and prints a table.
"""

import os

# On a CPU host, expose one XLA device per core so that seeds are sharded over all cores (a seed's
# result does not depend on the device count). Must happen before jax is imported.
if "xla_force_host_platform_device_count" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") +
                               f" --xla_force_host_platform_device_count={os.cpu_count() or 1}").strip()

from absl import app, flags  # noqa: E402
from ml_collections import config_flags  # noqa: E402

_HERE = os.path.dirname(os.path.abspath(__file__))
_CONFIG = config_flags.DEFINE_config_file(
    "config", os.path.join(_HERE, "configs", "gmm_convergence.py"), "Study config file.", lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Output directory (default: runs/<study>).")


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    from diffserial.studies.runner import run_study

    config = _CONFIG.value
    run_study(config, _WORKDIR.value or os.path.join("runs", config.study))


if __name__ == "__main__":
    app.run(main)
