"""Tests of diffserial.metrics.slopes: exponent recovery and the point-selection rule."""

import numpy as np
import pytest

from diffserial.metrics.slopes import fit_loglog_slope


@pytest.mark.parametrize(
    "order, expected_steps",
    [
        # tv = 4/T: T <= 8 has tv >= 0.5 (saturated), T = 1024 has tv_lo < 3 * floor.
        (1, (16, 32, 64, 128, 256)),
        # tv = 4/T^2: T <= 2 saturated, T >= 32 at or near the floor.
        (2, (4, 8, 16)),
    ],
)
def test_recovers_known_exponent_and_excludes_floor_and_saturation(order, expected_steps):
    steps = np.array([1, 2, 4, 8, 16, 32, 64, 128, 256, 1024])
    floor = 2e-3
    tv = np.maximum(4.0 * steps.astype(float) ** -order, floor)
    tv_lo = 0.9 * tv
    fit = fit_loglog_slope(steps, tv, tv_lo, floor)
    assert fit.used_steps == expected_steps
    assert fit.n_used == len(expected_steps)
    assert fit.slope == pytest.approx(-order, abs=1e-12)
    assert fit.intercept == pytest.approx(np.log(4.0), abs=1e-10)
    assert fit.rule.startswith("tv_lo > 3 * floor and tv < 0.5")


def test_fit_is_least_squares_with_noise():
    rng = np.random.default_rng(0)
    steps = np.geomspace(10, 1000, 12)
    tv = 0.3 * (steps / 10) ** -1.5 * np.exp(rng.normal(0, 0.05, steps.size))
    fit = fit_loglog_slope(steps, tv, 0.8 * tv, 0.0)
    slope, intercept = np.polyfit(np.log(steps), np.log(tv), 1)
    assert fit.n_used == 12
    assert fit.slope == pytest.approx(slope) and fit.intercept == pytest.approx(intercept)
    assert fit.slope == pytest.approx(-1.5, abs=0.1)


def test_per_point_floor_and_factor():
    steps = [10, 20, 40, 80]
    tv = [0.1, 0.05, 0.025, 0.0125]
    # Per-point floor: the last point's floor is too high for floor_factor = 2.
    fit = fit_loglog_slope(steps, tv, tv, [0.001, 0.001, 0.001, 0.01], floor_factor=2.0)
    assert fit.used_steps == (10, 20, 40)
    assert fit.slope == pytest.approx(-1.0)


def test_fewer_than_two_points_gives_none():
    # T = 10 saturated; T = 40 has tv above 3 * floor but its lower bar tv_lo is not.
    fit = fit_loglog_slope([10, 20, 40], [0.9, 0.2, 0.01], [0.8, 0.15, 0.002], 1e-3)
    assert fit.slope is None and fit.intercept is None
    assert fit.used_steps == (20,) and fit.n_used == 1
    empty = fit_loglog_slope([10, 20], [0.9, 0.8], [0.8, 0.7], 1e-3)
    assert empty.slope is None and empty.used_steps == () and empty.n_used == 0


@pytest.mark.parametrize(
    "args, match",
    [
        (([1, 2, 3], [0.1, 0.05], [0.1, 0.05], 0.0), "equal lengths"),
        (([0, 2], [0.1, 0.05], [0.1, 0.05], 0.0), "positive"),
        (([1, 2], [0.1, 0.05], [0.1, 0.05], [0.0, 0.0, 0.0]), "floor"),
        (([1, 2], [0.1, 0.05], [0.1, 0.05], -1.0), "floor"),
    ],
)
def test_bad_input_raises(args, match):
    with pytest.raises(ValueError, match=match):
        fit_loglog_slope(*args)
