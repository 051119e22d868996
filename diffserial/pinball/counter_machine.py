"""Counter machines (Fischer, Meyer & Rosenberg 1968, as in the essay): representation, checks, interpreter.

A machine has k registers r_0..r_{k-1} (non-negative integers), a read-only tape ^ a_1 .. a_n $ with a
head, and numbered instructions 0..N-1. The machine starts at instruction 0 with every register 0 and
the head on a_1 (tape position 1; on $ when the word is empty). An instruction is either

    Halt(accept)                         stop; accept or reject the word, or
    Branches(rule_0, rule_1, ...)        the FIRST rule whose condition holds fires:
        condition: head symbol == rule.symbol (None: any) and, per register q,
                   r_q == 0 if rule.zero[q] is True, r_q != 0 if False, anything if None;
        action:    r_q += rule.delta[q] in {-1, 0, +1}, head += rule.move in {-1, 0, +1},
                   go to instruction rule.goto.

`validate` checks a machine statically over every (instruction, head symbol, zero pattern): some rule
fires, no zero register is decremented, the head never leaves ^..$, every jump is in range, and every
symbol is known. `transition_table` is the same enumeration as an array, which is what the force-field
compiler reads. `run` is the reference discrete interpreter.
"""

from __future__ import annotations

import dataclasses
import itertools
from typing import Sequence

import numpy as np

BEGIN, END = "^", "$"


@dataclasses.dataclass(frozen=True)
class Rule:
    """One guarded action of an instruction; see the module docstring."""

    goto: int
    delta: tuple[int, ...] = ()
    move: int = 0
    symbol: str | None = None
    zero: tuple[bool | None, ...] = ()


@dataclasses.dataclass(frozen=True)
class Branches:
    """A non-halting instruction: its rules, tried in order."""

    rules: tuple[Rule, ...]


@dataclasses.dataclass(frozen=True)
class Halt:
    """A halting instruction, accepting or rejecting."""

    accept: bool


Instruction = Branches | Halt


@dataclasses.dataclass(frozen=True)
class CounterMachine:
    """k registers, a tape alphabet (without ^ and $), and instructions 0..N-1 (0 is the start)."""

    name: str
    n_registers: int
    alphabet: tuple[str, ...]
    instructions: tuple[Instruction, ...]

    @property
    def symbols(self) -> tuple[str, ...]:
        """The tape symbols in table order: the alphabet, then ^ and $."""
        return tuple(self.alphabet) + (BEGIN, END)


@dataclasses.dataclass(frozen=True)
class Configuration:
    """Instruction pointer, registers and head position (tape index, 0 = ^)."""

    pc: int
    registers: tuple[int, ...]
    head: int


@dataclasses.dataclass(frozen=True)
class RunResult:
    """Outcome of `run`: the final configuration, whether it halted and accepted, steps executed."""

    final: Configuration
    halted: bool
    accepted: bool | None
    steps: int
    trace: tuple[Configuration, ...]


def rule(goto: int, *, inc: Sequence[int] | None = None, move: int = 0, symbol: str | None = None,
         zero: dict[int, bool] | None = None, k: int) -> Rule:
    """Build a Rule for a k-register machine from sparse arguments (inc per register, zero tests by index)."""
    delta = tuple(int(v) for v in inc) if inc is not None else (0,) * k
    tests = tuple((zero or {}).get(q) for q in range(k))
    return Rule(goto=goto, delta=delta, move=move, symbol=symbol, zero=tests)


def tape(machine: CounterMachine, word: str) -> tuple[str, ...]:
    """The tape ^ word $ as a tuple of symbols; unknown symbols raise ValueError."""
    unknown = sorted(set(word) - set(machine.alphabet))
    if unknown:
        raise ValueError(f"input {word!r} has symbols {unknown} outside the alphabet {machine.alphabet} of "
                         f"machine {machine.name!r}")
    return (BEGIN,) + tuple(word) + (END,)


def _matches(r: Rule, symbol: str, is_zero: Sequence[bool]) -> bool:
    if r.symbol is not None and r.symbol != symbol:
        return False
    return all(test is None or test == z for test, z in zip(r.zero, is_zero))


def fire(instruction: Branches, symbol: str, is_zero: Sequence[bool]) -> Rule | None:
    """The first rule of `instruction` whose condition holds for (head symbol, zero tests), or None."""
    return next((r for r in instruction.rules if _matches(r, symbol, is_zero)), None)


def zero_patterns(k: int) -> list[tuple[bool, ...]]:
    """All 2^k zero patterns in table order: pattern index z has bit q set iff register q is NON-zero."""
    return [tuple(not (z >> q) & 1 for q in range(k)) for z in range(2**k)]


def validate(machine: CounterMachine) -> None:
    """Raise ValueError for a machine that could misbehave on some input (checked exhaustively)."""
    k, n = machine.n_registers, len(machine.instructions)
    if k < 1:
        raise ValueError(f"machine {machine.name!r}: n_registers must be >= 1, got {k}")
    if n < 1:
        raise ValueError(f"machine {machine.name!r} has no instructions")
    if BEGIN in machine.alphabet or END in machine.alphabet or len(set(machine.alphabet)) != len(machine.alphabet):
        raise ValueError(f"machine {machine.name!r}: the alphabet {machine.alphabet} must be distinct symbols "
                         f"without {BEGIN!r} and {END!r}")
    for i, ins in enumerate(machine.instructions):
        if isinstance(ins, Halt):
            continue
        if not isinstance(ins, Branches) or not ins.rules:
            raise ValueError(f"instruction {i} of {machine.name!r} must be Halt(...) or Branches(non-empty rules), "
                             f"got {ins!r}")
        for r in ins.rules:
            where = f"instruction {i} of {machine.name!r}, rule {r}"
            if r.symbol is not None and r.symbol not in machine.symbols:
                raise ValueError(f"{where}: unknown symbol {r.symbol!r}; valid symbols: {machine.symbols}")
            if len(r.delta) != k or len(r.zero) != k:
                raise ValueError(f"{where}: delta and zero need {k} entries (one per register)")
            if any(d not in (-1, 0, 1) for d in r.delta) or r.move not in (-1, 0, 1):
                raise ValueError(f"{where}: register changes and head moves must be in {{-1, 0, +1}}")
            if not 0 <= r.goto < n:
                raise ValueError(f"{where}: jump to {r.goto} outside the program [0, {n - 1}]")
        for symbol in machine.symbols:
            for is_zero in zero_patterns(k):
                r = fire(ins, symbol, is_zero)
                case = f"instruction {i} of {machine.name!r} on symbol {symbol!r} with zero registers " \
                       f"{[q for q in range(k) if is_zero[q]]}"
                if r is None:
                    raise ValueError(f"{case}: no rule fires (every case needs a rule)")
                bad = [q for q in range(k) if is_zero[q] and r.delta[q] < 0]
                if bad:
                    raise ValueError(f"{case}: decrements zero register(s) {bad}")
                if (symbol == BEGIN and r.move < 0) or (symbol == END and r.move > 0):
                    raise ValueError(f"{case}: moves the head off the tape")


def transition_table(machine: CounterMachine) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(delta (N, A, 2^k, k+1), goto (N, A, 2^k), halting (N,), accepting (N,)) over every case.

    A indexes `machine.symbols`, the pattern index follows `zero_patterns`; delta's last entry is the
    head move. Rows of halting instructions hold delta 0 and goto = the instruction itself.
    """
    validate(machine)
    k, symbols = machine.n_registers, machine.symbols
    n, a, p = len(machine.instructions), len(symbols), 2**k
    delta = np.zeros((n, a, p, k + 1), np.int32)
    goto = np.zeros((n, a, p), np.int32)
    halting = np.zeros(n, bool)
    accepting = np.zeros(n, bool)
    for i, ins in enumerate(machine.instructions):
        if isinstance(ins, Halt):
            halting[i], accepting[i] = True, ins.accept
            goto[i] = i
            continue
        for (s, symbol), (z, is_zero) in itertools.product(enumerate(symbols), enumerate(zero_patterns(k))):
            r = fire(ins, symbol, is_zero)
            delta[i, s, z] = r.delta + (r.move,)
            goto[i, s, z] = r.goto
    return delta, goto, halting, accepting


def run(machine: CounterMachine, word: str, max_steps: int = 100_000) -> RunResult:
    """Reference interpreter: execute from instruction 0 until a Halt or `max_steps` instructions."""
    validate(machine)
    cells = tape(machine, word)
    config = Configuration(pc=0, registers=(0,) * machine.n_registers, head=1)
    trace = [config]
    for steps in range(max_steps + 1):
        ins = machine.instructions[config.pc]
        if isinstance(ins, Halt):
            return RunResult(config, True, ins.accept, steps, tuple(trace))
        if steps == max_steps:
            break
        r = fire(ins, cells[config.head], [v == 0 for v in config.registers])
        registers = tuple(v + d for v, d in zip(config.registers, r.delta))
        config = Configuration(pc=r.goto, registers=registers, head=config.head + r.move)
        trace.append(config)
    return RunResult(config, False, None, max_steps, tuple(trace))
