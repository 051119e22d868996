"""Learned parity study: train a masked Transformer on even-parity strings, then the odd-parity rate and
exact TV vs steps for ancestral, confidence, remasking and revision samplers, beside the exact oracle.

    python sample.py --config configs/parity_learned.py --workdir runs/parity_learned
    python sample.py --config configs/parity_learned.py --config.models="('transformer','looped','recurrent')"
    python sample.py --config configs/parity_learned.py --config.checkpoint=runs/parity_train   # a train.py workdir
"""

import ml_collections

from configs import parity_train


def get_config() -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.study = "parity_learned"
    c.seed = 0
    c.train = parity_train.get_config()  # n, model, optimizer of each training run
    c.model_fields = parity_train.MODELS  # the fields of each network name in c.models
    c.models = ("transformer",)  # each trained into WORKDIR/train_NAME (transformer | looped | recurrent)
    c.train_steps = 3000
    c.checkpoint = ""  # a train.py workdir of task masked_parity: study its model instead of training
    c.samplers = ("ancestral", "topk_confidence", "remdm_rescale", "remdm_loop", "revision")
    c.schedule = "linear"  # sampling schedule
    c.steps = (1, 2, 4, 8, 16, 32)
    c.n_seeds = 2**14
    c.exact_tv_max_n = 16
    c.floor_reps = 100
    c.block_size = 1024
    c.allow_config_change = False  # resume even if WORKDIR/config.json differs (the old one is kept)
    return c
