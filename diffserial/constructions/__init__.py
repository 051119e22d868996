"""Hand-built diffusion language models from "Diffusion Language Models are Provably Optimal Parallel
Samplers" (ICLR 2026): predictors and update rules whose few rounds provably sample a target exactly.

Every construction here is a `Construction` (see `common`): a predictor `(x, t) -> logits (L, V)` for one
token sequence (vocabulary {0, ..., V-1}, MASK id V), an update rule with `init_state(x)` and
`step(schedule, predictor, x, state, t, s, key) -> (x, state)` (the contract of the masked-sampler
driver, `schedule` ignored), and a number of rounds `n_rounds`, each round one scan step.

    parity.parity_revision(n)      Thm 4.1: the even-parity law on n bits in 2 rounds with revision.
    parity.parity_remask(n)        Thm 4.2: the same law in 3 rounds with remasking.
    circuits.circuit_cot(c)        Thm 3.1: a depth-d layered circuit in d rounds, one layer per round.
    circuits.circuit_remask(c)     Thm 3.2: the same in d rounds on 2 (width + clock) positions.

Not a construction of that paper: `sudoku_propagation.SudokuPropagation(rounds)` is a fixed-depth
(r rounds of constraint propagation) Sudoku predictor for the Sudoku decoding study.

`common.run_rounds` scans a rule over its rounds without the driver (tests, small studies).
"""

from diffserial.constructions.common import (
    Construction,
    peak_positions_in_use,
    positions_in_use,
    run_rounds,
    run_rounds_trajectory,
)

__all__ = ["Construction", "peak_positions_in_use", "positions_in_use", "run_rounds", "run_rounds_trajectory"]
