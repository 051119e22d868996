"""Inherently serial tasks and their controls: keyed generators with exact answers and checkers.

Every task is a frozen dataclass with the interface of `common.SerialTask`: `sample(key, batch)` ->
`Example(prompt (B, Lp), answer (B, La), cot (B, Lc) or None)` (int32 tokens of one vocabulary of size
`vocab_size`; example i depends only on fold_in(key, i)), and `check(prompt, answer) -> bool (B,)`.

    name            factory                         class / complexity         chain of thought
    parity          group_words.parity_task(n)      TC0 (Z_2 word problem)     prefix parities
    majority        group_words.MajorityTask(n)     TC0                        prefix counts
    sum_mod         group_words.sum_mod_task(n, m)  TC0 (Z_m word problem)     prefix sums
    s5, a5          group_words.s5_task(n), a5_task NC1-complete word problems prefix products
    s5_gen, a5_gen  group_words.s5_generators_task  the same, words over 2 generators
    rule110         automata.rule110_task(w, N)     P-complete (Rule 110)      intermediate rows
    rule110_cell    automata.rule110_cell_task(N)   its middle cell, width 2N+1 rows up to that cell
    elementary_ca   automata.ElementaryCATask       any Wolfram rule           intermediate rows
    circuit_value   circuit_value.CircuitValueTask  P-complete (CVP)           gate values by layer
    do1             do1.Do1Task                     P-complete to approximate  gate values by layer
    do1_2afc        do1.Do1ForcedChoiceTask         Thm G.2 forced choice      gate values by layer
    mechanics       mechanics.MechanicsTask(T)      1-D elastic lattice gas    states at ticks 1..T-1
    free_flight     mechanics.free_flight_task(T)   control: closed form       states at ticks 1..T-1
    billiards       billiards.BilliardBallTask(T)   P-complete (2-D BBMCA)     grids at steps 1..T-1
    billiards_free_flight
                    billiards.billiards_free_flight_task(T)   control: closed form   grids at steps 1..T-1
    arithmetic_circuit
                    arithmetic_circuit.ArithmeticCircuitTask   Z_p circuit value   gate values by layer
    sudoku          sudoku.SudokuTask(difficulty)   host-side, unique puzzles  none

`make_task(name, *args, **kwargs)` builds one by name (ValueError listing the names otherwise).
"""

from diffserial.registry import lookup
from diffserial.serial_tasks.arithmetic_circuit import ArithmeticCircuitTask
from diffserial.serial_tasks.automata import ElementaryCATask, rule110_cell_task, rule110_task
from diffserial.serial_tasks.billiards import BilliardBallTask, billiards_free_flight_task
from diffserial.serial_tasks.circuit_value import CircuitValueTask
from diffserial.serial_tasks.common import Example, SerialTask
from diffserial.serial_tasks.do1 import Do1ForcedChoiceTask, Do1Task, switchover_estimate
from diffserial.serial_tasks.group_words import (
    MajorityTask,
    WordProblemTask,
    a5_generators_task,
    a5_task,
    parity_task,
    s5_generators_task,
    s5_task,
    sum_mod_task,
)
from diffserial.serial_tasks.mechanics import MechanicsTask, free_flight_task
from diffserial.serial_tasks.sudoku import SudokuTask

TASKS = {
    "parity": parity_task,
    "majority": MajorityTask,
    "sum_mod": sum_mod_task,
    "s5": s5_task,
    "a5": a5_task,
    "s5_gen": s5_generators_task,
    "a5_gen": a5_generators_task,
    "rule110": rule110_task,
    "rule110_cell": rule110_cell_task,
    "elementary_ca": ElementaryCATask,
    "circuit_value": CircuitValueTask,
    "do1": Do1Task,
    "do1_2afc": Do1ForcedChoiceTask,
    "mechanics": MechanicsTask,
    "free_flight": free_flight_task,
    "billiards": BilliardBallTask,
    "billiards_free_flight": billiards_free_flight_task,
    "arithmetic_circuit": ArithmeticCircuitTask,
    "sudoku": SudokuTask,
}


def make_task(name: str, *args, **kwargs) -> SerialTask:
    """TASKS[name](*args, **kwargs); an unknown name raises ValueError listing the valid ones."""
    return lookup(TASKS, "serial task", name)(*args, **kwargs)


__all__ = [
    "TASKS", "ArithmeticCircuitTask", "BilliardBallTask", "CircuitValueTask", "Do1ForcedChoiceTask", "Do1Task",
    "ElementaryCATask", "Example", "MajorityTask", "MechanicsTask", "SerialTask", "SudokuTask", "WordProblemTask",
    "a5_generators_task", "a5_task", "billiards_free_flight_task", "free_flight_task", "make_task", "parity_task",
    "rule110_cell_task", "rule110_task", "s5_generators_task", "s5_task", "sum_mod_task", "switchover_estimate",
]
