"""Time grids of the masked family: T + 1 decreasing times from t_0 = 1 (all masked) to t_T = 0 exactly.

    uniform   t_k = 1 - k/T
    cosine    t_k = 1 - sin(pi/2 k/T)
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from diffserial.validation import check_positive_int

Array = jax.Array

GRID_SPACINGS = ("uniform", "cosine")


def masked_grid(steps: int, spacing: str = "uniform") -> Array:
    """Decreasing float32 grid ts of shape (steps + 1,) with ts[0] = 1 and ts[-1] = 0 exactly.

        uniform   t_k = 1 - k/T
        cosine    t_k = 1 - sin(pi/2 k/T) = 2 sin^2(pi/4 (1 - k/T))   (dense near t = 0, the data end)

    Step k of a sampler moves from ts[k] to ts[k + 1]. With the linear schedule alpha_t = 1 - t the
    uniform grid reveals L/T positions per step in expectation (exactly, for the top-k rules).
    """
    check_positive_int("steps", steps)
    if spacing not in GRID_SPACINGS:
        raise ValueError(f"unknown grid spacing {spacing!r}; valid spacings: {', '.join(GRID_SPACINGS)}")
    u = np.arange(steps + 1, dtype=np.float64) / steps
    t = 1.0 - u if spacing == "uniform" else 2.0 * np.sin(0.25 * np.pi * (1.0 - u)) ** 2
    t[0], t[-1] = 1.0, 0.0
    ts = t.astype(np.float32)
    if not np.all(np.diff(ts) < 0):
        raise ValueError(f"{steps} steps of {spacing} spacing do not give distinct float32 times")
    return jnp.asarray(ts)


__all__ = ["GRID_SPACINGS", "masked_grid"]
