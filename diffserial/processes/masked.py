"""Masked (absorbing-state) discrete diffusion over token sequences.

Tokens take values in the vocabulary {0, ..., V-1}; one extra id, MASK = V (`mask_id_for(V)`), is the
absorbing state. A clean sequence x_0 of length L is corrupted independently per position:

    q(x_t^i | x_0^i) = alpha_t  1[x_t^i = x_0^i]  +  (1 - alpha_t)  1[x_t^i = MASK],      t in [0, 1],

with a decreasing schedule alpha: alpha_0 = 1 (clean data) and alpha_1 = 0 (all masked; `LogLinear`
stops at alpha_1 = eps). Equivalently each position i is masked from a random time tau^i on, the taus
i.i.d. across positions with P(tau^i > t) = alpha_t (Austin et al. 2021, D3PM "absorbing"; Sahoo et
al. 2024, MDLM; Shi et al. 2024, MD4).

Reverse (ancestral) step, s < t. A position masked at time t is unmasked at time s with probability

    P(x_s^i != MASK | x_t^i = MASK) = (alpha_s - alpha_t) / (1 - alpha_t)        (`reveal_probability`),

and, when unmasked, takes a value drawn from the model's prediction of x_0^i given x_t (MDLM eq. 7,
MD4 eq. 5 with the "carry-over unmasking" property: unmasked positions never change).

Continuous-time NELBO (MD4 eq. 10 / MDLM eq. 11). With the weight w(t) = alpha'_t / (1 - alpha_t) < 0,

    -log p(x_0) <= int_0^1 w(t) E_{x_t ~ q(.|x_0)} [ sum_{i : x_t^i = MASK} log p_theta(x_0^i | x_t) ] dt,

the integrand being >= 0 because both w(t) and the log-probabilities are <= 0 (`nelbo_weight`).

Schedules are frozen dataclasses registered as pytrees with no leaves (static structure under
`jax.jit`), implementing `alpha(t)`, its closed-form derivative `dalpha(t)`, and `mask_prob(t)`, which
equals 1 - alpha(t) but is written without the cancellation of `1 - alpha` near t = 0.

Argument checks on times run only on concrete values (outside `jax.jit` / `jax.vmap` / `jax.grad`);
traced values pass through unchecked.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from diffserial.pytrees import static_dataclass
from diffserial.registry import lookup
from diffserial.validation import check_positive_int

Array = jax.Array


def _concrete(x) -> np.ndarray | None:
    """numpy view of `x`, or None when `x` is a tracer (nothing can be checked then)."""
    if isinstance(x, jax.core.Tracer):
        return None
    return np.asarray(x)


def _check_times(name: str, t, low: float = 0.0, low_open: bool = False) -> None:
    """ValueError unless every concrete value of `t` is finite and in [low, 1] (or (low, 1])."""
    arr = _concrete(t)
    if arr is None:
        return
    if not np.issubdtype(arr.dtype, np.number) or np.issubdtype(arr.dtype, np.complexfloating):
        raise ValueError(f"{name} must be a real number or array of them; got dtype {arr.dtype}")
    bad = ~np.isfinite(arr) | (arr > 1.0) | ((arr <= low) if low_open else (arr < low))
    if np.any(bad):
        interval = f"({low}, 1]" if low_open else f"[{low}, 1]"
        raise ValueError(f"{name} must lie in {interval}; got {arr.tolist()}")


def _as_time(t) -> Array:
    """t as a floating jax array (jax's default float dtype for Python scalars and integers)."""
    t = jnp.asarray(t)
    return t if jnp.issubdtype(t.dtype, jnp.floating) else t.astype(float)


class MaskingSchedule:
    """Shared interface: alpha(t) = P(a position is still unmasked at time t), decreasing on [0, 1]."""

    name: str = "abstract"

    def alpha(self, t: Array) -> Array:
        """alpha_t, with alpha_0 = 1."""
        raise NotImplementedError

    def dalpha(self, t: Array) -> Array:
        """d alpha_t / dt (closed form, <= 0)."""
        raise NotImplementedError

    def mask_prob(self, t: Array) -> Array:
        """1 - alpha_t, the probability that a position is masked at time t (no cancellation)."""
        raise NotImplementedError


@static_dataclass
class Linear(MaskingSchedule):
    """alpha_t = 1 - t;  alpha'_t = -1;  w(t) = alpha'_t / (1 - alpha_t) = -1 / t (MDLM, MD4 "linear")."""

    name = "linear"

    def alpha(self, t):
        _check_times("t", t)
        return 1.0 - _as_time(t)

    def dalpha(self, t):
        _check_times("t", t)
        return -jnp.ones_like(_as_time(t))

    def mask_prob(self, t):
        _check_times("t", t)
        return _as_time(t)


@static_dataclass
class Cosine(MaskingSchedule):
    """MD4's cosine schedule: alpha_t = 1 - cos(pi/2 (1 - t)) = 1 - sin(pi t / 2);
    alpha'_t = -(pi/2) cos(pi t / 2);  w(t) = -(pi/2) cot(pi t / 2).

    Written with sin(pi t / 2) so that alpha_0 = 1 and alpha_1 = 0 hold exactly in floating point.
    """

    name = "cosine"

    def alpha(self, t):
        _check_times("t", t)
        return 1.0 - jnp.sin(0.5 * jnp.pi * _as_time(t))

    def dalpha(self, t):
        _check_times("t", t)
        return -0.5 * jnp.pi * jnp.cos(0.5 * jnp.pi * _as_time(t))

    def mask_prob(self, t):
        _check_times("t", t)
        return jnp.sin(0.5 * jnp.pi * _as_time(t))


@static_dataclass
class Polynomial(MaskingSchedule):
    """alpha_t = 1 - t^power (power > 0);  alpha'_t = -power t^(power - 1);  w(t) = -power / t.

    power = 1 is `Linear`. For power < 1, alpha'_t -> -inf as t -> 0.
    """

    power: float = 2.0
    name = "polynomial"

    def __post_init__(self):
        p = self.power
        if isinstance(p, bool) or not isinstance(p, (int, float)) or not math.isfinite(p) or p <= 0:
            raise ValueError(f"power must be a finite real number > 0; got {p!r}")

    def alpha(self, t):
        _check_times("t", t)
        return 1.0 - _as_time(t) ** self.power

    def dalpha(self, t):
        _check_times("t", t)
        return -self.power * _as_time(t) ** (self.power - 1.0)

    def mask_prob(self, t):
        _check_times("t", t)
        return _as_time(t) ** self.power


@static_dataclass
class LogLinear(MaskingSchedule):
    """MDLM / SEDD log-linear noise: total noise sigma(t) = -log(1 - (1 - eps) t), so

        alpha_t = exp(-sigma(t)) = 1 - (1 - eps) t,    alpha'_t = -(1 - eps),
        w(t) = -(1 - eps) / ((1 - eps) t) = -1 / t,     0 < eps < 1.

    alpha_1 = eps > 0: at t = 1 a fraction eps of positions is still unmasked; samplers nevertheless
    start from the all-MASK sequence (MDLM does the same), which is the t = 1 law up to TV <= 1 - (1-eps)^L.
    """

    eps: float = 1e-3
    name = "loglinear"

    def __post_init__(self):
        e = self.eps
        if isinstance(e, bool) or not isinstance(e, (int, float)) or not (0.0 < e < 1.0):
            raise ValueError(f"eps must be a real number in (0, 1); got {e!r}")

    def sigma(self, t):
        """Total noise sigma(t) = -log(1 - (1 - eps) t) = -log alpha_t."""
        _check_times("t", t)
        return -jnp.log1p(-(1.0 - self.eps) * _as_time(t))

    def alpha(self, t):
        _check_times("t", t)
        return 1.0 - (1.0 - self.eps) * _as_time(t)

    def dalpha(self, t):
        _check_times("t", t)
        return -(1.0 - self.eps) * jnp.ones_like(_as_time(t))

    def mask_prob(self, t):
        _check_times("t", t)
        return (1.0 - self.eps) * _as_time(t)


SCHEDULES = {cls.name: cls for cls in (Linear, Cosine, Polynomial, LogLinear)}


def make_schedule(name: str, **kwargs) -> MaskingSchedule:
    """SCHEDULES[name](**kwargs); an unknown name raises ValueError listing the valid names."""
    return lookup(SCHEDULES, "masking schedule", name)(**kwargs)


def _check_schedule(schedule) -> None:
    if not isinstance(schedule, MaskingSchedule):
        raise ValueError(f"schedule must be a MaskingSchedule (one of {sorted(SCHEDULES)}); got {schedule!r}")


def mask_id_for(vocab_size: int) -> int:
    """The MASK token id for a vocabulary {0, ..., vocab_size - 1}: vocab_size (one past the vocabulary)."""
    check_positive_int("vocab_size", vocab_size)
    return int(vocab_size)


def nelbo_weight(schedule: MaskingSchedule, t) -> Array:
    """w(t) = alpha'_t / (1 - alpha_t)  (<= 0), for t in (0, 1].

    The continuous-time NELBO of masked diffusion (MD4, Shi et al. 2024, eq. 10) is

        L = int_0^1 w(t) E_{x_t ~ q(. | x_0)} [ sum_{i : x_t^i = MASK} log p_theta(x_0^i | x_t) ] dt  >= -log p(x_0),

    a non-negative quantity since w(t) <= 0 and log p_theta <= 0. With t ~ U(0, 1) a one-sample
    estimate is w(t) * sum_{masked i} log p_theta(x_0^i | x_t). Linear: w = -1/t; Cosine:
    w = -(pi/2) cot(pi t / 2); Polynomial(p): w = -p / t; LogLinear: w = -1/t.
    t = 0 is rejected (w is -inf or undefined there).
    """
    _check_schedule(schedule)
    _check_times("t", t, low=0.0, low_open=True)
    return schedule.dalpha(t) / schedule.mask_prob(t)


def reveal_probability(schedule: MaskingSchedule, t, s) -> Array:
    """P(x_s^i != MASK | x_t^i = MASK) = (alpha_s - alpha_t) / (1 - alpha_t),  0 <= s <= t <= 1, t > 0.

    The reverse (ancestral) step of MDLM / MD4 from time t to the earlier time s: each position still
    masked at t is unmasked at s independently with this probability. Computed as
    1 - (1 - alpha_s) / (1 - alpha_t) (= `1 - mask_prob(s) / mask_prob(t)`), so that s = 0 gives
    exactly 1: the final step of a sampler ending at s = 0 reveals every remaining position.
    Linear schedule on the grid t_k = 1 - k/T: from t = m/T to s = (m-1)/T the probability is 1/m.
    """
    _check_schedule(schedule)
    _check_times("t", t, low=0.0, low_open=True)
    _check_times("s", s)
    t_arr, s_arr = _concrete(t), _concrete(s)
    if t_arr is not None and s_arr is not None:
        try:
            later = np.broadcast_to(s_arr, np.broadcast_shapes(s_arr.shape, t_arr.shape)) > t_arr
        except ValueError:
            raise ValueError(f"s and t must broadcast together; got shapes {s_arr.shape} and {t_arr.shape}") from None
        if np.any(later):
            raise ValueError(f"s must be <= t (s is the earlier time); got s={s_arr.tolist()}, t={t_arr.tolist()}")
    return 1.0 - schedule.mask_prob(s) / schedule.mask_prob(t)


def corrupt(key: Array, x0: Array, t, schedule: MaskingSchedule, mask_id: int, prompt_mask: Array | None = None) -> Array:
    """Sample x_t ~ q(. | x_0): each position kept with probability alpha_t, else set to `mask_id`.

    key: PRNG key.  x0: integer array of clean tokens in [0, mask_id) (any shape, usually (L,));
    t: scalar time in [0, 1] (vmap for per-sequence times).  prompt_mask: optional bool array of
    x0's shape; positions where it is True are never masked. Returns int32 of x0's shape.
    A position is kept iff u < alpha_t with u ~ U[0, 1): t = 0 keeps all, t = 1 masks all (alpha_1 = 0).
    """
    _check_schedule(schedule)
    _check_times("t", t)
    if jnp.ndim(t) != 0:
        raise ValueError(f"t must be a scalar (vmap corrupt for per-sequence times); got shape {jnp.shape(t)}")
    check_positive_int("mask_id", mask_id, note=" (the vocabulary size V)")
    x0 = jnp.asarray(x0)
    if not jnp.issubdtype(x0.dtype, jnp.integer):
        raise ValueError(f"x0 must be an integer array of token ids; got dtype {x0.dtype}")
    x0_np = _concrete(x0)
    if x0_np is not None and x0_np.size and (x0_np.min() < 0 or x0_np.max() >= mask_id):
        raise ValueError(f"x0 tokens must lie in [0, mask_id) = [0, {mask_id}); got min {x0_np.min()}, max {x0_np.max()}")
    keep = jax.random.uniform(key, x0.shape) < schedule.alpha(t)
    if prompt_mask is not None:
        prompt_mask = jnp.asarray(prompt_mask)
        if prompt_mask.shape != x0.shape:
            raise ValueError(f"prompt_mask must have x0's shape {x0.shape}; got shape {prompt_mask.shape}")
        if prompt_mask.dtype != jnp.bool_:
            raise ValueError(f"prompt_mask must be a bool array; got dtype {prompt_mask.dtype}")
        keep = keep | prompt_mask
    return jnp.where(keep, x0, mask_id).astype(jnp.int32)
