"""Deterministic, smooth score perturbations of prescribed size, to probe the score-error term.

Li & Yan bound the sampling error of score-based samplers as

    TV(p_0, p_hat) <= c d log^3 T / T + c eps_score sqrt(log T),
    eps_score^2 = (1 / T) sum_t E_{x ~ p_t} |s_t(x) - grad log p_t(x)|^2.

Replacing the exact score by s_t = grad log p_t + delta with a known delta sets eps_score without
training. Here

    delta(x, t) = eps (cos(w.x + phi) a + sin(w.x + phi) b),

with fixed w in R^d (|w| = `frequency`), phase phi, and directions a, b drawn from an integer seed:

* d >= 2: a, b orthonormal, so |delta(x, t)| = eps exactly for every x and t, hence
  eps_score = eps for any p_t and any time grid.
* d = 1: a = 0, b = sqrt(2), i.e. delta(x) = sqrt(2) eps sin(w x + phi); its mean square over a
  period (equivalently, over phi ~ U[0, 2 pi) at fixed x) is eps^2, so eps_score = eps only on
  average: E_p |delta|^2 = eps^2 (1 - E_p cos(2 (w x + phi))).

delta does not depend on t; it is smooth with Lipschitz constant eps |w| in x.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from diffserial.validation import check_int, check_positive_int

Array = jax.Array


def _perturbation(eps: Array, w: Array, phi: Array, a: Array, b: Array, x: Array, t: Array) -> Array:
    """delta(x, t) = eps (cos(w.x + phi) a + sin(w.x + phi) b) for one x of shape (d,); t is unused."""
    del t
    angle = jnp.dot(w, x) + phi
    return eps * (jnp.cos(angle) * a + jnp.sin(angle) * b)


def _sum_of(f, g, x: Array, t: Array) -> Array:
    return f(x, t) + g(x, t)


def _parameters(dim: int, seed: int, frequency: float) -> tuple[np.ndarray, float, np.ndarray, np.ndarray]:
    """(w, phi, a, b) drawn with numpy from `seed`; see the module docstring."""
    rng = np.random.default_rng(seed)
    direction = rng.standard_normal(dim)
    w = frequency * direction / np.linalg.norm(direction)
    phi = rng.uniform(0.0, 2.0 * math.pi)
    if dim == 1:
        return w, phi, np.zeros(1), np.full(1, math.sqrt(2.0))
    q, _ = np.linalg.qr(rng.standard_normal((dim, 2)))
    return w, phi, q[:, 0], q[:, 1]


def perturbation_fn(eps_score: float, dim: int, seed: int = 0, frequency: float = 1.0) -> jax.tree_util.Partial:
    """(x, t) -> delta(x, t) (see module docstring), as a pytree whose leaves are eps, w, phi, a, b.

    eps_score: finite, >= 0 (a concrete number, validated here).  dim: d >= 1.
    seed: integer; fixes w, phi, a, b.  frequency: |w|, finite, >= 0.
    """
    eps = _finite_nonnegative("eps_score", eps_score)
    frequency = _finite_nonnegative("frequency", frequency)
    check_positive_int("dim", dim)
    check_int("seed", seed)
    w, phi, a, b = _parameters(int(dim), int(seed), frequency)
    return jax.tree_util.Partial(
        _perturbation, *(jnp.asarray(np.asarray(v, dtype=np.float64)) for v in (eps, w, phi, a, b))
    )


def perturbed_score_fn(
    score_fn, eps_score: float, dim: int, seed: int = 0, frequency: float = 1.0
) -> jax.tree_util.Partial:
    """(x, t) -> score_fn(x, t) + delta(x, t), with delta = `perturbation_fn(eps_score, dim, seed, frequency)`.

    A plain callable `score_fn` is wrapped in a leafless `Partial`; pass a `Partial` (e.g. from
    `gmm.score_fn`) to keep its arrays traced rather than baked into compiled samplers.
    """
    if not isinstance(score_fn, jax.tree_util.Partial):
        score_fn = jax.tree_util.Partial(score_fn)
    return jax.tree_util.Partial(_sum_of, score_fn, perturbation_fn(eps_score, dim, seed, frequency))


def _finite_nonnegative(name: str, value) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a real number; got {value!r}") from None
    if not math.isfinite(v) or v < 0:
        raise ValueError(f"{name} must be finite and >= 0; got {value!r}")
    return v
