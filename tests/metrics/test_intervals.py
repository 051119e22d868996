"""Tests of diffserial.metrics.intervals against scipy's binomtest intervals and closed forms."""

import math

import numpy as np
import pytest
from scipy import stats

from diffserial.metrics import intervals


@pytest.mark.parametrize("k, n", [(0, 50), (17, 50), (50, 50), (3, 2048)])
def test_clopper_pearson_matches_scipy(k, n):
    ci = stats.binomtest(k, n).proportion_ci(confidence_level=0.95, method="exact")
    np.testing.assert_allclose(intervals.clopper_pearson(k, n), (ci.low, ci.high), atol=1e-9)


@pytest.mark.parametrize("confidence", [0.5, 0.9, 0.99])
def test_clopper_pearson_other_levels_and_closed_form_ends(confidence):
    ci = stats.binomtest(7, 30).proportion_ci(confidence_level=confidence, method="exact")
    np.testing.assert_allclose(intervals.clopper_pearson(7, 30, confidence), (ci.low, ci.high), atol=1e-9)
    a = 1 - confidence  # k = 0: upper = 1 - (a/2)^(1/n); k = n: lower = (a/2)^(1/n)
    assert intervals.clopper_pearson(0, 10, confidence) == (0.0, pytest.approx(1 - (a / 2) ** 0.1, rel=1e-9))
    assert intervals.clopper_pearson(10, 10, confidence) == (pytest.approx((a / 2) ** 0.1, rel=1e-9), 1.0)


def test_wilson_interval_closed_forms():
    lo, hi = intervals.wilson(0, 100)
    assert lo == 0.0 and hi == pytest.approx(1.96**2 / (100 + 1.96**2))
    lo, hi = intervals.wilson(50, 100)
    assert (lo + hi) / 2 == pytest.approx(0.5) and hi - lo == pytest.approx(2 * 1.96 * 0.5 / math.sqrt(100 + 1.96**2))


@pytest.mark.parametrize("k, n", [(0, 20), (3, 20), (11, 37), (37, 37), (500, 1000)])
def test_wilson_matches_scipy(k, n):
    z = stats.norm.ppf(0.975)
    ci = stats.binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
    np.testing.assert_allclose(intervals.wilson(k, n, z=z), (ci.low, ci.high), atol=1e-12)


def test_bootstrap_percentile_and_basic():
    reps = np.arange(101, dtype=np.float64)  # quantiles 0.025 / 0.975 of 0..100 are 2.5 / 97.5 exactly
    assert intervals.bootstrap_percentile(reps) == pytest.approx((2.5, 97.5), abs=1e-12)
    assert intervals.bootstrap_percentile(reps, 0.5) == pytest.approx((25.0, 75.0), abs=1e-12)
    assert intervals.bootstrap_basic(60.0, reps) == pytest.approx((120.0 - 97.5, 120.0 - 2.5), abs=1e-12)
    shuffled = np.random.default_rng(0).permutation(reps)
    assert intervals.bootstrap_percentile(shuffled) == intervals.bootstrap_percentile(reps)


def test_bad_inputs():
    with pytest.raises(ValueError, match="k must be an int in 0..5"):
        intervals.clopper_pearson(6, 5)
    with pytest.raises(ValueError, match="n must be an int >= 1"):
        intervals.wilson(0, 0)
    with pytest.raises(ValueError, match="confidence must be a number in"):
        intervals.clopper_pearson(1, 5, confidence=1.0)
    with pytest.raises(ValueError, match="replicates"):
        intervals.bootstrap_percentile([])
    with pytest.raises(ValueError, match="confidence"):
        intervals.bootstrap_percentile([1.0, 2.0], confidence=0.0)
