"""Pinball study: counter machines compiled into SDE force fields (`diffserial.studies.pinball`).

    python sample.py --config configs/pinball.py --workdir runs/pinball [--config.program_seeds=...]
    python sample.py --config configs/pinball.py:paper --workdir runs/pinball_paper      # accelerator

The argument after ":" is the scale. "small" (default): anbn on runs of S = 5, 9, 21 machine steps,
L = 4 .. 10, 2048 / 2048 / 512 seeds; 3 to 6 min on 2 CPU cores (README). This study needs no
accelerator: the small scale shows ln P(leak) linear in L^2 and the L needed for 99% correct growing
slowly with S. "paper": a fourth, longer run (S = 45: a^21 b^21, 2048 seeds), 8 times the seeds of the
other leak words (rarer leaks at large L become measurable), L = 4 .. 12; every program on 4 random
words of up to 6 letters with 2048 seeds each; blocks of 1024 seeds.

Expected device time of :paper: not measured (no accelerator run yet); an estimate from the work ratio.
The work is seeds x SDE steps summed over the points (`steps_needed`, computed from the compiled machines
without running them): W = 15 (leak sweep 14.8, program sweep 22.7; the leak sweep is 96% of the small
run's work). At 2 CPU cores that is ~15 x 3 to 6 min = ~45 min to 1.5 h. On an accelerator, time the
small run there and multiply its sampling time (the `seconds` column) by 15. Every field can be
overridden with --config.FIELD=VALUE.
"""

import ml_collections

from configs import is_paper_scale


def get_config(scale: str = "small") -> ml_collections.ConfigDict:
    paper = is_paper_scale(scale)
    c = ml_collections.ConfigDict()
    c.study = "pinball"
    c.scale = "paper" if paper else "small"  # recorded in config.json; choose it with the ":" argument
    c.seed = 0
    # geometry and forces (diffserial.pinball.force_field.PinballParams) and the Euler-Maruyama step h
    c.speed = 2.0
    c.kappa = 4.0
    c.blend = 0.2
    c.step_size = 0.05
    # leak sweep: one program, words of growing run length S, cell sides L
    c.leak_program = "anbn"
    words = ("ab", "aaabbb", "aaaaaaaaabbbbbbbbb")  # S = 5, 9, 21 machine steps
    c.leak_words = words + ("a" * 21 + "b" * 21,) if paper else words  # paper: S = 45
    c.leak_seeds = (16384, 16384, 4096, 2048) if paper else (2048, 2048, 512)  # seeds per point, one per leak word
    c.leak_cells = tuple(float(v) for v in range(4, 13 if paper else 11))
    # every program on random words
    c.programs = ("increment", "add", "compare", "anbn", "multiply")
    c.words_per_program = 4 if paper else 2
    c.max_word_len = 6 if paper else 4
    c.program_cells = (8.0,)
    c.program_seeds = 2048 if paper else 256
    c.block_size = 1024 if paper else 128  # seeds per vmapped block (bitwise reproducibility holds for a fixed value)
    c.target_correct = 0.99
    c.fit_max_leak = 0.6  # fit ln P(leak) vs L^2 on points with P(leak) <= this ...
    c.fit_min_events = 3  # ... and at least this many leaks
    c.trajectory_points = 600
    c.allow_config_change = False  # resume even if WORKDIR/config.json differs (the old one is kept)
    return c
