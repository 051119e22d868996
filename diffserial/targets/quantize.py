"""Quantization of R^d into K cells ("tokens"), with exact or Monte Carlo cell probabilities.

A quantizer maps a batch x of shape (n, d) to cell indices in {0, ..., K - 1} (`cell_index`; rows
with a NaN or inf coordinate map to -1) and gives the law of the cell of x ~ p for a Gaussian
mixture p: exactly (`GridCells.pmf`, diagonal covariances) or by Monte Carlo (`pmf_monte_carlo`).
Comparing these pmfs with the histogram of a sampler's output measures its error on a discrete
observable of the sample.
"""

from __future__ import annotations

import dataclasses
import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
from scipy.special import ndtr

from diffserial.targets.gmm import GaussianMixture, sample
from diffserial.validation import check_positive_int

Array = jax.Array

_MC_BATCH = 2**18


@dataclasses.dataclass(frozen=True, eq=False)
class GridCells:
    """Axis-aligned grid: dimension j is cut at the strictly increasing interior edges e_j[0] < ... .

    Along dimension j, cell i_j is [e_j[i_j - 1], e_j[i_j]) with e_j[-1] = -inf and e_j[len] = +inf
    (a point on an edge belongs to the cell to its right), so the outermost cells are unbounded and
    dimension j has len(e_j) + 1 cells. Cells are numbered row-major (the last dimension varies
    fastest): K = prod_j (len(e_j) + 1). Edges are cast to jax's default float dtype for comparisons.
    """

    edges: tuple[np.ndarray, ...]

    def __post_init__(self):
        if len(self.edges) == 0:
            raise ValueError("edges must hold one 1-D array per dimension (d >= 1); got an empty tuple")
        checked = []
        for j, e in enumerate(self.edges):
            arr = np.array(e, dtype=np.float64)
            if arr.ndim != 1:
                raise ValueError(f"edges[{j}] must be 1-D; got shape {arr.shape}")
            if not np.all(np.isfinite(arr)):
                raise ValueError(f"edges[{j}] must be finite (outer cells are already unbounded); got {arr.tolist()}")
            if np.any(np.diff(arr) <= 0):
                raise ValueError(f"edges[{j}] must be strictly increasing; got {arr.tolist()}")
            arr.setflags(write=False)
            checked.append(arr)
        object.__setattr__(self, "edges", tuple(checked))

    @classmethod
    def uniform(cls, d: int, lo: float, hi: float, bins_per_dim: int) -> "GridCells":
        """bins_per_dim^d cells: [lo, hi] cut into bins_per_dim equal bins per dimension, the two
        outermost bins then extended to -inf and +inf (interior edges lo + i (hi - lo) / bins_per_dim,
        i = 1, ..., bins_per_dim - 1)."""
        check_positive_int("d", d)
        check_positive_int("bins_per_dim", bins_per_dim)
        if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
            raise ValueError(f"lo and hi must be finite with lo < hi; got lo={lo!r}, hi={hi!r}")
        interior = lo + (hi - lo) * np.arange(1, bins_per_dim) / bins_per_dim
        return cls(tuple(interior for _ in range(d)))

    @property
    def dim(self) -> int:
        return len(self.edges)

    @property
    def shape(self) -> tuple[int, ...]:
        """Number of cells along each dimension."""
        return tuple(len(e) + 1 for e in self.edges)

    @property
    def n_cells(self) -> int:
        return math.prod(self.shape)

    def cell_index(self, x: Array) -> Array:
        """int32 (n,) row-major cell index of each row of x (n, d); -1 for rows that are not finite."""
        return _grid_index(_check_batch(x, self.dim), self._index_params())

    def _index_params(self) -> tuple[Array, ...]:
        return tuple(jnp.asarray(e) for e in self.edges)

    def pmf(self, gmm: GaussianMixture) -> np.ndarray:
        """Exact float64 (K,) cell probabilities under a mixture with diagonal covariances.

        Within a component the coordinates are independent, so P(cell i) = sum_k w_k prod_j
        P(e_j[i_j - 1] <= X_kj < e_j[i_j]), X_kj ~ N(mu_kj, sigma_kj^2). Each interval probability
        is Phi(z_b) - Phi(z_a) when z_a < 0 and Phi(-z_a) - Phi(-z_b) (survival functions) when
        z_a >= 0, so neither difference is of two numbers near 1 and tail cells keep their relative
        accuracy. The mixture's stored (possibly float32) parameters are used, in float64, with the
        weights renormalised in float64 (float32 weights sum to 1 only within ~1e-7).
        """
        if not gmm.is_diagonal:
            raise ValueError("GridCells.pmf needs a mixture with diagonal covariances (gmm.is_diagonal); "
                             "use NearestMeanCells / pmf_monte_carlo for full covariances")
        if gmm.dim != self.dim:
            raise ValueError(f"gmm.dim must equal the grid's dimension {self.dim}; got {gmm.dim}")
        weights = np.asarray(gmm.weights, dtype=np.float64)
        weights = weights / weights.sum()
        means = np.asarray(gmm.means, dtype=np.float64)
        stds = np.sqrt(np.diagonal(np.asarray(gmm.covs, dtype=np.float64), axis1=1, axis2=2))
        total = np.zeros(self.shape)
        for k, w in enumerate(weights):
            joint = np.ones(())
            for j, e in enumerate(self.edges):
                joint = np.multiply.outer(joint, _interval_probs(e, means[k, j], stds[k, j]))
            total += w * joint
        return total.reshape(-1)

    def pmf_monte_carlo(self, gmm: GaussianMixture, key: Array, n: int = 10**7) -> tuple[np.ndarray, int]:
        """(pmf estimate, n) from n draws of gmm; standard error sqrt(p (1 - p) / n) per cell (see `_monte_carlo_pmf`)."""
        return _monte_carlo_pmf(self, gmm, key, n, _grid_index, self._index_params())


@jax.jit
def _grid_index(x: Array, edges: tuple[Array, ...]) -> Array:
    """Row-major grid cell of each row of x: sum_j i_j prod_{l > j} (len(e_l) + 1), i_j = #{e_j <= x_j}."""
    flat = jnp.zeros(x.shape[0], dtype=jnp.int32)
    for j, e in enumerate(edges):
        i_j = jnp.searchsorted(e, x[:, j], side="right").astype(jnp.int32)
        flat = flat * (e.shape[0] + 1) + i_j
    return jnp.where(jnp.all(jnp.isfinite(x), axis=1), flat, -1)


def _interval_probs(edges: np.ndarray, mean: float, std: float) -> np.ndarray:
    """P(X in [e_{i-1}, e_i)) for X ~ N(mean, std^2), i = 0..len(edges), e_{-1} = -inf, e_len = inf."""
    bounds = np.concatenate([[-np.inf], edges, [np.inf]])
    z = (bounds - mean) / std
    z_a, z_b = z[:-1], z[1:]
    return np.where(z_a >= 0, ndtr(-z_a) - ndtr(-z_b), ndtr(z_b) - ndtr(z_a))


@dataclasses.dataclass(frozen=True, eq=False)
class NearestMeanCells:
    """Voronoi cells of K centers (K, d): x belongs to the cell of its nearest center in Euclidean
    distance (ties go to the lowest index). Typical centers: the mixture means."""

    centers: np.ndarray

    def __post_init__(self):
        c = np.array(self.centers, dtype=np.float64)
        if c.ndim != 2 or c.shape[0] < 1 or c.shape[1] < 1:
            raise ValueError(f"centers must have shape (K, d) with K, d >= 1; got shape {c.shape}")
        if not np.all(np.isfinite(c)):
            raise ValueError(f"centers must be finite; got {c.tolist()}")
        c.setflags(write=False)
        object.__setattr__(self, "centers", c)

    @property
    def dim(self) -> int:
        return self.centers.shape[1]

    @property
    def n_cells(self) -> int:
        return self.centers.shape[0]

    def cell_index(self, x: Array) -> Array:
        """int32 (n,) index of the nearest center to each row of x (n, d); -1 for rows that are not finite."""
        return _nearest_index(_check_batch(x, self.dim), jnp.asarray(self.centers))

    def pmf_monte_carlo(self, gmm: GaussianMixture, key: Array, n: int = 10**7) -> tuple[np.ndarray, int]:
        """(pmf estimate, n) from n draws of gmm; standard error sqrt(p (1 - p) / n) per cell (see `_monte_carlo_pmf`)."""
        return _monte_carlo_pmf(self, gmm, key, n, _nearest_index, jnp.asarray(self.centers))


@jax.jit
def _nearest_index(x: Array, centers: Array) -> Array:
    """argmin_k |x - c_k|^2 per row, first k on ties, by a scan over centers (memory O(n d) for any K)."""
    centers = centers.astype(x.dtype)

    def step(best, k):
        best_d2, best_k = best
        d2 = jnp.sum((x - centers[k]) ** 2, axis=1)
        closer = d2 < best_d2
        return (jnp.where(closer, d2, best_d2), jnp.where(closer, k, best_k)), None

    init = (jnp.full(x.shape[0], jnp.inf, dtype=x.dtype), jnp.zeros(x.shape[0], dtype=jnp.int32))
    (_, best_k), _ = jax.lax.scan(step, init, jnp.arange(centers.shape[0], dtype=jnp.int32))
    return jnp.where(jnp.all(jnp.isfinite(x), axis=1), best_k, -1)


def _check_batch(x, dim: int) -> Array:
    """x as a floating (n, d) jax array (integers are promoted to the default float dtype)."""
    x = jnp.asarray(x)
    if x.ndim != 2 or x.shape[1] != dim:
        raise ValueError(f"x must have shape (n, d) with d = {dim}; got shape {x.shape}")
    return x if jnp.issubdtype(x.dtype, jnp.floating) else x.astype(float)


def _monte_carlo_pmf(cells, gmm: GaussianMixture, key: Array, n: int, index_fn, index_params) -> tuple[np.ndarray, int]:
    """(counts / n, n): frequencies of the cells `index_fn(x, index_params)` of n i.i.d. draws of gmm.

    Returns float64 (K,). Each entry p_hat_i is unbiased with standard error
    sqrt(p_i (1 - p_i) / n) (<= 1.6e-4 for n = 10^7); report n with the estimate. Draws are made in
    batches of B = min(n, 2^18), batch b with key fold_in(key, b); only the first n - b B draws of
    the last batch are counted, so one compilation serves every n >= B and every quantizer of the
    same kind and shape. Counts are accumulated in int64.
    """
    check_positive_int("n", n)
    if gmm.dim != cells.dim:
        raise ValueError(f"gmm.dim must equal the cells' dimension {cells.dim}; got {gmm.dim}")
    batch = min(int(n), _MC_BATCH)
    counts = np.zeros(cells.n_cells, dtype=np.int64)
    for b, start in enumerate(range(0, n, batch)):
        key_b = jax.random.fold_in(key, b)
        counts += np.asarray(_batch_counts(index_fn, index_params, cells.n_cells, gmm, key_b, batch, min(batch, n - start)))
    return counts / n, int(n)


@functools.partial(jax.jit, static_argnames=("index_fn", "n_cells", "batch"))
def _batch_counts(index_fn, index_params, n_cells: int, gmm: GaussianMixture, key: Array, batch: int, valid: Array) -> Array:
    """Cell counts (K,) of the first `valid` of `batch` draws of gmm (the rest go to a dropped bin K)."""
    idx = index_fn(sample(gmm, key, batch), index_params)
    idx = jnp.where(jnp.arange(batch) < valid, idx, n_cells)
    return jnp.bincount(idx, length=n_cells + 1)[:n_cells]
