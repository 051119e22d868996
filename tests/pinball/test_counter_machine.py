"""Counter machines: the interpreter against hand-computed answers, the static checks, the table."""

import numpy as np
import pytest

from diffserial.pinball import counter_machine as cm
from diffserial.pinball import programs


def _run(name, word):
    return cm.run(programs.PROGRAMS[name](), word)


@pytest.mark.parametrize("word, accepted, registers", [
    ("", True, (0, 0)), ("ab", True, (2, 0)), ("aab", True, (3, 0)), ("abbb", True, (4, 0)),
    ("ba", False, (0, 1)), ("aba", False, (1, 1)),
])
def test_add(word, accepted, registers):
    r = _run("add", word)
    assert r.halted and r.accepted == accepted and r.final.registers == registers


@pytest.mark.parametrize("word, accepted", [
    ("", True), ("a", True), ("ab", True), ("aab", True), ("abb", False), ("b", False), ("aaabbbb", False),
    ("ba", False),
])
def test_compare(word, accepted):
    assert _run("compare", word).accepted == accepted


@pytest.mark.parametrize("word, accepted", [
    ("", True), ("ab", True), ("aabb", True), ("aaabbb", True), ("a", False), ("b", False), ("aab", False),
    ("abb", False), ("ba", False), ("abab", False),
])
def test_anbn(word, accepted):
    assert _run("anbn", word).accepted == accepted


def test_anbn_step_count_by_hand():
    # a (count), b (go to 1), b (decrement), $ (go to 2), zero test (go to accept) = 5 instructions
    r = _run("anbn", "ab")
    assert r.steps == 5
    assert [(c.pc, c.registers, c.head) for c in r.trace] == [
        (0, (0,), 1), (0, (1,), 2), (1, (1,), 2), (1, (0,), 3), (2, (0,), 3), (4, (0,), 3)]


@pytest.mark.parametrize("m, n", [(0, 0), (1, 1), (2, 3), (3, 2), (10, 10)])
def test_multiply(m, n):
    r = _run("multiply", "a" * m + "b" * n)
    assert r.accepted and r.final.registers == (m, 0, m * n)
    # m counts; with n = 0 the $ halts (1 step); else 1 jump to the b loop, per b: the b, m moves into r1
    # plus the zero test, m moves back plus the zero test; then the $ test
    assert r.steps == (m + 1 if n == 0 else m + 2 + n * (2 * m + 3))


def test_the_long_program_runs_at_least_200_steps():
    assert _run("multiply", "a" * 10 + "b" * 10).steps >= 200


def test_increment():
    r = _run("increment", "abba")
    assert r.accepted and r.final.registers == (1,) and r.steps == 1


def test_max_steps_stops_without_halting():
    loop = cm.CounterMachine("loop", 1, ("a",), (cm.Branches((cm.rule(0, k=1),)),))
    r = cm.run(loop, "a", max_steps=7)
    assert not r.halted and r.accepted is None and r.steps == 7


def _machine(*rules, k=1, n_halts=1):
    return cm.CounterMachine("bad", k, ("a",), (cm.Branches(tuple(rules)),) + (cm.Halt(True),) * n_halts)


@pytest.mark.parametrize("machine, match", [
    (_machine(cm.rule(1, inc=(-1,), k=1)), "decrements zero register"),
    (_machine(cm.rule(5, k=1)), r"jump to 5 outside the program \[0, 1\]"),
    (_machine(cm.rule(1, symbol="c", k=1)), "unknown symbol 'c'"),
    (_machine(cm.rule(1, symbol="a", k=1)), "no rule fires"),
    (_machine(cm.rule(1, move=-1, k=1)), "moves the head off the tape"),
    (_machine(cm.rule(1, inc=(2,), k=1)), r"in \{-1, 0, \+1\}"),
    (_machine(cm.rule(1, k=2)), "need 1 entries"),
    (cm.CounterMachine("bad", 1, ("a", "$"), (cm.Halt(True),)), "without"),
])
def test_validation_errors(machine, match):
    with pytest.raises(ValueError, match=match):
        cm.validate(machine)


def test_unknown_input_symbol():
    with pytest.raises(ValueError, match="outside the alphabet"):
        _run("anbn", "abc")


def test_every_example_program_validates():
    for build in programs.PROGRAMS.values():
        cm.validate(build())


def test_transition_table_agrees_with_the_interpreter_rule():
    machine = programs.compare()
    delta, goto, halting, accepting = cm.transition_table(machine)
    assert delta.shape == (5, 4, 4, 3) and goto.shape == (5, 4, 4)
    assert list(halting) == [False, False, False, True, True] and list(accepting) == [False] * 3 + [True, False]
    # instruction 2, both registers non-zero (pattern 3): decrement both, stay
    assert goto[2, 0, 3] == 2 and list(delta[2, 0, 3]) == [-1, -1, 0]
    # instruction 2, r1 zero, r0 non-zero (pattern 1): accept
    assert goto[2, 0, 1] == 3 and list(delta[2, 0, 1]) == [0, 0, 0]
    # instruction 0 on 'a': count and move right
    assert goto[0, 0, 0] == 0 and list(delta[0, 0, 0]) == [1, 0, 1]


def test_random_words_are_reproducible_and_in_the_alphabet():
    a = programs.random_words(np.random.default_rng(3), 10, 5)
    b = programs.random_words(np.random.default_rng(3), 10, 5)
    assert a == b and all(len(w) <= 5 and set(w) <= {"a", "b"} for w in a)
    assert all(w == "a" * w.count("a") + "b" * w.count("b") for w in a[::2])
