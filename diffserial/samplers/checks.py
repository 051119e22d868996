"""Argument checks shared by the sampler modules (ValueError naming the value and what was expected)."""

from __future__ import annotations

import math

import numpy as np


def check_positive_int(name: str, value) -> None:
    """ValueError unless value is an integer >= 1 (bool is not an integer here)."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1; got {value!r}")


def check_real(name: str, value, low: float, high: float | None = None, low_open: bool = False) -> None:
    """ValueError unless value is a finite real number in [low, high] ((low, high] with low_open)."""
    ok = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)
    ok = ok and math.isfinite(value) and (value > low if low_open else value >= low)
    ok = ok and (high is None or value <= high)
    if not ok:
        interval = f"{'(' if low_open else '['}{low}, {'inf)' if high is None else f'{high}]'}"
        raise ValueError(f"{name} must be a real number in {interval}; got {value!r}")


__all__ = ["check_positive_int", "check_real"]
