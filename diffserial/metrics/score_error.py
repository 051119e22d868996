"""The score error eps_score of a learned score against an exact one.

Li & Yan (2024) measure the score error as the average over the sampler's time points t_1..t_K of the
mean squared error under the true marginal p_t:

    eps_score^2 = (1/K) sum_k E_{x ~ p_{t_k}} || s_theta(x, t_k) - grad log p_{t_k}(x) ||^2,

and their TV bound gains a term of order eps_score sqrt(log T). `score_error` estimates it by Monte
Carlo with n exact samples of p_{t_k} per time.
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

Array = jax.Array


def score_error(score_fn: Callable, exact_score_fn: Callable, sample_at: Callable, ts, key: Array,
                n: int) -> dict:
    """Monte Carlo eps_score (see the module docstring).

    score_fn, exact_score_fn: (x (d,), t) -> (d,). sample_at(t, key, n) -> (n, d) exact draws of p_t.
    ts: the K time points. Returns {"eps_score": sqrt of the mean over k, "per_time": the K values of
    E ||s_theta - s||^2 (not square-rooted), "ts": ts}.
    """
    ts = np.asarray(ts, np.float64)
    if ts.ndim != 1 or ts.size < 1 or not np.all((ts > 0) & (ts <= 1)):
        raise ValueError(f"ts must be a non-empty 1-D array of times in (0, 1], got {ts!r}")
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")

    @jax.jit
    def mse_at(t, k):
        x = sample_at(t, k, n)
        diff = jax.vmap(score_fn, (0, None))(x, t) - jax.vmap(exact_score_fn, (0, None))(x, t)
        return jnp.mean(jnp.sum(diff**2, axis=-1))

    per_time = np.array([float(mse_at(jnp.float32(t), jax.random.fold_in(key, i))) for i, t in enumerate(ts)])
    return {"eps_score": float(np.sqrt(np.mean(per_time))), "per_time": per_time.tolist(), "ts": ts.tolist()}


__all__ = ["score_error"]
