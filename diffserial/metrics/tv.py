"""Total-variation distance between samples and a known pmf over K cells, with honest error bars.

Samples are binned into cells 0..K-1 by the caller; an index outside [0, K) (e.g. -1 for a
non-finite sample) is an *invalid* sample. With N samples, c_k of them in cell k and N_inv invalid,
the empirical distribution lives on K+1 outcomes and the target p gives the extra outcome mass 0:

    TV = 1/2 ( sum_k |c_k/N - p_k| + N_inv/N ).

Even a perfect sampler has TV > 0 at finite N. `tv_floor` gives that noise floor (TV of an exact
multinomial draw of size N from p), and `bootstrap_ci` a percentile-bootstrap interval of TV.
All bookkeeping is host-side numpy float64.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from diffserial.metrics.intervals import bootstrap_basic
from diffserial.validation import check_positive_int

_PMF_ATOL = 1e-9
# Multinomial draws are generated in blocks of at most this many int64 entries (32 MiB).
_BLOCK_ENTRIES = 1 << 22


@dataclasses.dataclass(frozen=True, eq=False)
class Histogram:
    """Cell counts of N samples: `counts[k]` samples in cell k, `n_invalid` outside [0, K).

    `counts` is stored as a read-only np.int64 copy. Compared by identity (arrays have no
    scalar equality).
    """

    counts: np.ndarray
    n_invalid: int

    def __post_init__(self):
        counts = np.array(self.counts, dtype=np.int64)
        if counts.ndim != 1 or counts.size == 0:
            raise ValueError(f"counts must be a non-empty 1-D array, got shape {counts.shape}")
        if np.any(counts < 0):
            raise ValueError(f"counts must be non-negative, got min {counts.min()}")
        n_invalid = int(self.n_invalid)
        if n_invalid < 0:
            raise ValueError(f"n_invalid must be >= 0, got {self.n_invalid}")
        counts.setflags(write=False)
        object.__setattr__(self, "counts", counts)
        object.__setattr__(self, "n_invalid", n_invalid)

    @property
    def n(self) -> int:
        """Total number of samples N = sum_k c_k + N_inv."""
        return int(self.counts.sum()) + self.n_invalid


@dataclasses.dataclass(frozen=True)
class Floor:
    """Finite-sample noise floor of TV for n samples from the target itself.

    `mean` and `q95` are the Monte-Carlo mean and 95% quantile over `reps` exact multinomial
    draws; `reference` = sqrt((K-1) / (2 pi n)) is the large-n value for a uniform pmf (see
    `tv_floor`).
    """

    mean: float
    q95: float
    reference: float
    reps: int


def histogram(cells, n_cells: int) -> Histogram:
    """Count integer cell indices (jax or numpy array, any shape) into `n_cells` cells.

    Indices outside [0, n_cells) are not dropped: they are counted in `n_invalid`.
    """
    n_cells = check_positive_int("n_cells", n_cells)
    cells = np.asarray(cells).ravel()
    if not np.issubdtype(cells.dtype, np.integer):
        raise ValueError(f"cells must have an integer dtype, got {cells.dtype}")
    try:  # common case, one pass: all indices valid (bincount rejects negatives, grows past n_cells)
        counts = np.bincount(cells, minlength=n_cells)
        if counts.size == n_cells:
            return Histogram(counts=counts, n_invalid=0)
    except ValueError:
        pass
    valid = (cells >= 0) & (cells < n_cells)
    counts = np.bincount(cells[valid], minlength=n_cells)
    return Histogram(counts=counts, n_invalid=cells.size - int(np.count_nonzero(valid)))


def tv_distance(hist: Histogram, pmf) -> float:
    """TV = 1/2 ( sum_k |c_k/N - p_k| + N_inv/N ) between the samples in `hist` and `pmf`."""
    pmf = _check_pmf(pmf, hist.counts.size)
    n = _sample_count(hist)
    return 0.5 * (float(np.abs(hist.counts / n - pmf).sum()) + hist.n_invalid / n)


def tv_floor(pmf, n: int, seed: int | np.random.SeedSequence = 0, reps: int = 200) -> Floor:
    """Noise floor: distribution of TV(c/n, p) for c ~ Multinomial(n, p), over `reps` draws.

    Large-n reference. Each c_k ~ Binomial(n, p_k); for n p_k >> 1 the normal approximation gives
    E|c_k/n - p_k| ~= sqrt(2 p_k (1 - p_k) / (pi n)), so

        E TV ~= 1/2 sum_k sqrt(2 p_k (1-p_k) / (pi n)) = sum_k sqrt(p_k (1-p_k)) / sqrt(2 pi n)
             <= sqrt((K-1) / (2 pi n)) = `reference`,

    by Cauchy-Schwarz, sum_k sqrt(p_k(1-p_k)) <= sqrt(K sum_k p_k(1-p_k)) = sqrt(K (1 - sum p_k^2))
    <= sqrt(K-1), with equality iff p is uniform over all K cells. So `reference` is the large-n
    floor of the uniform pmf and an upper bound on the large-n approximation for any pmf over K
    cells. It is not a bound at finite n: with n p_k ~ 1 the binomial mean absolute deviation can
    exceed the normal one, and for n << K the floor saturates below 1 while `reference` grows.
    An exact bound at every n is E TV <= 1/2 sum_k sqrt(p_k(1-p_k)/n) <= sqrt((K-1)/(4 n))
    (Jensen). `mean` and `q95` are exact Monte-Carlo estimates and need none of this.

    Cost O(reps * K) via numpy's multinomial; cells with p_k = 0 are skipped (never drawn).
    """
    pmf = _check_pmf(pmf, None)
    n = check_positive_int("n", n)
    reps = check_positive_int("reps", reps)
    target = pmf[pmf > 0]
    tvs = _multinomial_tvs(np.random.default_rng(seed), n, target, target, 0.0, reps)
    return Floor(
        mean=float(tvs.mean()),
        q95=float(np.quantile(tvs, 0.95)),
        reference=math.sqrt((pmf.size - 1) / (2.0 * math.pi * n)),
        reps=reps,
    )


def bootstrap_ci(
    hist: Histogram,
    pmf,
    seed: int | np.random.SeedSequence = 0,
    reps: int = 200,
    level: float = 0.95,
) -> tuple[float, float]:
    """Basic (reverse-percentile) bootstrap interval (lo, hi) of TV at confidence `level`.

    Resampling the N samples with replacement is a draw c* ~ Multinomial(N, q_hat) with q_hat the
    empirical distribution on K+1 outcomes (invalid included). With q_a, q_b the (1-level)/2 and
    (1+level)/2 quantiles of TV(c*/N, p) over `reps` draws, the interval is

        lo = max(0, 2 TV - q_b),   hi = 2 TV - q_a.

    The plug-in TV is biased upward (by about the noise floor when the true TV is small), and the
    resampled TVs carry that bias once more; reflecting around TV (`intervals.bootstrap_basic`), unlike
    the percentile interval [q_a, q_b], moves the interval down by the estimated bias instead of up, so it can reach the
    floor when the sampler is exact. Cells with c_k = 0 are never resampled and contribute p_k each,
    so the cost is O(K + reps * min(K, N)). Trust it when most cells hold many samples.
    """
    pmf = _check_pmf(pmf, hist.counts.size)
    reps = check_positive_int("reps", reps)
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level}")
    n = _sample_count(hist)
    seen = hist.counts > 0
    probs = np.append(hist.counts[seen], hist.n_invalid) / n
    target = np.append(pmf[seen], 0.0)
    unseen_mass = float(pmf[~seen].sum())
    tvs = _multinomial_tvs(np.random.default_rng(seed), n, probs, target, unseen_mass, reps)
    lo, hi = bootstrap_basic(tv_distance(hist, pmf), tvs, level)
    return max(0.0, lo), hi


def tv_report(
    cells,
    n_cells: int,
    pmf,
    seed: int | np.random.SeedSequence = 0,
    reps: int = 200,
) -> dict:
    """TV of `cells` against `pmf` with its 95% bootstrap interval and the noise floor at N.

    Keys: tv, tv_lo, tv_hi (bootstrap_ci), tv_floor (floor mean), tv_floor_q95, tv_floor_ref
    (sqrt((K-1)/(2 pi N))), n_seeds (N, invalid included), n_invalid. Floor and bootstrap use
    independent streams spawned from `seed`.
    """
    hist = histogram(cells, n_cells)
    floor_seed, boot_seed = np.random.SeedSequence(seed).spawn(2)
    lo, hi = bootstrap_ci(hist, pmf, seed=boot_seed, reps=reps)
    floor = tv_floor(pmf, hist.n, seed=floor_seed, reps=reps)
    return {
        "tv": tv_distance(hist, pmf),
        "tv_lo": lo,
        "tv_hi": hi,
        "tv_floor": floor.mean,
        "tv_floor_q95": floor.q95,
        "tv_floor_ref": floor.reference,
        "n_seeds": hist.n,
        "n_invalid": hist.n_invalid,
    }


def _multinomial_tvs(rng, n, probs, target, unseen_mass, reps) -> np.ndarray:
    """TV of `reps` draws c ~ Multinomial(n, probs) against `target` on the same outcomes.

    TV = 1/2 ( sum_j |c_j/n - target_j| + unseen_mass ), where `unseen_mass` is target mass on
    outcomes `probs` gives probability 0. Draws are made in blocks to bound memory.
    """
    pvals = probs / probs.sum()
    block = max(1, min(reps, _BLOCK_ENTRIES // pvals.size))
    tvs = np.empty(reps)
    for start in range(0, reps, block):
        stop = min(reps, start + block)
        draws = rng.multinomial(n, pvals, size=stop - start)
        tvs[start:stop] = 0.5 * (np.abs(draws / n - target).sum(axis=1) + unseen_mass)
    return tvs


def _check_pmf(pmf, n_cells: int | None) -> np.ndarray:
    """`pmf` as float64, validated: 1-D, length n_cells (if given), finite, >= 0, sum 1 +- 1e-9."""
    pmf = np.asarray(pmf, dtype=np.float64)
    if pmf.ndim != 1 or pmf.size == 0:
        raise ValueError(f"pmf must be a non-empty 1-D array, got shape {pmf.shape}")
    if n_cells is not None and pmf.size != n_cells:
        raise ValueError(f"pmf has length {pmf.size}, expected n_cells = {n_cells}")
    if not np.all(np.isfinite(pmf)):
        raise ValueError("pmf must be finite, got non-finite entries")
    if np.any(pmf < 0):
        raise ValueError(f"pmf must be non-negative, got min {pmf.min()}")
    total = float(pmf.sum())
    if abs(total - 1.0) > _PMF_ATOL:
        raise ValueError(f"pmf must sum to 1 within {_PMF_ATOL:g}, got sum {total!r}")
    return pmf


def _sample_count(hist: Histogram) -> int:
    """N of `hist`, required >= 1."""
    n = hist.n
    if n == 0:
        raise ValueError("histogram has no samples (N = 0)")
    return n
