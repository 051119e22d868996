"""Learned parity study: train a masked Transformer on even-parity strings, then the odd-parity rate and
exact TV vs steps for ancestral, confidence, remasking and revision samplers, beside the exact oracle
(`diffserial.studies.parity_learned`).

    python sample.py --config configs/parity_learned.py --workdir runs/parity_learned
    python sample.py --config configs/parity_learned.py:paper --workdir runs/parity_learned_paper   # accelerator
    python sample.py --config configs/parity_learned.py --config.models="('transformer','looped','recurrent')"
    python sample.py --config configs/parity_learned.py --config.checkpoint=runs/parity_train   # a train.py workdir

The argument after ":" is the scale. "small" (default): the depth-2, width-64 Transformer on n = 8 bits,
3000 steps at batch 256, 2^14 seeds; 8 min 9 s on 2 CPU cores (README). "paper": all three networks
(transformer, looped, recurrent) at width 128 on n = 10 bits, 10 000 steps at batch 512 each, 2^16 seeds
(64 per string of the exact TV, as at the small scale), blocks of 2^13 seeds. Not run yet: whether n = 10
is learned in that budget is what it would show.

Expected device time of :paper: not measured (no accelerator run yet); an estimate from work ratios,
counting a network call as n x width^2 (5 times the small one). Training: 3 networks x 10 000 x 512
examples against 1 x 3000 x 256, x 5, W = 100. Sampling: 3 networks x 2^16 seeds against 1 x 2^14, x 5,
W = 60 (the exact oracle's share is smaller). The larger ratio bounds the whole: <= 100 x 8 min = ~13 h on
2 CPU cores; an accelerator runs these small networks many times faster (not measured here: time the
small run on it and scale). Training writes orbax checkpoints into WORKDIR/train_NAME from every
process, so a multi-host run needs a WORKDIR that all hosts share (a bucket; TPU.md).
"""

import ml_collections

from configs import is_paper_scale, parity_train

PAPER_MODELS = {
    "transformer": dict(parity_train.MODELS["transformer"], width=128),
    "looped": dict(parity_train.MODELS["looped"], width=128),
    "recurrent": dict(parity_train.MODELS["recurrent"], width=128),
}


def get_config(scale: str = "small") -> ml_collections.ConfigDict:
    paper = is_paper_scale(scale)
    c = ml_collections.ConfigDict()
    c.study = "parity_learned"
    c.scale = "paper" if paper else "small"  # recorded in config.json; choose it with the ":" argument
    c.seed = 0
    c.train = parity_train.get_config()  # n, model, optimizer of each training run
    c.model_fields = PAPER_MODELS if paper else parity_train.MODELS  # the fields of each network name in c.models
    c.train.model = ml_collections.ConfigDict(c.model_fields["transformer"].to_dict())
    c.train.n = 10 if paper else 8
    c.train.batch_size = 512 if paper else 256
    c.models = ("transformer", "looped", "recurrent") if paper else ("transformer",)  # each into WORKDIR/train_NAME
    c.train_steps = 10_000 if paper else 3000
    c.checkpoint = ""  # a train.py workdir of task masked_parity: study its model instead of training
    c.samplers = ("ancestral", "topk_confidence", "remdm_rescale", "remdm_loop", "revision")
    c.schedule = "linear"  # sampling schedule
    c.steps = (1, 2, 4, 8, 16, 32)
    c.n_seeds = 2**16 if paper else 2**14
    c.exact_tv_max_n = 16
    c.floor_reps = 100
    c.block_size = 2**13 if paper else 1024
    c.allow_config_change = False  # resume even if WORKDIR/config.json differs (the old one is kept)
    return c
