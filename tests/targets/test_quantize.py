"""Quantizers: cell indices on hand-made points, exact grid pmfs, Monte Carlo pmfs."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import integrate, stats

from diffserial.targets.gmm import GaussianMixture
from diffserial.targets.quantize import GridCells, NearestMeanCells

N_MC = 2**20  # >= the Monte Carlo batch size 2^18: one compilation per quantizer kind and shape

DIAG_2D = dict(weights=[0.2, 0.5, 0.3], means=[[-1.0, 0.5], [0.8, -0.3], [2.0, 2.5]], variances=[[0.5, 1.0], [0.2, 0.6], [1.5, 0.3]])


def _diag_mixture():
    """The DIAG_2D mixture with float64 parameters, so references can use the exact same numbers."""
    with jax.enable_x64(True):
        return GaussianMixture.create(**DIAG_2D)


def _assert_within_5_sigma(estimate, n, exact):
    se = np.sqrt(exact * (1 - exact) / n)
    assert np.all(np.abs(estimate - exact) <= 5 * se + 1e-12), (estimate, exact, se)


def test_grid_cell_index_on_hand_made_points():
    cells = GridCells((np.array([0.0, 1.0]), np.array([-1.0])))
    assert cells.shape == (3, 2) and cells.n_cells == 6 and cells.dim == 2
    points_and_cells = [
        ((-5.0, -2.0), 0),  # (0, 0)
        ((0.0, -1.0), 3),  # on both edges: the cell to the right, (1, 1)
        ((0.999, -1.0001), 2),  # (1, 0)
        ((1.0, 7.0), 5),  # (2, 1)
        ((1e30, -1e30), 4),  # (2, 0): outer cells are unbounded
        ((np.nan, 0.0), -1),
        ((0.0, np.inf), -1),
        ((-np.inf, 0.0), -1),
    ]
    x = jnp.asarray([p for p, _ in points_and_cells], dtype=jnp.float32)
    got = cells.cell_index(x)
    assert got.dtype == jnp.int32
    np.testing.assert_array_equal(got, [c for _, c in points_and_cells])


def test_uniform_grid_edges_and_size():
    cells = GridCells.uniform(2, -1.0, 1.0, 4)
    for e in cells.edges:
        np.testing.assert_allclose(e, [-0.5, 0.0, 0.5])
    assert cells.n_cells == 16
    np.testing.assert_array_equal(cells.cell_index(jnp.array([[-0.75, 0.75], [-3.0, 0.25], [0.5, -0.5]])), [3, 2, 13])
    single = GridCells.uniform(3, 0.0, 1.0, 1)
    assert single.n_cells == 1
    np.testing.assert_array_equal(single.cell_index(jnp.array([[5.0, -5.0, 0.5]])), [0])


def test_grid_pmf_matches_inclusion_exclusion_of_the_joint_cdf():
    gmm = _diag_mixture()
    edges = (np.array([-1.0, 0.2, 1.5]), np.array([-0.5, 2.0]))
    pmf = GridCells(edges).pmf(gmm)
    assert pmf.dtype == np.float64 and pmf.shape == (12,)
    w, mu = np.asarray(gmm.weights), np.asarray(gmm.means)
    sd = np.sqrt(np.diagonal(np.asarray(gmm.covs), axis1=1, axis2=2))

    def joint_cdf(x, y):
        return sum(w[k] * stats.norm.cdf(x, mu[k, 0], sd[k, 0]) * stats.norm.cdf(y, mu[k, 1], sd[k, 1]) for k in range(3))

    b0, b1 = (np.concatenate([[-np.inf], e, [np.inf]]) for e in edges)
    want = [
        joint_cdf(b0[i + 1], b1[j + 1]) - joint_cdf(b0[i], b1[j + 1]) - joint_cdf(b0[i + 1], b1[j]) + joint_cdf(b0[i], b1[j])
        for i in range(4)
        for j in range(3)
    ]
    np.testing.assert_allclose(pmf, want, rtol=0, atol=1e-13)
    assert abs(pmf.sum() - 1.0) < 1e-12


def test_grid_pmf_keeps_relative_accuracy_in_the_tails():
    with jax.enable_x64(True):
        gmm = GaussianMixture.create([1.0], [[0.0]], variances=[[1.0]])
    pmf = GridCells((np.array([-9.0, -8.0, 8.0, 9.0]),)).pmf(gmm)
    tail_8_9 = integrate.quad(stats.norm.pdf, 8.0, 9.0, epsabs=0, epsrel=1e-13)[0]  # ~6e-16: 1 - 1 in naive CDF differences
    tail_9 = integrate.quad(stats.norm.pdf, 9.0, np.inf, epsabs=0, epsrel=1e-13)[0]
    np.testing.assert_allclose(pmf[[0, 1, 3, 4]], [tail_9, tail_8_9, tail_8_9, tail_9], rtol=1e-9)
    assert abs(pmf[2] - (1.0 - 2 * (tail_8_9 + tail_9))) < 1e-15


@pytest.mark.parametrize("shift", [0.0, 40.0, -40.0])
def test_grid_pmf_sums_to_one(shift):
    with jax.enable_x64(True):
        gmm = GaussianMixture.create(DIAG_2D["weights"], np.asarray(DIAG_2D["means"]) + shift, variances=DIAG_2D["variances"])
    pmf = GridCells.uniform(2, -3.0, 3.0, 7).pmf(gmm)
    assert np.all(pmf >= 0) and abs(pmf.sum() - 1.0) < 1e-12
    if shift:  # all the mass is in one outer corner cell
        assert pmf[0 if shift < 0 else -1] > 1 - 1e-12


def test_grid_pmf_matches_monte_carlo_histogram():
    gmm = GaussianMixture.create(**DIAG_2D)
    cells = GridCells.uniform(2, -2.0, 3.0, 4)
    exact = cells.pmf(gmm)
    estimate, n = cells.pmf_monte_carlo(gmm, jax.random.key(0), N_MC)
    assert n == N_MC and estimate.dtype == np.float64 and estimate.sum() == pytest.approx(1.0, abs=1e-12)
    _assert_within_5_sigma(estimate, n, exact)


def test_nearest_mean_cell_index_on_hand_made_points():
    cells = NearestMeanCells(np.array([[0.0, 0.0], [2.0, 0.0], [0.0, 2.0]]))
    assert cells.n_cells == 3 and cells.dim == 2
    x = jnp.array([[0.1, 0.1], [1.0, 0.0], [1.9, 0.3], [-5.0, 10.0], [np.nan, 0.0], [np.inf, np.inf]])
    got = cells.cell_index(x)
    assert got.dtype == jnp.int32
    np.testing.assert_array_equal(got, [0, 0, 1, 2, -1, -1])  # (1, 0) is a tie of centers 0 and 1: lowest index
    np.testing.assert_array_equal(cells.cell_index(np.array([[2, 1], [0, 3]])), [1, 2])  # integer input


def test_nearest_mean_symmetric_mixture_splits_in_half():
    """Symmetric two-component 1-D mixture, centers at the means: P(cell 0) = P(x < 0) = 1/2 exactly.

    n is not a multiple of the batch size (a partial last batch); results are reproducible from the key.
    """
    gmm = GaussianMixture.create([0.5, 0.5], [[-1.5], [1.5]], variances=[[1.0], [1.0]])
    cells = NearestMeanCells(np.asarray(gmm.means))
    estimate, n = cells.pmf_monte_carlo(gmm, jax.random.key(1), N_MC + 1001)
    assert n == N_MC + 1001
    np.testing.assert_array_equal(estimate * n, np.round(estimate * n))  # frequencies of exactly n draws
    _assert_within_5_sigma(estimate, n, np.array([0.5, 0.5]))
    again, _ = cells.pmf_monte_carlo(gmm, jax.random.key(1), N_MC + 1001)
    np.testing.assert_array_equal(estimate, again)


def test_nearest_mean_cells_of_a_lattice_are_grid_cells():
    """Voronoi cells of a rectangular lattice are the grid cells cut at the midpoints, numbered alike."""
    xs, ys = np.array([-2.0, 0.0, 1.0]), np.array([-1.0, 1.5])
    lattice = NearestMeanCells(np.array([[a, b] for a in xs for b in ys]))
    grid = GridCells((0.5 * (xs[1:] + xs[:-1]), 0.5 * (ys[1:] + ys[:-1])))
    x = 2.0 * jax.random.normal(jax.random.key(2), (4096, 2))
    np.testing.assert_array_equal(lattice.cell_index(x), grid.cell_index(x))
    gmm = GaussianMixture.create(**DIAG_2D)
    estimate, n = lattice.pmf_monte_carlo(gmm, jax.random.key(3), N_MC)
    _assert_within_5_sigma(estimate, n, grid.pmf(gmm))


FULL = GaussianMixture.create([1.0], [[0.0, 0.0]], covs=[[[1.0, 0.5], [0.5, 1.0]]])


@pytest.mark.parametrize(
    "build, match",
    [
        (lambda: GridCells(()), r"edges must hold one 1-D array per dimension"),
        (lambda: GridCells((np.array([0.0, 0.0]),)), r"edges\[0\] must be strictly increasing; got \[0\.0, 0\.0\]"),
        (lambda: GridCells((np.array([0.0]), np.array([1.0, np.nan]))), r"edges\[1\] must be finite"),
        (lambda: GridCells((np.zeros((2, 2)),)), r"edges\[0\] must be 1-D; got shape \(2, 2\)"),
        (lambda: GridCells.uniform(2, 1.0, -1.0, 3), r"lo and hi must be finite with lo < hi; got lo=1\.0, hi=-1\.0"),
        (lambda: GridCells.uniform(2, 0.0, 1.0, 0), r"bins_per_dim must be an int >= 1; got 0"),
        (lambda: GridCells.uniform(0, 0.0, 1.0, 2), r"d must be an int >= 1; got 0"),
        (lambda: GridCells.uniform(2, 0.0, 1.0, 3).pmf(FULL), r"diagonal covariances.*use NearestMeanCells"),
        (lambda: GridCells.uniform(1, 0.0, 1.0, 3).pmf(GaussianMixture.create(**DIAG_2D)), r"gmm.dim must equal .* 1; got 2"),
        (lambda: GridCells.uniform(2, 0.0, 1.0, 3).cell_index(jnp.zeros((4, 3))), r"x must have shape \(n, d\) with d = 2; got shape \(4, 3\)"),
        (lambda: NearestMeanCells(np.zeros(3)), r"centers must have shape \(K, d\).*got shape \(3,\)"),
        (lambda: NearestMeanCells(np.array([[0.0, np.inf]])), r"centers must be finite"),
        (lambda: NearestMeanCells(np.zeros((2, 2))).cell_index(jnp.zeros(2)), r"x must have shape \(n, d\) with d = 2; got shape \(2,\)"),
        (lambda: NearestMeanCells(np.zeros((2, 2))).pmf_monte_carlo(FULL, jax.random.key(0), 0), r"n must be an int >= 1; got 0"),
        (lambda: NearestMeanCells(np.zeros((2, 1))).pmf_monte_carlo(FULL, jax.random.key(0), 10), r"gmm.dim must equal .* 1; got 2"),
    ],
)
def test_bad_inputs_raise(build, match):
    with pytest.raises(ValueError, match=match):
        build()
