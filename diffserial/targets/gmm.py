"""Gaussian mixture targets whose noised laws, densities and scores are known in closed form.

A mixture p_0(x) = sum_k w_k N(x; mu_k, Sigma_k) pushed through a linear Gaussian forward process
(x_t = m_t x_0 + s_t z, z ~ N(0, I); see `diffserial.processes.gaussian`) stays a mixture:

    p_t(x) = sum_k w_k N(x; m_t mu_k, C_k(t)),        C_k(t) = m_t^2 Sigma_k + s_t^2 I.

With L_k L_k^T = C_k (Cholesky) and the log component densities

    l_k(x) = log w_k - |L_k^{-1} (x - mu_k)|^2 / 2 - sum_i log (L_k)_ii - (d / 2) log(2 pi),

the log density is log p(x) = logsumexp_k l_k(x) and the score is

    grad_x log p(x) = - sum_k r_k(x) C_k^{-1} (x - mu_k),      r_k(x) = softmax_k l_k(x),

so samplers can be run with the exact score of every p_t, and their output compared with p_0.

`GaussianMixture` is a pytree: its arrays are leaves (traced under `jax.jit`), its `is_diagonal`
flag is static metadata. Use `GaussianMixture.create` to build a validated mixture; the raw
constructor performs no checks (it is what pytree unflattening calls, possibly on tracers).
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.linalg import solve_triangular
from jax.scipy.special import logsumexp

from diffserial.processes.gaussian import LinearGaussianSDE

Array = jax.Array

_WEIGHT_SUM_TOL = 1e-6


@functools.partial(
    jax.tree_util.register_dataclass,
    data_fields=["weights", "means", "covs"],
    meta_fields=["is_diagonal"],
)
@dataclasses.dataclass(frozen=True, eq=False)
class GaussianMixture:
    """p(x) = sum_k weights[k] N(x; means[k], covs[k]).

    weights: (K,) positive, summing to 1;  means: (K, d);  covs: (K, d, d) symmetric positive definite.
    is_diagonal: True iff every covs[k] is diagonal (static; decided in numpy by `create`).
    """

    weights: Array
    means: Array
    covs: Array
    is_diagonal: bool = False

    @property
    def n_components(self) -> int:
        return self.means.shape[0]

    @property
    def dim(self) -> int:
        return self.means.shape[1]

    @classmethod
    def create(cls, weights, means, covs=None, variances=None) -> "GaussianMixture":
        """Validated mixture from array-likes; exactly one of `covs` and `variances` must be given.

        weights: (K,) finite, > 0, with |sum - 1| <= 1e-6; they are then divided by their sum so
            that float rounding in the caller does not leave an unnormalised density.
        means: (K, d) finite.
        covs: (K, d, d) finite, symmetric (to relative 1e-8; then symmetrised exactly) and positive
            definite (numpy Cholesky must succeed).
        variances: (K, d) finite, > 0: diagonal covariances covs[k] = diag(variances[k]).

        Validation runs in float64 numpy; the stored arrays have jax's default float dtype.
        Raises ValueError naming the offending argument, its value and what was expected.
        """
        w = _as_float_array("weights", weights, ndim=1)
        mu = _as_float_array("means", means, ndim=2)
        n_comp, dim = mu.shape
        if w.shape != (n_comp,):
            raise ValueError(f"weights must have shape (K,) = ({n_comp},) to match means {mu.shape}; got shape {w.shape}")
        if n_comp == 0 or dim == 0:
            raise ValueError(f"means must have shape (K, d) with K >= 1 and d >= 1; got shape {mu.shape}")
        if np.any(w <= 0):
            raise ValueError(f"weights must all be > 0; got {w.tolist()}")
        if abs(w.sum() - 1.0) > _WEIGHT_SUM_TOL:
            raise ValueError(f"weights must sum to 1 within {_WEIGHT_SUM_TOL}; got sum {w.sum()!r} for weights {w.tolist()}")
        w = w / w.sum()
        if (covs is None) == (variances is None):
            raise ValueError("exactly one of covs (K, d, d) and variances (K, d) must be given; "
                             f"got covs={'None' if covs is None else 'given'}, "
                             f"variances={'None' if variances is None else 'given'}")
        if covs is None:
            var = _as_float_array("variances", variances, ndim=2)
            if var.shape != (n_comp, dim):
                raise ValueError(f"variances must have shape (K, d) = {(n_comp, dim)}; got shape {var.shape}")
            if np.any(var <= 0):
                raise ValueError(f"variances must all be > 0; got {var.tolist()}")
            sigma = var[:, :, None] * np.eye(dim)
        else:
            sigma = _check_covs(_as_float_array("covs", covs, ndim=3), n_comp, dim)
        off_diagonal = sigma * (1.0 - np.eye(dim))
        return cls(
            weights=jnp.asarray(w),
            means=jnp.asarray(mu),
            covs=jnp.asarray(sigma),
            is_diagonal=bool(np.all(off_diagonal == 0.0)),
        )


def make_mixture(d: int, n_components: int, seed: int) -> GaussianMixture:
    """A random diagonal mixture in R^d with n_components components, deterministic in (seed, d): from
    numpy's default_rng([seed, d]), weights ~ Dirichlet(2, ..., 2), means ~ N(0, 2^2 I), per-coordinate
    stds ~ U(0.3, 0.7), Sigma_k = diag(std_k^2) (the convergence study's and gmm_score training's target)."""
    rng = np.random.default_rng([seed, d])
    weights = rng.dirichlet(np.full(n_components, 2.0))
    means = rng.normal(0.0, 2.0, (n_components, d))
    stds = rng.uniform(0.3, 0.7, (n_components, d))
    return GaussianMixture.create(weights, means, variances=stds**2)


def _as_float_array(name: str, value, ndim: int) -> np.ndarray:
    """float64 numpy copy of `value`, checked for rank and finiteness."""
    arr = np.array(value, dtype=np.float64)
    if arr.ndim != ndim:
        raise ValueError(f"{name} must be a {ndim}-D array; got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must be finite (no NaN or inf); got {arr.tolist()}")
    return arr


def _check_covs(sigma: np.ndarray, n_comp: int, dim: int) -> np.ndarray:
    """Symmetrised covs after checking shape, symmetry and positive definiteness."""
    if sigma.shape != (n_comp, dim, dim):
        raise ValueError(f"covs must have shape (K, d, d) = {(n_comp, dim, dim)}; got shape {sigma.shape}")
    for k, c in enumerate(sigma):
        if not np.allclose(c, c.T, rtol=1e-8, atol=1e-12 * np.abs(c).max()):
            raise ValueError(f"covs[{k}] must be symmetric; got {c.tolist()}")
        try:
            np.linalg.cholesky(0.5 * (c + c.T))
        except np.linalg.LinAlgError:
            raise ValueError(f"covs[{k}] must be positive definite (Cholesky failed); "
                             f"got {c.tolist()} with eigenvalues {np.linalg.eigvalsh(0.5 * (c + c.T)).tolist()}") from None
    return 0.5 * (sigma + np.swapaxes(sigma, 1, 2))


def noised(gmm: GaussianMixture, process: LinearGaussianSDE, t: Array) -> GaussianMixture:
    """Exact law of x_t = m_t x_0 + s_t z, x_0 ~ gmm: weights w_k, means m_t mu_k, covs m_t^2 Sigma_k + s_t^2 I."""
    m, s = process.marginal(t)
    eye = jnp.eye(gmm.dim, dtype=gmm.covs.dtype)
    return GaussianMixture(
        weights=gmm.weights,
        means=m * gmm.means,
        covs=m**2 * gmm.covs + s**2 * eye,
        is_diagonal=gmm.is_diagonal,
    )


def _component_terms(gmm: GaussianMixture, x: Array) -> tuple[Array, Array]:
    """(l_k(x), C_k^{-1} (x - mu_k)) for every component k: shapes (K,) and (K, d)."""
    if gmm.is_diagonal:  # C_k = diag(v_k): elementwise, no factorization
        var = jnp.diagonal(gmm.covs, axis1=1, axis2=2)
        diff = x - gmm.means
        log_norms = -0.5 * jnp.sum(diff**2 / var + jnp.log(2 * jnp.pi * var), axis=1)
        return jnp.log(gmm.weights) + log_norms, diff / var
    chol = jnp.linalg.cholesky(gmm.covs)

    def one(mu, lower):
        z = solve_triangular(lower, x - mu, lower=True)  # L^{-1} (x - mu)
        precision_diff = solve_triangular(lower, z, lower=True, trans="T")  # L^{-T} L^{-1} (x - mu)
        log_norm = -0.5 * jnp.dot(z, z) - jnp.sum(jnp.log(jnp.diagonal(lower))) - 0.5 * x.shape[0] * jnp.log(2 * jnp.pi)
        return log_norm, precision_diff

    log_norms, precision_diffs = jax.vmap(one)(gmm.means, chol)
    return jnp.log(gmm.weights) + log_norms, precision_diffs


def log_density(gmm: GaussianMixture, x: Array) -> Array:
    """log p(x) = logsumexp_k [log w_k + log N(x; mu_k, Sigma_k)] for one point x of shape (d,)."""
    log_terms, _ = _component_terms(gmm, x)
    return logsumexp(log_terms)


def score(gmm: GaussianMixture, x: Array) -> Array:
    """grad_x log p(x) = -sum_k r_k(x) Sigma_k^{-1} (x - mu_k), r = softmax(l), for one x of shape (d,)."""
    log_terms, precision_diffs = _component_terms(gmm, x)
    return -jax.nn.softmax(log_terms) @ precision_diffs


def _noised_score(gmm: GaussianMixture, process: LinearGaussianSDE, x: Array, t: Array) -> Array:
    return score(noised(gmm, process, t), x)


def _noised_log_density(gmm: GaussianMixture, process: LinearGaussianSDE, x: Array, t: Array) -> Array:
    return log_density(noised(gmm, process, t), x)


def score_fn(gmm: GaussianMixture, process: LinearGaussianSDE) -> jax.tree_util.Partial:
    """(x, t) -> grad_x log p_t(x), x of shape (d,), t a scalar; a pytree (gmm arrays are its leaves)."""
    return jax.tree_util.Partial(_noised_score, gmm, process)


def log_density_fn(gmm: GaussianMixture, process: LinearGaussianSDE) -> jax.tree_util.Partial:
    """(x, t) -> log p_t(x), x of shape (d,), t a scalar; a pytree (gmm arrays are its leaves)."""
    return jax.tree_util.Partial(_noised_log_density, gmm, process)


def sample(gmm: GaussianMixture, key: Array, n: int) -> Array:
    """n i.i.d. draws of p_0, shape (n, d): component c ~ Categorical(w), x = mu_c + L_c z, z ~ N(0, I).

    Full covariances gather one (d, d) Cholesky factor per draw (memory n d^2); diagonal mixtures
    scale by the standard deviations instead (memory n d).
    """
    key_component, key_noise = jax.random.split(key)
    component = jax.random.categorical(key_component, jnp.log(gmm.weights), shape=(n,))
    z = jax.random.normal(key_noise, (n, gmm.dim), dtype=gmm.means.dtype)
    if gmm.is_diagonal:
        noise = jnp.sqrt(jnp.diagonal(gmm.covs, axis1=1, axis2=2))[component] * z
    else:
        noise = jnp.einsum("nij,nj->ni", jnp.linalg.cholesky(gmm.covs)[component], z)
    return gmm.means[component] + noise


def sample_at(gmm: GaussianMixture, process: LinearGaussianSDE, t: Array, key: Array, n: int) -> Array:
    """n i.i.d. draws of p_t, shape (n, d) (= `sample` of `noised(gmm, process, t)`)."""
    return sample(noised(gmm, process, t), key, n)
