"""Default pinball study: counter machines compiled into SDE force fields (diffserial.studies.pinball).

    python sample.py --config configs/pinball.py --workdir runs/pinball [--config.program_seeds=...]
"""

import ml_collections


def get_config() -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.study = "pinball"
    c.seed = 0
    # geometry and forces (diffserial.pinball.force_field.PinballParams) and the Euler-Maruyama step h
    c.speed = 2.0
    c.kappa = 4.0
    c.blend = 0.2
    c.step_size = 0.05
    # leak sweep: one program, words of growing run length S, cell sides L
    c.leak_program = "anbn"
    c.leak_words = ("ab", "aaabbb", "aaaaaaaaabbbbbbbbb")  # S = 5, 9, 21 machine steps
    c.leak_seeds = (2048, 2048, 512)  # seeds per point, one count per leak word
    c.leak_cells = (4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0)
    # every program on random words
    c.programs = ("increment", "add", "compare", "anbn", "multiply")
    c.words_per_program = 2
    c.max_word_len = 4
    c.program_cells = (8.0,)
    c.program_seeds = 256
    c.block_size = 128  # seeds per vmapped block (bitwise reproducibility holds for a fixed value)
    c.target_correct = 0.99
    c.fit_max_leak = 0.6  # fit ln P(leak) vs L^2 on points with P(leak) <= this ...
    c.fit_min_events = 3  # ... and at least this many leaks
    c.trajectory_points = 600
    c.allow_config_change = False  # resume even if WORKDIR/config.json differs (the old one is kept)
    return c
