"""Update rules of continuous-state samplers: one step from time t to an earlier time s < t.

Each rule is a frozen dataclass deriving from `ContinuousRule` (a `diffserial.samplers.rule.Rule`) with
    nfe_per_step: ClassVar[int]                score evaluations per step
    requires_variance_preserving: ClassVar     True for rules that need m_t^2 + s_t^2 = 1 (Li-Yan)
    init_state(x) -> state                     extra carry (e.g. DPM-Solver++'s previous x0 estimate; () by default)
    step(process, score_fn, x, state, t, s, key) -> (x, state)
and is plugged into the single sampling loop of `diffserial.samplers.loop`. `x` is ONE sample; the
driver vmaps over seeds. Notation: x_t | x_0 ~ N(m_t x_0, s_t^2 I); f, g the SDE coefficients;
dt = t - s > 0; z ~ N(0, I); score = score_fn(x, t); x_t | x_s ~ N(m_{t|s} x_s, v_{t|s} I).

    euler_maruyama    x <- x - (f(t) x - g(t)^2 score) dt + g(t) sqrt(dt) z
    ancestral         x <- (x + v_{t|s} score) / m_{t|s} + sqrt(v_{t|s} s_s^2 / s_t^2) z     (Ho et al. 2020)
    li_yan_sde        x <- (x + (1 - a) score + sqrt(1 - a) z) / sqrt(a),  a = m_{t|s}^2  (Li & Yan 2024, eq. 2.4)
    li_yan_ode        x <- (x + (1 - a) score / 2) / sqrt(a)                            (Li & Yan 2024, eq. 2.5)
    pf_euler          x <- x - v(x, t) dt,  v = f x - g^2 score / 2                      (probability flow)
    pf_heun           x' = x - v(x, t) dt;  x <- x - (v(x, t) + v(x', s)) dt / 2          (Karras et al. 2022, Alg. 1)
    dpm_solver_pp_2m  x <- (s_s / s_t) x - m_s (e^{-h} - 1) D,  h = lambda_s - lambda_t, lambda = log(m/s),
                      D = (1 + 1/(2r)) x0_t - x0_prev / (2r), r = h_prev / h, x0 = (x + s_t^2 score) / m_t
                      (Lu et al. 2022, DPM-Solver++(2M), Alg. 2; first step first order)
    pc_langevin       Langevin corrector at t, then euler_maruyama to s (Song et al. 2021, Alg. 5):
                      x <- x + e score + sqrt(2 e) z,  e = 2 a (snr ||z|| / ||score||)^2 per sample (capped)
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, ClassVar

import jax
import jax.numpy as jnp

from diffserial.processes.gaussian import LinearGaussianSDE
from diffserial.registry import lookup

Array = jax.Array
ScoreFn = Callable[[Array, Array], Array]
_NO_STATE = ()


@dataclasses.dataclass(frozen=True)
class ContinuousRule:
    """Base of the continuous update rules: the declared capabilities and the empty carry."""

    nfe_per_step: ClassVar[int] = 1
    requires_variance_preserving: ClassVar[bool] = False

    def init_state(self, x):
        """No carry: ()."""
        return _NO_STATE

    def step(self, process, score_fn, x, state, t, s, key):
        raise NotImplementedError


@dataclasses.dataclass(frozen=True)
class EulerMaruyama(ContinuousRule):
    """Euler-Maruyama step of the reverse SDE dx = (f x - g^2 score) dt + g dW-bar."""

    def step(self, process, score_fn, x, state, t, s, key):
        dt = t - s
        drift = process.reverse_drift(x, t, score_fn(x, t))
        z = jax.random.normal(key, x.shape, x.dtype)
        return x - drift * dt + process.diffusion(t) * jnp.sqrt(dt) * z, state


@dataclasses.dataclass(frozen=True)
class Ancestral(ContinuousRule):
    """Exact Gaussian posterior q(x_s | x_t, x0_hat) with Tweedie's x0_hat = (x + s_t^2 score) / m_t.

    Mean (x + v_{t|s} score) / m_{t|s} and variance v_{t|s} s_s^2 / s_t^2; for VP this is DDPM's update with the
    posterior variance beta-tilde (Ho et al. 2020, eqs. 6-7, 11), for VE the SMLD ancestral step.
    """

    def step(self, process, score_fn, x, state, t, s, key):
        m_ts, v_ts = process.transition(s, t)
        mean = (x + v_ts * score_fn(x, t)) / m_ts
        z = jax.random.normal(key, x.shape, x.dtype)
        return mean + jnp.sqrt(v_ts * process.variance(s) / process.variance(t)) * z, state


def _li_yan_alpha(process: LinearGaussianSDE, t, s):
    """a_t = m_t^2 / m_s^2, the per-step signal retention of the discrete VP chain."""
    return process.transition(s, t)[0] ** 2


@dataclasses.dataclass(frozen=True)
class LiYanSDE(ContinuousRule):
    """Li & Yan (2024, arXiv 2409.18959) eq. 2.4: Y <- a^{-1/2} (Y + (1 - a) score + sqrt(1 - a) Z).

    Requires a variance-preserving process (the discrete chain X_t = sqrt(a_t) X_{t-1} + sqrt(1-a_t) W_t).
    """

    requires_variance_preserving: ClassVar[bool] = True

    def step(self, process, score_fn, x, state, t, s, key):
        a = _li_yan_alpha(process, t, s)
        z = jax.random.normal(key, x.shape, x.dtype)
        return (x + (1.0 - a) * score_fn(x, t) + jnp.sqrt(1.0 - a) * z) / jnp.sqrt(a), state


@dataclasses.dataclass(frozen=True)
class LiYanODE(ContinuousRule):
    """Li & Yan (2024) eq. 2.5: Y <- a^{-1/2} (Y + (1 - a) score / 2)."""

    requires_variance_preserving: ClassVar[bool] = True

    def step(self, process, score_fn, x, state, t, s, key):
        a = _li_yan_alpha(process, t, s)
        return (x + 0.5 * (1.0 - a) * score_fn(x, t)) / jnp.sqrt(a), state


@dataclasses.dataclass(frozen=True)
class PFEuler(ContinuousRule):
    """Euler step of the probability-flow ODE dx/dt = f x - g^2 score / 2."""

    def step(self, process, score_fn, x, state, t, s, key):
        return x - process.pf_drift(x, t, score_fn(x, t)) * (t - s), state


@dataclasses.dataclass(frozen=True)
class PFHeun(ContinuousRule):
    """Heun (explicit trapezoid, 2nd order) step of the probability-flow ODE."""

    nfe_per_step: ClassVar[int] = 2

    def step(self, process, score_fn, x, state, t, s, key):
        dt = t - s
        v_t = process.pf_drift(x, t, score_fn(x, t))
        x_euler = x - v_t * dt
        v_s = process.pf_drift(x_euler, s, score_fn(x_euler, s))
        return x - 0.5 * (v_t + v_s) * dt, state


@dataclasses.dataclass(frozen=True)
class DPMSolverPP2M(ContinuousRule):
    """DPM-Solver++(2M), multistep second order in the data prediction x0 (Lu et al. 2022, Alg. 2).

    State: (previous x0 estimate, previous step size h_prev in lambda = log(m/s)); h_prev = 0 marks the
    first step, which is first order (DDIM).
    """

    def init_state(self, x):
        return jnp.zeros_like(x), jnp.zeros((), x.dtype)

    def step(self, process, score_fn, x, state, t, s, key):
        x0_prev, h_prev = state
        m_t, s_t = process.marginal(t)
        m_s, s_s = process.marginal(s)
        h = 0.5 * (process.logsnr(s) - process.logsnr(t))
        x0 = (x + s_t**2 * score_fn(x, t)) / m_t
        r = h_prev / h
        second = (1.0 + 0.5 / r) * x0 - (0.5 / r) * x0_prev
        d = jnp.where(h_prev > 0, second, x0)
        x_next = (s_s / s_t) * x - m_s * jnp.expm1(-h) * d
        return x_next, (x0, h)


@dataclasses.dataclass(frozen=True)
class LangevinCorrector:
    """Langevin MCMC at fixed t (Song et al. 2021, Alg. 5), step size chosen per sample:

    e = 2 a min((snr ||z|| / ||score||)^2, max_step_ratio (snr s_t)^2),  x <- x + e score + sqrt(2 e) z,
    with a = m_{t|s}^2 (a = 1 for VE). score_sde averages the norms over the batch; here they are per
    sample, so a sample's update does not depend on the other seeds in the batch. Per sample, ||score||
    can vanish at a mode of a low-dimensional p_t and the uncapped rule then takes an unbounded step;
    the cap (by default the step the rule gives a Gaussian p_t of scale s_t, where ||z||^2 ~ d and
    ||score||^2 ~ d / s_t^2) is this library's safeguard, not part of the published rule. Because e
    depends on x, the per-sample rule is biased in low dimension (its error does not vanish as T grows);
    `diffserial` reports that rather than hiding it.
    """

    snr: float = 0.16
    n_steps: int = 1
    max_step_ratio: float = 1.0

    def correct(self, process, score_fn, x, t, s, key):
        a = process.transition(s, t)[0] ** 2
        s_t = process.std(t)

        def body(k, x):
            score = score_fn(x, t)
            z = jax.random.normal(jax.random.fold_in(key, k), x.shape, x.dtype)
            score_norm = jnp.linalg.norm(score)
            ratio = jnp.where(score_norm > 0, self.snr * jnp.linalg.norm(z) / score_norm, jnp.inf)
            e = 2.0 * a * jnp.minimum(ratio**2, self.max_step_ratio * (self.snr * s_t) ** 2)
            return x + e * score + jnp.sqrt(2.0 * e) * z

        return jax.lax.fori_loop(0, self.n_steps, body, x)


@dataclasses.dataclass(frozen=True)
class PredictorCorrector(ContinuousRule):
    """Corrector at t followed by a predictor step from t to s (Song et al. 2021, Alg. 1/2 structure)."""

    predictor: Any = EulerMaruyama()
    corrector: LangevinCorrector = LangevinCorrector()

    @property
    def nfe_per_step(self) -> int:
        return self.predictor.nfe_per_step + self.corrector.n_steps

    @property
    def requires_variance_preserving(self) -> bool:
        return self.predictor.requires_variance_preserving

    def init_state(self, x):
        return self.predictor.init_state(x)

    def step(self, process, score_fn, x, state, t, s, key):
        k_corr, k_pred = jax.random.split(key)
        x = self.corrector.correct(process, score_fn, x, t, s, k_corr)
        return self.predictor.step(process, score_fn, x, state, t, s, k_pred)


CONTINUOUS_SAMPLERS: dict[str, Callable[[], ContinuousRule]] = {
    "euler_maruyama": EulerMaruyama,
    "ancestral": Ancestral,
    "li_yan_sde": LiYanSDE,
    "li_yan_ode": LiYanODE,
    "pf_euler": PFEuler,
    "pf_heun": PFHeun,
    "dpm_solver_pp_2m": DPMSolverPP2M,
    "pc_langevin": PredictorCorrector,
}


def continuous_sampler(name: str, **kwargs) -> ContinuousRule:
    """The continuous update rule called `name` (see CONTINUOUS_SAMPLERS and the module docstring for each
    rule's update x_t -> x_s), built with `kwargs`."""
    return lookup(CONTINUOUS_SAMPLERS, "sampler", name)(**kwargs)


__all__ = ["CONTINUOUS_SAMPLERS", "Ancestral", "ContinuousRule", "DPMSolverPP2M", "EulerMaruyama",
           "LangevinCorrector", "LiYanODE", "LiYanSDE", "PFEuler", "PFHeun", "PredictorCorrector",
           "continuous_sampler"]
