"""Tests of diffserial.metrics.tv: hand-computed TV, the noise floor, bootstrap coverage."""

import math

import jax.numpy as jnp
import numpy as np
import pytest

from diffserial.metrics import tv


def test_histogram_counts_valid_and_invalid():
    hist = tv.histogram(jnp.array([0, 2, 2, -1, 3, 4, 7, 1, 2], dtype=jnp.int32), 4)
    np.testing.assert_array_equal(hist.counts, [1, 1, 3, 1])
    assert hist.counts.dtype == np.int64
    assert hist.n_invalid == 3
    assert hist.n == 9


def test_tv_distance_hand_computed():
    # counts (2, 1, 1) of N = 4 vs p = (1/4, 1/4, 1/2): 1/2 (|1/2-1/4| + 0 + |1/4-1/2|) = 1/4.
    hist = tv.histogram(np.array([0, 0, 1, 2]), 3)
    assert tv.tv_distance(hist, [0.25, 0.25, 0.5]) == pytest.approx(0.25, abs=1e-15)
    # Exact match gives 0.
    assert tv.tv_distance(hist, [0.5, 0.25, 0.25]) == pytest.approx(0.0, abs=1e-15)


def test_tv_distance_counts_invalid_as_extra_outcome():
    # counts (1, 2) + 1 invalid, N = 4, p = (1/2, 1/2):
    # 1/2 (|1/4 - 1/2| + |1/2 - 1/2| + 1/4) = 1/4.
    hist = tv.histogram(np.array([0, 1, 1, -1]), 2)
    assert tv.tv_distance(hist, [0.5, 0.5]) == pytest.approx(0.25, abs=1e-15)
    # All samples invalid: TV = 1.
    assert tv.tv_distance(tv.histogram(np.array([-1, 5]), 2), [0.5, 0.5]) == 1.0


def test_floor_exact_tiny_case():
    # K = 2 uniform, n = 1: every draw is (1, 0) or (0, 1), TV = 1/2 exactly.
    floor = tv.tv_floor([0.5, 0.5], 1, reps=50)
    assert floor.mean == 0.5 and floor.q95 == 0.5 and floor.reps == 50
    assert floor.reference == pytest.approx(math.sqrt(1 / (2 * math.pi)))


def test_floor_uniform_matches_large_n_reference():
    k, n = 16, 100_000
    floor = tv.tv_floor(np.full(k, 1 / k), n, seed=1, reps=1000)
    assert floor.reference == pytest.approx(math.sqrt((k - 1) / (2 * math.pi * n)))
    assert floor.mean == pytest.approx(floor.reference, rel=0.03)
    assert floor.q95 > floor.mean


def test_floor_nonuniform_below_reference():
    k, n = 16, 100_000
    pmf = 0.5 ** np.arange(1, k + 1)
    pmf[-1] *= 2  # geometric, normalised
    floor = tv.tv_floor(pmf, n, seed=2, reps=1000)
    approx = np.sqrt(pmf * (1 - pmf)).sum() / math.sqrt(2 * math.pi * n)
    assert floor.mean < 0.7 * floor.reference
    # Cells with n p_k ~ 1 make the normal approximation loose, hence the wide tolerance.
    assert floor.mean == pytest.approx(approx, rel=0.1)
    assert floor.q95 > floor.mean


def test_floor_is_reproducible_and_seed_dependent():
    pmf = np.full(8, 1 / 8)
    assert tv.tv_floor(pmf, 100, seed=3) == tv.tv_floor(pmf, 100, seed=3)
    assert tv.tv_floor(pmf, 100, seed=3) != tv.tv_floor(pmf, 100, seed=4)


def test_bootstrap_ci_coverage():
    # q on K + 1 outcomes (the last is "invalid", cell -1) against p uniform on K = 4 cells.
    p = np.full(4, 0.25)
    q = np.array([0.4, 0.25, 0.15, 0.15, 0.05])
    true_tv = 0.5 * (np.abs(q[:4] - p).sum() + q[4])
    cells_of_outcome = np.array([0, 1, 2, 3, -1])
    rng = np.random.default_rng(5)
    n, n_experiments = 1000, 200
    covered = 0
    for i in range(n_experiments):
        cells = cells_of_outcome[rng.choice(5, size=n, p=q)]
        lo, hi = tv.bootstrap_ci(tv.histogram(cells, 4), p, seed=i, reps=200)
        covered += lo <= true_tv <= hi
    assert 0.88 <= covered / n_experiments <= 0.99


def test_bootstrap_ci_accounts_for_unseen_cells():
    # Samples only ever land in the first half of the cells; the unseen half carries p-mass 1/2,
    # which must enter every resampled TV: TV = 1/2 (sum_{k < 32} |c_k/N - 1/64| + 1/2) >= 1/2.
    k = 64
    p = np.full(k, 1 / k)
    q = np.arange(1, k // 2 + 1) / np.arange(1, k // 2 + 1).sum()
    true_tv = 0.5 * (np.abs(q - 1 / k).sum() + 0.5)
    cells = np.random.default_rng(6).choice(k // 2, size=5000, p=q)
    hist = tv.histogram(cells, k)
    lo, hi = tv.bootstrap_ci(hist, p, seed=0, reps=300)
    assert 0.5 <= lo < tv.tv_distance(hist, p) < hi
    assert lo <= true_tv <= hi
    assert hi - lo < 0.05


def test_tv_report_keys_and_consistency():
    k = 8
    p = np.full(k, 1 / k)
    cells = np.append(np.random.default_rng(7).integers(0, k, size=2000), [-1, -1])
    report = tv.tv_report(cells, k, p, seed=0, reps=100)
    assert set(report) == {
        "tv", "tv_lo", "tv_hi", "tv_floor", "tv_floor_q95", "tv_floor_ref", "n_seeds", "n_invalid",
    }
    assert report["n_seeds"] == 2002 and report["n_invalid"] == 2
    assert report["tv"] == tv.tv_distance(tv.histogram(cells, k), p)
    assert report["tv_lo"] <= report["tv"] <= report["tv_hi"]
    assert report["tv_floor_ref"] == pytest.approx(math.sqrt((k - 1) / (2 * math.pi * 2002)))
    assert report["tv_floor"] < report["tv_floor_q95"]


@pytest.mark.parametrize(
    "pmf, match",
    [
        ([0.5, 0.5, 0.0], "length 3, expected n_cells = 4"),
        ([[0.25, 0.25], [0.25, 0.25]], "1-D"),
        ([0.5, 0.5, -0.25, 0.25], "non-negative"),
        ([0.5, 0.5, np.nan, 0.0], "finite"),
        ([0.25, 0.25, 0.25, 0.2], "sum to 1"),
    ],
)
def test_bad_pmf_raises(pmf, match):
    hist = tv.histogram(np.array([0, 1, 2, 3]), 4)
    with pytest.raises(ValueError, match=match):
        tv.tv_distance(hist, pmf)
    with pytest.raises(ValueError, match=match):
        tv.bootstrap_ci(hist, pmf)


def test_bad_arguments_raise():
    p = np.full(4, 0.25)
    with pytest.raises(ValueError, match="integer dtype"):
        tv.histogram(np.array([0.0, 1.0]), 4)
    with pytest.raises(ValueError, match="n_cells"):
        tv.histogram(np.array([0, 1]), 0)
    with pytest.raises(ValueError, match="N = 0"):
        tv.tv_distance(tv.histogram(np.array([], dtype=np.int64), 4), p)
    with pytest.raises(ValueError, match="n must be an int >= 1"):
        tv.tv_floor(p, 0)
    with pytest.raises(ValueError, match="reps"):
        tv.tv_floor(p, 10, reps=0)
    with pytest.raises(ValueError, match="level"):
        tv.bootstrap_ci(tv.histogram(np.array([0, 1]), 4), p, level=1.0)


def test_bootstrap_ci_is_bias_corrected_for_an_exact_sampler():
    """Exact samples, K >> 1: the plug-in TV sits at the floor although the truth is 0. The basic
    interval is moved down by the estimated bias (a percentile interval would lie above TV), so
    tv_lo falls below the floor and the point can never count as 'clearly above the floor'."""
    k, n = 256, 20_000
    p = np.full(k, 1 / k)
    cells = np.random.default_rng(2).choice(k, size=n, p=p)
    hist = tv.histogram(cells, k)
    lo, hi = tv.bootstrap_ci(hist, p, seed=0, reps=200)
    floor = tv.tv_floor(p, n, seed=1, reps=200)
    assert hi < tv.tv_distance(hist, p)
    assert lo < 0.6 * floor.mean
