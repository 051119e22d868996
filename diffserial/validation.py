"""Argument checks shared by the whole library: each raises ValueError naming the argument, the value it got
and what was expected, in one wording:

    "{name} must be an int >= {minimum}; got {value!r}"      (check_int, check_positive_int)
    "{name} must be an int in {minimum}..{maximum}; got ..."  (check_int with a maximum)
    "{name} must be one of (...); got {value!r}"              (check_choice)
    "{name} must be a number in [low, high]; got {value!r}"   (check_real, check_open_unit)

Integers are Python or numpy integers, never bools. This module imports nothing from diffserial.
"""

from __future__ import annotations

import math
import numbers

import numpy as np

__all__ = ["check_choice", "check_int", "check_ints", "check_open_unit", "check_positive_int", "check_real",
           "check_variance_preserving", "is_int", "is_real"]


def is_int(value) -> bool:
    """True for a Python or numpy integer that is not a bool."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def is_real(value) -> bool:
    """True for a real number (Python or numpy) that is not a bool."""
    return isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_))


def _bound(minimum: int | None, maximum: int | None) -> str:
    if maximum is None:
        return f">= {minimum}"
    if minimum is None:
        return f"<= {maximum}"
    return f"in {minimum}..{maximum}"


def check_int(name: str, value, minimum: int | None = None, maximum: int | None = None, note: str = "") -> int:
    """int(value) if `value` is an integer (not a bool) in [minimum, maximum] (either end may be None);
    otherwise ValueError "{name} must be an int {bound}{note}; got {value!r}" (`note`, e.g.
    " (the vocabulary size V)", says what the argument is)."""
    ok = is_int(value) and (minimum is None or value >= minimum) and (maximum is None or value <= maximum)
    if not ok:
        bound = "" if minimum is None and maximum is None else " " + _bound(minimum, maximum)
        raise ValueError(f"{name} must be an int{bound}{note}; got {value!r}")
    return int(value)


def check_positive_int(name: str, value, note: str = "") -> int:
    """`check_int(name, value, 1)`: an integer >= 1."""
    return check_int(name, value, 1, note=note)


def check_ints(name: str, values, minimum: int, maximum: int | None = None) -> tuple[int, ...]:
    """`values` (a non-empty tuple or list of integers in [minimum, maximum], or one such integer) as a tuple
    of ints; otherwise ValueError "{name} must be an int (or a non-empty tuple of ints) {bound}; got ..."."""
    values = tuple(values) if isinstance(values, (tuple, list)) else (values,)
    ok = bool(values) and all(is_int(v) and v >= minimum and (maximum is None or v <= maximum) for v in values)
    if not ok:
        raise ValueError(f"{name} must be an int (or a non-empty tuple of ints) {_bound(minimum, maximum)}; "
                         f"got {values!r}")
    return tuple(int(v) for v in values)


def check_choice(name: str, value, options):
    """`value` if it is one of `options`; otherwise ValueError "{name} must be one of (...); got {value!r}"."""
    if value not in options:
        raise ValueError(f"{name} must be one of {tuple(options)}; got {value!r}")
    return value


def check_real(name: str, value, low: float, high: float | None = None, low_open: bool = False,
               high_open: bool = False) -> float:
    """float(value) if it is a finite real number (not a bool) in [low, high] (an end open with
    low_open / high_open; no upper end when high is None); otherwise ValueError "{name} must be a number
    in {interval}; got {value!r}"."""
    ok = is_real(value) and math.isfinite(value) and (value > low if low_open else value >= low)
    ok = ok and (high is None or (value < high if high_open else value <= high))
    if not ok:
        upper = "inf)" if high is None else f"{high}{')' if high_open else ']'}"
        raise ValueError(f"{name} must be a number in {'(' if low_open else '['}{low}, {upper}; got {value!r}")
    return float(value)


def check_open_unit(name: str, value) -> float:
    """`check_real(name, value, 0, 1)` with both ends open: a number in (0, 1)."""
    return check_real(name, value, 0, 1, low_open=True, high_open=True)


def check_variance_preserving(rule, process, rule_name: str | None = None, process_name: str | None = None) -> None:
    """ValueError if `rule.requires_variance_preserving` (the rule declares that its update assumes
    m(t)^2 + s(t)^2 = 1, e.g. ancestral / Li-Yan) and `process.variance_preserving` is False: "sampler
    {rule_name} needs a variance-preserving process (m^2 + s^2 = 1), got {process_name}" (the class names
    by default). The capability is read, never probed: every continuous rule declares it."""
    if rule.requires_variance_preserving and not process.variance_preserving:
        rule_name = type(rule).__name__ if rule_name is None else rule_name
        process_name = type(process).__name__ if process_name is None else process_name
        raise ValueError(f"sampler {rule_name} needs a variance-preserving process (m^2 + s^2 = 1), "
                         f"got {process_name}")
