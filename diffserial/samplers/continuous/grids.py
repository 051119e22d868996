"""Time grids for the reverse process: T + 1 decreasing times 1 = t_T > ... > t_0 = eps.

A grid is returned as a float32 array `ts` of shape (T + 1,) with ts[0] = 1 and ts[T] = eps; step k
of a sampler moves from ts[k] to ts[k + 1]. Grids are computed once per configuration (outside jit).

    uniform    t_i = 1 - (1 - eps) i / T
    quadratic  t_i = eps + (1 - eps) (1 - i / T)^2                  (dense near the data, DDIM-style)
    karras     sigma_i = (sigma_hi^(1/rho) + i/T (sigma_lo^(1/rho) - sigma_hi^(1/rho)))^rho, rho = 7,
               with sigma = s(t) / m(t) the process's noise-to-signal ratio (Karras et al. 2022, eq. 5)
    logsnr     lambda_i uniform between lambda(1) and lambda(eps), lambda = log(m^2 / s^2)
"""

from __future__ import annotations

from typing import Callable

import jax.numpy as jnp
import numpy as np

from diffserial.processes.gaussian import LinearGaussianSDE
from diffserial.registry import lookup
from diffserial.validation import check_positive_int

KARRAS_RHO = 7.0


def _check(steps: int, eps: float) -> None:
    check_positive_int("steps", steps)
    if not (0.0 < eps < 1.0):
        raise ValueError(f"eps (early-stop time) must lie in (0, 1), got {eps!r}")


def uniform(process: LinearGaussianSDE, steps: int, eps: float) -> jnp.ndarray:
    """t_i = 1 - (1 - eps) i / T."""
    return jnp.linspace(1.0, eps, steps + 1, dtype=jnp.float32)


def quadratic(process: LinearGaussianSDE, steps: int, eps: float) -> jnp.ndarray:
    """t_i = eps + (1 - eps) (1 - i / T)^2."""
    u = jnp.linspace(1.0, 0.0, steps + 1, dtype=jnp.float32)
    return eps + (1.0 - eps) * u**2


def logsnr(process: LinearGaussianSDE, steps: int, eps: float) -> jnp.ndarray:
    """lambda_i uniform in [lambda(1), lambda(eps)], mapped back to t by the process's inverse."""
    lam = jnp.linspace(process.logsnr(1.0), process.logsnr(eps), steps + 1)
    return _pin_ends(process.t_of_logsnr(lam), eps)


def karras(process: LinearGaussianSDE, steps: int, eps: float, rho: float = KARRAS_RHO) -> jnp.ndarray:
    """EDM rho-spacing of sigma = s/m = exp(-lambda / 2), mapped back to t."""
    sig_hi = jnp.exp(-0.5 * process.logsnr(1.0))
    sig_lo = jnp.exp(-0.5 * process.logsnr(eps))
    u = jnp.linspace(0.0, 1.0, steps + 1)
    sig = (sig_hi ** (1 / rho) + u * (sig_lo ** (1 / rho) - sig_hi ** (1 / rho))) ** rho
    return _pin_ends(process.t_of_logsnr(-2.0 * jnp.log(sig)), eps)


def _pin_ends(ts: jnp.ndarray, eps: float) -> jnp.ndarray:
    """Set the end points exactly (bisection leaves ~1e-7 errors there)."""
    return ts.astype(jnp.float32).at[0].set(1.0).at[-1].set(eps)


CONTINUOUS_GRIDS: dict[str, Callable[..., jnp.ndarray]] = {
    "uniform": uniform,
    "quadratic": quadratic,
    "karras": karras,
    "logsnr": logsnr,
}


def continuous_grid(name: str, process: LinearGaussianSDE, steps: int, eps: float = 1e-3) -> jnp.ndarray:
    """The (steps + 1,) decreasing time grid `name` from t_0 = 1 to t_T = eps for `process` (see
    CONTINUOUS_GRIDS and the module docstring: uniform t_i = 1 - (1 - eps) i / T, quadratic, karras,
    logsnr)."""
    fn = lookup(CONTINUOUS_GRIDS, "grid", name)
    _check(steps, eps)
    return fn(process, steps, eps)


__all__ = ["CONTINUOUS_GRIDS", "KARRAS_RHO", "continuous_grid", "karras", "logsnr", "quadratic", "uniform"]
