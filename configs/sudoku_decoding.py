"""Sudoku: exact accuracy vs tokens decoded per step (all at once ... one at a time) and decoding order
(confidence-ordered, random, ancestral) on easy / medium / hard puzzles, with the fixed-depth propagation
denoiser (`diffserial.studies.sudoku_decoding`).

    python sample.py --config configs/sudoku_decoding.py --workdir runs/sudoku_decoding        # small default
    python sample.py --config configs/sudoku_decoding.py:paper --workdir runs/sudoku_paper     # accelerator
    python sample.py --config configs/sudoku_decoding.py --config.rounds='(1,2,3,4,8)' --config.n_puzzles=500

The argument after ":" is the scale: "small" (default; 200 puzzles per bucket, r = 1, 2, 4, 16: about 6
minutes on 2 shared CPU cores (README), most of it host-side puzzle generation and compilation) or "paper"
(2000 puzzles per bucket, 4 samples each, more rounds and tokens-per-step values). This study needs no
accelerator: the denoiser is constraint propagation, and the small scale shows the pattern.

Expected device time of :paper: not measured (no accelerator run yet); an estimate from the work ratio.
The device work is seeds x steps x rounds (a predictor call runs r rounds), summed over buckets, k, r and
samplers: W = 153. Since the small run's 6 min are mostly generation and compilation, <= 153 x 6 min =
~15 h at 2 CPU cores is an upper estimate; on an accelerator, time the small run there and multiply its
sampling time (the `seconds` column) by 153. Generating the 6000 puzzles stays on the host: 3 to 10 min
of one core (0.03 to 0.1 s a puzzle). Every field can be overridden with
--config.FIELD=VALUE. There is no trained-model option: Sudoku is generated host-side and the training
loop does not take it (see the study's docstring).
"""

import ml_collections

from configs import is_paper_scale


def get_config(scale: str = "small") -> ml_collections.ConfigDict:
    paper = is_paper_scale(scale)
    c = ml_collections.ConfigDict()
    c.study = "sudoku_decoding"
    c.scale = "paper" if paper else "small"  # recorded in config.json; choose it with the ":" argument
    c.seed = 0
    c.buckets = ("easy", "medium", "hard")  # by givens: 54..80, 27..53, 17..26 (sudoku.BUCKETS)
    c.n_puzzles = 2000 if paper else 200  # per bucket (host-side generation, ~0.03-0.1 s a puzzle on one core)
    c.samples_per_puzzle = 4 if paper else 1  # seed i decodes puzzle i mod n_puzzles
    c.samplers = ("topk_confidence", "topk_random", "ancestral")  # adaptive, fixed random order, MDLM
    c.tokens_per_step = (81, 27, 9, 3, 2, 1) if paper else (81, 27, 9, 3, 1)  # T = ceil(max blanks / k)
    c.rounds = (1, 2, 3, 4, 8, 16, 32) if paper else (1, 2, 4, 16)  # propagation rounds r of the denoiser
    c.hidden_singles = True  # each round also places digits with one possible cell in a row/column/box
    c.schedule = "linear"  # only the ancestral sampler reads it
    c.block_size = 1024 if paper else 128
    c.allow_config_change = False  # resume even if WORKDIR/config.json differs (the old one is kept)
    return c
