"""Example counter machines over the alphabet {a, b} (tape ^ word $, head starts on the first letter).

    increment   1 register: r0 += 1, accept (one step; the short program of the tests)
    add         2 registers: a^m b^n -> r0 = m + n (r1 moved into r0 after counting); rejects words
                not of the form a*b*
    compare     2 registers: a^m b^n -> accept iff m >= n (count both, then decrement both)
    anbn        1 register: decides { a^n b^n : n >= 0 }
    multiply    3 registers: a^m b^n -> r2 = m n, r0 = m, r1 = 0; per b, r0 is added to r2 while moved
                into r1, then moved back. a^10 b^10 runs 242 steps (the long program).

`PROGRAMS` maps names to builders; `random_words` draws the study's inputs.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from diffserial.pinball.counter_machine import END, Branches, CounterMachine, Halt, rule

ALPHABET = ("a", "b")


def increment() -> CounterMachine:
    """r0 <- r0 + 1, then accept."""
    return CounterMachine("increment", 1, ALPHABET, (Branches((rule(1, inc=(1,), k=1),)), Halt(True)))


def add() -> CounterMachine:
    """a^m b^n: count a's into r0 and b's into r1, then move r1 into r0; accept with r0 = m + n."""
    k = 2
    return CounterMachine("add", k, ALPHABET, (
        Branches((rule(0, inc=(1, 0), move=1, symbol="a", k=k), rule(1, symbol="b", k=k),
                  rule(2, symbol=END, k=k), rule(4, k=k))),
        Branches((rule(1, inc=(0, 1), move=1, symbol="b", k=k), rule(2, symbol=END, k=k), rule(4, k=k))),
        Branches((rule(2, inc=(1, -1), zero={1: False}, k=k), rule(3, k=k))),
        Halt(True),
        Halt(False),
    ))


def compare() -> CounterMachine:
    """a^m b^n: accept iff m >= n (count both, then decrement both until r1 or r0 is empty)."""
    k = 2
    return CounterMachine("compare", k, ALPHABET, (
        Branches((rule(0, inc=(1, 0), move=1, symbol="a", k=k), rule(1, symbol="b", k=k),
                  rule(2, symbol=END, k=k), rule(4, k=k))),
        Branches((rule(1, inc=(0, 1), move=1, symbol="b", k=k), rule(2, symbol=END, k=k), rule(4, k=k))),
        Branches((rule(3, zero={1: True}, k=k), rule(4, zero={0: True}, k=k), rule(2, inc=(-1, -1), k=k))),
        Halt(True),
        Halt(False),
    ))


def anbn() -> CounterMachine:
    """Decide { a^n b^n }: +1 per leading a, -1 per b, reject on a after b, on b with r0 = 0, or on $ with r0 > 0."""
    k = 1
    return CounterMachine("anbn", k, ALPHABET, (
        Branches((rule(0, inc=(1,), move=1, symbol="a", k=k), rule(1, symbol="b", k=k),
                  rule(2, symbol=END, k=k), rule(3, k=k))),
        Branches((rule(1, inc=(-1,), move=1, symbol="b", zero={0: False}, k=k), rule(2, symbol=END, k=k),
                  rule(3, k=k))),
        Branches((rule(4, zero={0: True}, k=k), rule(3, k=k))),
        Halt(False),
        Halt(True),
    ))


def multiply() -> CounterMachine:
    """a^m b^n -> r2 = m n: r0 = m; per b, move r0 into r1 adding 1 to r2 each time, then move r1 back."""
    k = 3
    return CounterMachine("multiply", k, ALPHABET, (
        Branches((rule(0, inc=(1, 0, 0), move=1, symbol="a", k=k), rule(1, symbol="b", k=k),
                  rule(4, symbol=END, k=k), rule(5, k=k))),
        Branches((rule(2, move=1, symbol="b", k=k), rule(4, symbol=END, k=k), rule(5, k=k))),
        Branches((rule(2, inc=(-1, 1, 1), zero={0: False}, k=k), rule(3, k=k))),
        Branches((rule(3, inc=(1, -1, 0), zero={1: False}, k=k), rule(1, k=k))),
        Halt(True),
        Halt(False),
    ))


PROGRAMS: dict[str, Callable[[], CounterMachine]] = {
    "increment": increment, "add": add, "compare": compare, "anbn": anbn, "multiply": multiply,
}


def random_words(rng: np.random.Generator, count: int, max_len: int) -> list[str]:
    """`count` words: half a^m b^n (m, n uniform with m + n <= max_len), half uniform over {a, b}^<=max_len."""
    words = []
    for j in range(count):
        if j % 2 == 0:
            m = int(rng.integers(0, max_len + 1))
            words.append("a" * m + "b" * int(rng.integers(0, max_len - m + 1)))
        else:
            words.append("".join(rng.choice(ALPHABET, size=int(rng.integers(0, max_len + 1)))))
    return words

