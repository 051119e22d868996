"""Convergence-rate fits: the slope of log TV against log(number of steps).

A sampler of order r has TV ~ c T^-r for T steps, but only between two regimes where the measured
TV says nothing about r: at small T the error saturates (TV near 1), and at large T the discretisation
error drops below the finite-sample noise floor. `fit_loglog_slope` fits only the points between,
and records which ones it used and why.
"""

from __future__ import annotations

import dataclasses

import numpy as np


@dataclasses.dataclass(frozen=True)
class SlopeFit:
    """Least-squares fit ln(tv) = intercept + slope * ln(steps) over the usable points.

    `slope` and `intercept` are None when fewer than 2 points were usable; `used_steps` lists the
    usable steps either way and `rule` states the selection rule.
    """

    slope: float | None
    intercept: float | None
    used_steps: tuple
    n_used: int
    rule: str


def fit_loglog_slope(
    steps,
    tv,
    tv_lo,
    floor,
    *,
    floor_factor: float = 3.0,
    max_tv: float = 0.5,
) -> SlopeFit:
    """Fit the log-log slope of `tv` against `steps` on points clearly above the noise floor.

    Point i is used iff tv_lo[i] > floor_factor * floor[i] (its lower error bar is clearly above the
    noise floor) and tv[i] < max_tv (out of the saturated pre-asymptotic regime). `floor` is a
    scalar or one value per point. The fit is ordinary least squares of ln(tv) on ln(steps), so
    tv ~= exp(intercept) * steps**slope; a method of order r gives slope ~= -r.
    """
    steps = _as_1d("steps", steps)
    tv = _as_1d("tv", tv)
    tv_lo = _as_1d("tv_lo", tv_lo)
    if not steps.size == tv.size == tv_lo.size:
        raise ValueError(
            f"steps, tv, tv_lo must have equal lengths, got {steps.size}, {tv.size}, {tv_lo.size}"
        )
    floor = np.asarray(floor, dtype=np.float64)
    if floor.ndim > 1 or (floor.ndim == 1 and floor.size != steps.size):
        raise ValueError(
            f"floor must be a scalar or have length {steps.size}, got shape {floor.shape}"
        )
    if not np.all(np.isfinite(floor)) or np.any(floor < 0):
        raise ValueError(f"floor must be finite and non-negative, got {floor}")
    if not np.all(steps > 0):
        raise ValueError(f"steps must be positive, got {steps}")
    if not floor_factor >= 0:
        raise ValueError(f"floor_factor must be >= 0, got {floor_factor}")
    if not max_tv > 0:
        raise ValueError(f"max_tv must be > 0, got {max_tv}")

    used = (tv_lo > floor_factor * floor) & (tv < max_tv)
    used_steps = tuple(s.item() for s in steps[used])
    rule = (
        f"tv_lo > {floor_factor:g} * floor and tv < {max_tv:g}; "
        "least squares of ln(tv) on ln(steps)"
    )
    if len(used_steps) < 2:
        return SlopeFit(None, None, used_steps, len(used_steps), rule)
    slope, intercept = np.polyfit(np.log(steps[used]), np.log(tv[used]), 1)
    return SlopeFit(float(slope), float(intercept), used_steps, len(used_steps), rule)


def _as_1d(name: str, values) -> np.ndarray:
    """`values` as a 1-D numpy array (dtype kept, so integer steps stay integers)."""
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {arr.shape}")
    return arr
