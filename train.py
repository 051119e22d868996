"""Train a model from a config file, resuming from the latest checkpoint in --workdir.

    python train.py --config configs/gmm_train.py --workdir runs/gmm_train [--config.KEY=VALUE ...]
    python train.py --config configs/parity_train.py --workdir gs://BUCKET/runs/parity --distributed   # a pod
    python train.py --list                                   # the training configs, one line each

The run itself, section by section, is `diffserial.training.loop.train`; this script parses flags and, with
--distributed (or DIFFSERIAL_DISTRIBUTED=1), starts the multi-process runtime first (TPU.md).

Rerunning the same command resumes from the latest checkpoint. On SIGTERM (a preemption, a scheduler) the run
saves the step it is at and exits with status 143; a resume whose config differs from WORKDIR/config.json
stops before compiling and lists the differing keys, unless --config.allow_config_change=True.
"""

import functools
import os

from absl import app, flags, logging
from ml_collections import config_flags

from configs import cli
from diffserial.training import distributed

_CONFIGS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "configs")
_CONFIG = config_flags.DEFINE_config_file("config", None, "Training config file (--list shows them).",
                                          lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Output directory (checkpoints, metrics); may be gs://. Required.")
_LIST = flags.DEFINE_bool("list", False, "Print the training configs with their one-line descriptions and exit.")
_START_DISTRIBUTED = distributed.define_flags()


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    if _LIST.value:
        print(cli.list_configs(_CONFIGS, training=True))
        return
    logging.set_verbosity(logging.WARNING)  # orbax logs every save at INFO
    _START_DISTRIBUTED()  # before anything touches a device
    from diffserial.training import loop

    loop.train(_CONFIG.value, _WORKDIR.value)


if __name__ == "__main__":
    app.run(main, flags_parser=functools.partial(cli.parse_flags, required=("config", "workdir")))
