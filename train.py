"""Train a model from a config file, resuming from the latest checkpoint in --workdir.

    python train.py --config configs/gmm_train.py --workdir runs/gmm_train [--config.KEY=VALUE ...]
    python train.py --config configs/parity_train.py --workdir gs://BUCKET/runs/parity --distributed   # a pod

The run itself, section by section, is `diffserial.training.loop.train`; this script parses flags and, with
--distributed (or DIFFSERIAL_DISTRIBUTED=1), starts the multi-process runtime first (TPU.md).
"""

from absl import app, flags, logging
from ml_collections import config_flags

from diffserial.training import distributed

_CONFIG = config_flags.DEFINE_config_file("config", None, "Training config file.", lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Output directory (checkpoints, metrics); may be gs://.",
                               required=True)
_START_DISTRIBUTED = distributed.define_flags()


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    logging.set_verbosity(logging.WARNING)  # orbax logs every save at INFO
    _START_DISTRIBUTED()  # before anything touches a device
    from diffserial.training import loop

    loop.train(_CONFIG.value, _WORKDIR.value)


if __name__ == "__main__":
    app.run(main)
