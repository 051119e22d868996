"""Confidence intervals for a binomial proportion and for a bootstrapped statistic (host-side, float64).

`clopper_pearson` -- the exact binomial interval (the studies' accuracy and odd-rate intervals).
`wilson` -- the Wilson score interval (the pinball study's success and leak rates).
`bootstrap_percentile` / `bootstrap_basic` -- the percentile and basic (reverse-percentile) bootstrap
intervals from resampled replicates of a statistic (`tv.bootstrap_ci` uses the basic one).
"""

from __future__ import annotations

import math

import numpy as np
from scipy import stats

from diffserial.validation import check_int, check_open_unit

__all__ = ["bootstrap_basic", "bootstrap_percentile", "clopper_pearson", "wilson"]


def _check_counts(k, n) -> tuple[int, int]:
    n = check_int("n", n, 1)
    return check_int("k", k, 0, n), n


def clopper_pearson(k: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Exact (Clopper-Pearson) interval for k successes of n at `confidence`; with a = 1 - confidence,

        lower = Beta(a/2; k, n - k + 1) quantile   (0 if k = 0),
        upper = Beta(1 - a/2; k + 1, n - k) quantile   (1 if k = n),

    so each end is a one-sided (1 - a/2) bound and the coverage is >= confidence for every p.
    """
    k, n = _check_counts(k, n)
    a = 1.0 - check_open_unit("confidence", confidence)
    lower = 0.0 if k == 0 else float(stats.beta.ppf(a / 2, k, n - k + 1))
    upper = 1.0 if k == n else float(stats.beta.ppf(1 - a / 2, k + 1, n - k))
    return lower, upper


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval for k successes of n, p = k / n (z = 1.96: about 95%):

        centre = (p + z^2 / (2n)) / (1 + z^2 / n),
        half   = z sqrt(p (1 - p) / n + z^2 / (4 n^2)) / (1 + z^2 / n),
        (lo, hi) = (max(0, centre - half), min(1, centre + half)).
    """
    k, n = _check_counts(k, n)
    if not z > 0:
        raise ValueError(f"z must be > 0; got {z!r}")
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def bootstrap_percentile(replicates, confidence: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap interval [q_a, q_b] from the resampled statistics `replicates` (R,):
    q_a, q_b = the (1 - confidence)/2 and (1 + confidence)/2 empirical quantiles of the replicates
    (numpy's linear interpolation between order statistics)."""
    confidence = check_open_unit("confidence", confidence)
    reps = np.asarray(replicates, dtype=np.float64)
    if reps.ndim != 1 or reps.size < 1 or not np.all(np.isfinite(reps)):
        raise ValueError(f"replicates must be a non-empty 1-D array of finite numbers; got shape {reps.shape}")
    q_a, q_b = np.quantile(reps, [(1.0 - confidence) / 2.0, (1.0 + confidence) / 2.0])
    return float(q_a), float(q_b)


def bootstrap_basic(estimate: float, replicates, confidence: float = 0.95) -> tuple[float, float]:
    """Basic (reverse-percentile) bootstrap interval of the statistic `estimate` = theta:

        (lo, hi) = (2 theta - q_b, 2 theta - q_a),   [q_a, q_b] = bootstrap_percentile(replicates, confidence).

    Reflecting around theta corrects the interval for the statistic's bootstrap-estimated bias
    (mean of the replicates minus theta) instead of carrying it a second time as [q_a, q_b] does."""
    q_a, q_b = bootstrap_percentile(replicates, confidence)
    return 2.0 * estimate - q_b, 2.0 * estimate - q_a
