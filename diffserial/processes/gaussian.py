"""Gaussian forward processes (linear SDEs) of score-based diffusion.

Every process here is a linear SDE

    dx = f(t) x dt + g(t) dW,        t in [0, 1],

whose transition from data is Gaussian,

    x_t | x_0 ~ N(m(t) x_0, s(t)^2 I),

with m(0) = 1, s(0) = 0 (Song et al. 2021, "Score-Based Generative Modeling through SDEs", eqs. 29-34).
A process implements four primitives -- `drift_coeff` f(t), `diffusion` g(t), `mean_coeff` m(t),
`std` s(t) -- and a prior; everything else (reverse drift, probability-flow drift, log-SNR,
two-time transitions) is derived once in `LinearGaussianSDE`.

Processes are frozen dataclasses registered as pytrees with no leaves: they are hashable, compare by
value, and can be passed through `jax.jit` as static structure.
"""

from __future__ import annotations

import math
from typing import Callable

import jax
import jax.numpy as jnp

from diffserial.pytrees import static_dataclass

Array = jax.Array
ScoreFn = Callable[[Array, Array], Array]


class LinearGaussianSDE:
    """Shared algebra of linear SDEs with Gaussian transitions x_t | x_0 ~ N(m x_0, s^2 I)."""

    name: str = "abstract"
    variance_preserving: bool = False  # True iff m(t)^2 + s(t)^2 = 1 for all t

    # --- primitives ------------------------------------------------------------------------
    def drift_coeff(self, t: Array) -> Array:
        """f(t) in the drift f(t) x."""
        raise NotImplementedError

    def diffusion(self, t: Array) -> Array:
        """g(t)."""
        raise NotImplementedError

    def mean_coeff(self, t: Array) -> Array:
        """m(t) = exp(int_0^t f)."""
        raise NotImplementedError

    def std(self, t: Array) -> Array:
        """s(t), the standard deviation of x_t given x_0."""
        raise NotImplementedError

    def prior_std(self) -> float:
        """Standard deviation of the isotropic Gaussian prior used at t = 1."""
        raise NotImplementedError

    # --- derived ---------------------------------------------------------------------------
    def marginal(self, t: Array) -> tuple[Array, Array]:
        """(m(t), s(t)) such that x_t = m(t) x_0 + s(t) z, z ~ N(0, I)."""
        return self.mean_coeff(t), self.std(t)

    def drift(self, x: Array, t: Array) -> Array:
        """Forward drift f(t) x."""
        return self.drift_coeff(t) * x

    def reverse_drift(self, x: Array, t: Array, score: Array) -> Array:
        """Drift of the reverse-time SDE (Anderson 1982): f(t) x - g(t)^2 score(x, t)."""
        return self.drift(x, t) - self.diffusion(t) ** 2 * score

    def pf_drift(self, x: Array, t: Array, score: Array) -> Array:
        """Probability-flow ODE velocity (Song et al. 2021, eq. 13): f(t) x - g(t)^2 score / 2."""
        return self.drift(x, t) - 0.5 * self.diffusion(t) ** 2 * score

    def prior_sample(self, key: Array, shape: tuple[int, ...]) -> Array:
        """x_1 ~ N(0, prior_std^2 I)."""
        return self.prior_std() * jax.random.normal(key, shape)

    def logsnr(self, t: Array) -> Array:
        """lambda(t) = log(m(t)^2 / s(t)^2), strictly decreasing in t."""
        m, s = self.marginal(t)
        return 2.0 * (jnp.log(m) - jnp.log(s))

    def t_of_logsnr(self, lam: Array, iters: int = 60) -> Array:
        """Inverse of `logsnr` on (0, 1], by bisection (lambda is monotone for every process here)."""
        lam = jnp.asarray(lam, jnp.float32)
        lo = jnp.zeros_like(lam)
        hi = jnp.ones_like(lam)

        def body(_, bounds):
            lo, hi = bounds
            mid = 0.5 * (lo + hi)
            too_noisy = self.logsnr(mid) < lam  # mid is past the target time
            return jnp.where(too_noisy, lo, mid), jnp.where(too_noisy, mid, hi)

        lo, hi = jax.lax.fori_loop(0, iters, body, (lo, hi))
        return 0.5 * (lo + hi)

    def variance(self, t: Array) -> Array:
        """s(t)^2, computed without squaring a square root where the process allows."""
        return self.std(t) ** 2

    def transition(self, s: Array, t: Array) -> tuple[Array, Array]:
        """(m_{t|s}, v_{t|s}) with x_t | x_s ~ N(m_{t|s} x_s, v_{t|s} I), for s < t.

        m_{t|s} = m(t) / m(s),   v_{t|s} = s(t)^2 - m_{t|s}^2 s(s)^2   (any linear SDE).
        """
        m_ts = self.mean_coeff(t) / self.mean_coeff(s)
        return m_ts, jnp.maximum(self.variance(t) - m_ts**2 * self.variance(s), 0.0)


def _vp_log_mean_coeff(t: Array, beta_min: float, beta_max: float) -> Array:
    """log m(t) = -t^2 (beta_max - beta_min) / 4 - t beta_min / 2 for the linear beta schedule."""
    return -0.25 * t**2 * (beta_max - beta_min) - 0.5 * t * beta_min


@static_dataclass
class VPLinear(LinearGaussianSDE):
    """Variance-preserving SDE with linear beta (DDPM's continuous limit; score_sde defaults).

    beta(t) = beta_min + t (beta_max - beta_min);  dx = -beta(t) x / 2 dt + sqrt(beta(t)) dW;
    m(t) = exp(-t^2 (beta_max - beta_min) / 4 - t beta_min / 2),  s(t) = sqrt(1 - m(t)^2).
    """

    beta_min: float = 0.1
    beta_max: float = 20.0
    name = "vp_linear"
    variance_preserving = True

    def beta(self, t):
        return self.beta_min + t * (self.beta_max - self.beta_min)

    def drift_coeff(self, t):
        return -0.5 * self.beta(t)

    def diffusion(self, t):
        return jnp.sqrt(self.beta(t))

    def mean_coeff(self, t):
        return jnp.exp(_vp_log_mean_coeff(t, self.beta_min, self.beta_max))

    def std(self, t):
        return jnp.sqrt(self.variance(t))

    def variance(self, t):
        return -jnp.expm1(2.0 * _vp_log_mean_coeff(t, self.beta_min, self.beta_max))

    def prior_std(self):
        return 1.0


@static_dataclass
class VPCosine(LinearGaussianSDE):
    """Variance-preserving SDE with the cosine schedule (Nichol & Dhariwal 2021).

    theta(t) = theta_0 + t (theta_1 - theta_0),  theta_0 = (pi/2) s_offset / (1 + s_offset);
    m(t) = cos(theta(t)) / cos(theta_0),  s(t) = sqrt(1 - m(t)^2),
    beta(t) = -2 d/dt log m(t) = 2 tan(theta(t)) (theta_1 - theta_0),
    dx = -beta(t) x / 2 dt + sqrt(beta(t)) dW.

    Nichol & Dhariwal end at theta_1 = pi/2, where beta is infinite; here theta_1 is chosen so that
    m(1) = alpha_end (default 0.0066, the terminal signal level of `VPLinear`), keeping beta finite.
    """

    s_offset: float = 0.008
    alpha_end: float = 0.0066
    name = "vp_cosine"
    variance_preserving = True

    def _theta_bounds(self):
        theta_0 = 0.5 * math.pi * self.s_offset / (1.0 + self.s_offset)
        theta_1 = math.acos(self.alpha_end * math.cos(theta_0))
        return theta_0, theta_1

    def _theta(self, t):
        theta_0, theta_1 = self._theta_bounds()
        return theta_0 + t * (theta_1 - theta_0)

    def beta(self, t):
        theta_0, theta_1 = self._theta_bounds()
        return 2.0 * jnp.tan(self._theta(t)) * (theta_1 - theta_0)

    def drift_coeff(self, t):
        return -0.5 * self.beta(t)

    def diffusion(self, t):
        return jnp.sqrt(self.beta(t))

    def mean_coeff(self, t):
        theta_0, _ = self._theta_bounds()
        return jnp.cos(self._theta(t)) / math.cos(theta_0)

    def std(self, t):
        return jnp.sqrt(self.variance(t))

    def variance(self, t):
        """1 - cos^2(theta) / cos^2(theta_0) = sin(theta - theta_0) sin(theta + theta_0) / cos^2(theta_0),
        the second form without cancellation near t = 0."""
        theta_0, theta_1 = self._theta_bounds()
        dtheta = t * (theta_1 - theta_0)
        return jnp.sin(dtheta) * jnp.sin(dtheta + 2.0 * theta_0) / math.cos(theta_0) ** 2

    def prior_std(self):
        return 1.0


@static_dataclass
class SubVP(LinearGaussianSDE):
    """Sub-VP SDE (Song et al. 2021, eq. 35), with the linear beta schedule of `VPLinear`.

    dx = -beta(t) x / 2 dt + sqrt(beta(t) (1 - exp(-2 int_0^t beta))) dW;
    m(t) = exp(-int_0^t beta / 2),  s(t) = 1 - exp(-int_0^t beta) = 1 - m(t)^2.
    """

    beta_min: float = 0.1
    beta_max: float = 20.0
    name = "subvp"

    def beta(self, t):
        return self.beta_min + t * (self.beta_max - self.beta_min)

    def drift_coeff(self, t):
        return -0.5 * self.beta(t)

    def diffusion(self, t):
        lmc = _vp_log_mean_coeff(t, self.beta_min, self.beta_max)
        return jnp.sqrt(self.beta(t) * -jnp.expm1(4.0 * lmc))

    def mean_coeff(self, t):
        return jnp.exp(_vp_log_mean_coeff(t, self.beta_min, self.beta_max))

    def std(self, t):
        return -jnp.expm1(2.0 * _vp_log_mean_coeff(t, self.beta_min, self.beta_max))

    def prior_std(self):
        return 1.0


@static_dataclass
class VEGeometric(LinearGaussianSDE):
    """Variance-exploding SDE with geometric sigma (SMLD's continuous limit; Song et al. 2021, eq. 30).

    sigma(t) = sigma_min (sigma_max / sigma_min)^t;  dx = sigma(t) sqrt(2 log(sigma_max / sigma_min)) dW;
    m(t) = 1,  s(t) = sqrt(sigma(t)^2 - sigma_min^2)  (exact for x_0 at t = 0; score_sde uses sigma(t),
    i.e. data pre-blurred by sigma_min). Prior N(0, s(1)^2 I), which ignores the data mean.
    """

    sigma_min: float = 0.01
    sigma_max: float = 50.0
    name = "ve_geometric"

    def sigma(self, t):
        return self.sigma_min * (self.sigma_max / self.sigma_min) ** t

    def drift_coeff(self, t):
        return jnp.zeros_like(jnp.asarray(t, jnp.float32))

    def diffusion(self, t):
        return self.sigma(t) * math.sqrt(2.0 * math.log(self.sigma_max / self.sigma_min))

    def mean_coeff(self, t):
        return jnp.ones_like(jnp.asarray(t, jnp.float32))

    def std(self, t):
        return jnp.sqrt(self.variance(t))

    def variance(self, t):
        return self.sigma(t) ** 2 - self.sigma_min**2

    def prior_std(self):
        return math.sqrt(self.sigma_max**2 - self.sigma_min**2)


PROCESSES = {cls.name: cls for cls in (VPLinear, VPCosine, SubVP, VEGeometric)}
