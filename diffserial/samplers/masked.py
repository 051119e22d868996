"""Samplers for masked (absorbing-state) diffusion over token sequences, on the shared scan driver.

Conventions (`diffserial.processes.masked`): tokens are int32 (L,), the vocabulary is {0, ..., V-1},
MASK = V; a predictor (x, t) -> logits or log-probabilities (L, V) of p(x_0^i = . | x) for ONE
sequence; time runs from t = 1 (all masked) to t = 0 (clean) on a grid ts decreasing from 1 to
exactly 0. Every rule is a frozen dataclass with

    nfe_per_step: int                                          predictor evaluations per step
    init_state(x) -> MaskedRuleState(fixed, psi)               fixed = positions unmasked at init (prompt)
    step(schedule, predictor, x, state, t, s, key) -> (x, state)

plugged into `diffserial.samplers.driver.run_chain` (one `lax.scan` over steps, vmapped over seeds,
seed contract and sharding from the driver). A rule never changes a `fixed` position: the prompt is
given, never masked, never revised. Rules need the MASK id, held in their `mask_id` field;
`sample_tokens` binds it (`rule.bind(V)`). Notation for one step t -> s < t: a_t = alpha_t,
m_t = 1 - a_t (the schedule's `mask_prob`, no cancellation), x_theta = the predictor's marginals at
(x_t, t), one draw per position from x_theta is the "candidate token". The last step (s = 0) leaves no
position masked, for every rule.

ReMDM family: one posterior, parameterised by a remasking probability sigma (Wang et al. 2025,
arXiv 2503.00307, eq. 6 / Alg. 1): for a masked z_t, reveal (to the candidate token) w.p.
(a_s - (1 - sigma) a_t) / m_t, i.e. stay masked w.p. (m_s - sigma a_t) / m_t; for an unmasked, non-fixed
z_t, remask w.p. sigma, else keep. Admissible: 0 <= sigma <= sigma_max = min(1, m_s / a_t). With an
exact x_theta every admissible sigma maps q(z_t | x0) to q(z_s | x0) (the forward marginals).

    ancestral       sigma = 0: reveal w.p. (a_s - a_t)/m_t   (MDLM, Sahoo et al. 2024, eq. 7; MD4, Shi et al. 2024)
    remdm_cap       sigma = min(eta, sigma_max)                          (ReMDM-cap, Sec. 4.1)
    remdm_rescale   sigma = eta sigma_max                                (ReMDM-rescale, Sec. 4.1)
    remdm_conf      sigma^(l) = softmax_l(-psi) eta sigma_max on unmasked tokens, 0 on masked ones
                    (psi = probability of the token when it was decoded)  (ReMDM-conf, Sec. 4.1, Alg. 2)
    remdm_loop      MDLM until t_on, then alpha held at alpha(t_on) with sigma = min(eta, sigma_max),
                    then MDLM on the schedule's [0, t_on] compressed into [0, t_off]  (ReMDM-loop, Alg. 3)
    fb_corrector    sigma = (a_s - a_t)/a_t clipped to [0, sigma_max]   (Campbell et al. 2022 FB corrector
                    = ReMDM, Prop. 4.2 of Wang et al.; Thm 4.1: predictor + one corrector step, 1 NFE)
    dfm_corrector   sigma = beta_t (a_s - a_t)/a_t clipped, beta_t = A t^a (1 - t)^b, A = 10, a = b = 1/4
                    (Gat et al. 2024 DFM corrector = ReMDM, Prop. 4.3 of Wang et al.; App. D.1 schedule)
    revision        ancestral step, then revealed tokens are re-predicted with themselves hidden (2 NFE)

Reveal-by-score family: reveal exactly k_t masked positions, chosen by a score (fixed shapes: a stable
argsort with non-candidates at -inf and random tie-breaking), filled with the candidate tokens.

    first_hitting    k_t = 1, uniformly random position (Zheng et al. 2024, one first-hitting event per step)
    topk_confidence  k_t = #masked(t) - round(n_gen m_s); score = probability of the sampled token (LLaDA,
                     Nie et al. 2025, "low_confidence" remasking)
    topk_margin      same count; score = top1 - top2 probability (Kim et al. 2025, "margin")
    topk_entropy     same count; score = -entropy of x_theta (Ben-Hamu et al. 2025 / Dream "entropy")
    topk_random      same count; random positions (LLaDA "random" remasking)
    maskgit          #masked after the step = floor(n_gen cos(pi/2 (1 - s))); score = log p(token) +
                     temperature s Gumbel (Chang et al. 2022, MaskGIT, Sec. 3.2)
    semi_ar          consecutive blocks of block_len generated positions; time divided equally among
                     blocks; topk_confidence inside the current block (LLaDA semi-autoregressive remasking)

Categorical draws use `sample_categorical`: Gumbel-max with a 46-bit uniform (see there).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Callable, ClassVar, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh

from diffserial.processes.masked import SCHEDULES, MaskingSchedule
from diffserial.registry import lookup
from diffserial.samplers import driver

Array = jax.Array
Partial = jax.tree_util.Partial
Predictor = Callable[[Array, Array], Array]

GRID_SPACINGS = ("uniform", "cosine")


# --------------------------------------------------------------------------------------------------
# Time grids
# --------------------------------------------------------------------------------------------------


def masked_grid(steps: int, spacing: str = "uniform") -> Array:
    """Decreasing float32 grid ts of shape (steps + 1,) with ts[0] = 1 and ts[-1] = 0 exactly.

        uniform   t_k = 1 - k/T
        cosine    t_k = 1 - sin(pi/2 k/T) = 2 sin^2(pi/4 (1 - k/T))   (dense near t = 0, the data end)

    Step k of a sampler moves from ts[k] to ts[k + 1]. With the linear schedule alpha_t = 1 - t the
    uniform grid reveals L/T positions per step in expectation (exactly, for the top-k rules).
    """
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 1:
        raise ValueError(f"steps must be an integer >= 1, got {steps!r}")
    if spacing not in GRID_SPACINGS:
        raise ValueError(f"unknown grid spacing {spacing!r}; valid spacings: {', '.join(GRID_SPACINGS)}")
    u = np.arange(steps + 1, dtype=np.float64) / steps
    t = 1.0 - u if spacing == "uniform" else 2.0 * np.sin(0.25 * np.pi * (1.0 - u)) ** 2
    t[0], t[-1] = 1.0, 0.0
    ts = t.astype(np.float32)
    if not np.all(np.diff(ts) < 0):
        raise ValueError(f"{steps} steps of {spacing} spacing do not give distinct float32 times")
    return jnp.asarray(ts)


# --------------------------------------------------------------------------------------------------
# Categorical sampling with a 46-bit Gumbel
# --------------------------------------------------------------------------------------------------

_TWO_M23 = 2.0**-23
_ONE_MINUS_ULP = 1.0 - 2.0**-24  # largest float32 below 1


def _v_from_bits(b1: Array, b2: Array) -> Array:
    """v = (b1 + (b2 + 1/2) 2^-23) 2^-23 in (0, 1) from two 23-bit integers: a uniform with 46 bits of
    resolution near 0 (smallest value 2^-47), computed in float32 (whose relative precision near 0 keeps
    every bit that matters)."""
    v = (b1.astype(jnp.float32) + (b2.astype(jnp.float32) + 0.5) * _TWO_M23) * _TWO_M23
    return jnp.minimum(v, _ONE_MINUS_ULP)


def _gumbel_from_v(v: Array) -> Array:
    """G = -log(-log(1 - v)) = -log(-log1p(-v)): the upper tail of G is resolved by v near 0."""
    return -jnp.log(-jnp.log1p(-v))


def gumbel46(key: Array, shape: Sequence[int]) -> Array:
    """Standard Gumbel noise (float32) whose upper tail reaches 47 ln 2 ~ 32.6 instead of ~16.6.

    A float32 uniform u has 24 bits, so G = -log(-log u) <= -log(-log(1 - 2^-24)) ~ 16.6: every event of
    probability < ~6e-8 per draw is cut, which biases Gumbel-max against rare tokens over a large
    vocabulary and long sequences (the float32 Gumbel issue of Zheng et al. 2024, arXiv 2409.02908, fixed
    in MDLM/ReMDM by float64 noise). Here v = 1 - u is built from two 23-bit draws b1, b2:
    v = (b1 + (b2 + 1/2) 2^-23) 2^-23, so P(v < x) = x down to x ~ 2^-46, and G = -log(-log1p(-v)).
    The lower tail is capped at v <= 1 - 2^-24 (G >= -2.8, an event of probability 6e-8), as with float32.
    """
    return _gumbel_from_words(jax.random.bits(key, (2,) + tuple(shape), jnp.uint32))


def _gumbel_from_words(words: Array) -> Array:
    """`gumbel46` from random uint32 words of shape (2, *shape) (the top 23 bits of each are used)."""
    return _gumbel_from_v(_v_from_bits(words[0] >> 9, words[1] >> 9))


def _uniform_from_words(words: Array) -> Array:
    """U[0, 1) float32 with 24 bits from random uint32 words (as jax.random.uniform)."""
    return (words >> 8).astype(jnp.float32) * jnp.float32(2.0**-24)


def _words(key: Array, *shapes: Sequence[int]) -> list[Array]:
    """Random uint32 arrays of the given shapes from ONE `jax.random.bits` call: a step draws all its
    randomness at once (each threefry call costs XLA compile time on CPU)."""
    sizes = [math.prod(shape) for shape in shapes]
    flat = jax.random.bits(key, (sum(sizes),), jnp.uint32)
    out, offset = [], 0
    for shape, size in zip(shapes, sizes):
        out.append(flat[offset:offset + size].reshape(tuple(shape)))
        offset += size
    return out


def sample_categorical(key: Array, logits: Array) -> Array:
    """One draw per row of softmax(logits) (last axis) by Gumbel-max with `gumbel46`: argmax(logits + G).

    logits: (..., V) float, unnormalised log-probabilities; entries of -1e9 (`LOG_ZERO`) are never drawn
    while any row entry is finite and > -1e9 + 33. Returns int32 of shape logits.shape[:-1].
    """
    logits = jnp.asarray(logits, jnp.float32)
    return jnp.argmax(logits + gumbel46(key, logits.shape), axis=-1).astype(jnp.int32)


# --------------------------------------------------------------------------------------------------
# Shared pieces of the rules
# --------------------------------------------------------------------------------------------------


class MaskedRuleState(NamedTuple):
    """Carry of every masked rule: `fixed` (L,) bool, the positions unmasked at init (prompt), which no
    rule changes; `psi` (L,) float32, the predictor's probability of each position's token when it was
    last drawn (1 at init; read by remdm_conf and by revision's threshold mode)."""

    fixed: Array
    psi: Array


def _check_real(name: str, value, low: float, high: float | None = None, low_open: bool = False) -> None:
    ok = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)
    ok = ok and math.isfinite(value) and (value > low if low_open else value >= low)
    ok = ok and (high is None or value <= high)
    if not ok:
        interval = f"{'(' if low_open else '['}{low}, {'inf)' if high is None else f'{high}]'}"
        raise ValueError(f"{name} must be a real number in {interval}; got {value!r}")


def _check_positive_int(name: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1; got {value!r}")


def _predict(predictor: Predictor, x: Array, t: Array, mask_id: int) -> Array:
    """Normalised float32 log-probabilities (L, V) of the predictor at (x, t); V must equal mask_id."""
    out = predictor(x, t)
    if out.shape != (x.shape[0], mask_id):
        raise ValueError(f"predictor returns shape {out.shape} for a sequence of length {x.shape[0]}; "
                         f"expected (L, vocab_size) = ({x.shape[0]}, {mask_id}) (MASK id = vocab_size = {mask_id})")
    return jax.nn.log_softmax(out.astype(jnp.float32), axis=-1)


def _draw(words: Array, logp: Array) -> tuple[Array, Array]:
    """Candidate tokens (L,) drawn from exp(logp) by Gumbel-max (words: (2, L, V) uint32) and their
    probabilities (L,)."""
    tokens = jnp.argmax(logp + _gumbel_from_words(words), axis=-1).astype(jnp.int32)
    return tokens, jnp.exp(jnp.take_along_axis(logp, tokens[:, None], axis=-1)[:, 0])


def sigma_max(alpha_t: Array, mask_s: Array) -> Array:
    """Largest admissible ReMDM remasking probability min(1, (1 - alpha_s) / alpha_t) (1 when alpha_t = 0)."""
    safe = jnp.where(alpha_t > 0, alpha_t, 1.0)
    return jnp.where(alpha_t > 0, jnp.minimum(1.0, mask_s / safe), 1.0)


def remdm_transition(x: Array, fixed: Array, tokens: Array, alpha_t: Array, mask_t: Array, mask_s: Array,
                     sigma_unmasked: Array, sigma_masked: Array, u: Array, mask_id: int) -> tuple[Array, Array]:
    """The ReMDM posterior applied with one uniform u (L,) per position; returns (x_s, revealed).

    Masked z_t:             stays masked iff u >= 1 - (m_s - sigma a_t) / m_t, else becomes `tokens`;
    unmasked, non-fixed z_t: becomes MASK iff u < sigma, else kept;   fixed: kept.
    sigma may be a scalar or per position (L,). At s = 0 (m_s = 0, sigma = 0) every masked position is
    revealed: the reveal probability is exactly 1 and u < 1.
    """
    masked = x == mask_id
    stay = jnp.clip((mask_s - sigma_masked * alpha_t) / mask_t, 0.0, 1.0)
    revealed = masked & (u < 1.0 - stay)
    remasked = ~masked & ~fixed & (u < sigma_unmasked)
    x_s = jnp.where(revealed, tokens, jnp.where(remasked, jnp.int32(mask_id), x))
    return x_s.astype(jnp.int32), revealed


PAIRWISE_MAX_LEN = 256


def _select_top(score: Array, candidate: Array, quota: Array, group: Array, start: Array, tie: Array) -> Array:
    """Boolean (L,): in each group, the `quota` candidates of highest score (ties broken at random).

    Fixed shapes. A position's place in the order (group ascending, score descending, tie ascending;
    non-candidates at score -inf, so last in their group) minus `start` (where its group begins) is its
    rank. For L <= PAIRWISE_MAX_LEN the place is counted by pairwise comparison (O(L^2) vectorised
    work, several times faster than XLA's CPU sort at L = 64); longer sequences use one
    lexicographic `lax.sort`. quota, group, start: (L,) int32, the values of each position's group;
    tie: (L,) random values (any order type) breaking ties at random.
    """
    n = score.shape[0]
    key_score = jnp.where(candidate, score, -jnp.inf)
    if n <= PAIRWISE_MAX_LEN:
        g_i, g_j = group[:, None], group[None, :]
        s_i, s_j = key_score[:, None], key_score[None, :]
        before = (g_j < g_i) | ((g_j == g_i) & ((s_j > s_i) | ((s_j == s_i) & (tie[None, :] < tie[:, None]))))
        rank = jnp.sum(before, axis=1, dtype=jnp.int32) - start
    else:
        iota = jnp.arange(n, dtype=jnp.int32)
        *_, order = jax.lax.sort((group, -key_score, tie, iota), num_keys=3)
        rank = jnp.zeros((n,), jnp.int32).at[order].set(iota) - start
    return candidate & (rank < quota)


@dataclasses.dataclass(frozen=True, kw_only=True)
class MaskedRule:
    """Base of the masked update rules. `mask_id` (= vocab_size) is bound by `sample_tokens`."""

    mask_id: int | None = None
    nfe_per_step: ClassVar[int] = 1

    def bind(self, vocab_size: int) -> "MaskedRule":
        """This rule with mask_id = vocab_size (ValueError if it is already bound to another id)."""
        _check_positive_int("vocab_size", vocab_size)
        if self.mask_id is not None and self.mask_id != vocab_size:
            raise ValueError(f"rule is bound to mask_id {self.mask_id}, but vocab_size is {vocab_size}")
        return dataclasses.replace(self, mask_id=int(vocab_size))

    def _mask(self) -> int:
        if self.mask_id is None:
            raise ValueError(f"{type(self).__name__} has no mask_id: use sample_tokens or rule.bind(vocab_size)")
        return self.mask_id

    def init_state(self, x: Array) -> MaskedRuleState:
        return MaskedRuleState(fixed=x != self._mask(), psi=jnp.ones(x.shape, jnp.float32))

    def step(self, schedule, predictor, x, state, t, s, key):
        raise NotImplementedError


# --------------------------------------------------------------------------------------------------
# ReMDM family: one posterior, a sigma rule per sampler
# --------------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, kw_only=True)
class _ReMDMFamily(MaskedRule):
    """One predictor call at (x_t, t), candidate tokens drawn from it, then `remdm_transition` with the
    subclass's (alpha_t, alpha_s, m_t, m_s) and sigma (for unmasked, for masked positions)."""

    def _alphas(self, schedule, t, s):
        return schedule.alpha(t), schedule.alpha(s), schedule.mask_prob(t), schedule.mask_prob(s)

    def _sigmas(self, alpha_t, alpha_s, mask_t, mask_s, t, s, x, state):
        raise NotImplementedError

    def _remdm_step(self, schedule, predictor, x, state, t, s, tok_words, u_words):
        mask_id = self._mask()
        tokens, p_tok = _draw(tok_words, _predict(predictor, x, t, mask_id))
        a_t, a_s, m_t, m_s = self._alphas(schedule, t, s)
        sig_u, sig_m = self._sigmas(a_t, a_s, m_t, m_s, t, s, x, state)
        u = _uniform_from_words(u_words)
        x_s, revealed = remdm_transition(x, state.fixed, tokens, a_t, m_t, m_s, sig_u, sig_m, u, mask_id)
        return x_s, state._replace(psi=jnp.where(revealed, p_tok, state.psi))

    def step(self, schedule, predictor, x, state, t, s, key):
        n = x.shape[0]
        tok_words, u_words = _words(key, (2, n, self._mask()), (n,))
        return self._remdm_step(schedule, predictor, x, state, t, s, tok_words, u_words)


@dataclasses.dataclass(frozen=True, kw_only=True)
class Ancestral(_ReMDMFamily):
    """MDLM / MD4 ancestral step: each masked position is revealed independently w.p.
    (alpha_s - alpha_t) / (1 - alpha_t) (`processes.masked.reveal_probability`) with a token drawn from the
    predictor's marginal; revealed tokens never change; s = 0 reveals all that is left.
    (Sahoo et al. 2024, MDLM eq. 7; Shi et al. 2024, MD4 eq. 5.) ReMDM with sigma = 0."""

    def _sigmas(self, alpha_t, alpha_s, mask_t, mask_s, t, s, x, state):
        return 0.0, 0.0


@dataclasses.dataclass(frozen=True, kw_only=True)
class ReMDMCap(_ReMDMFamily):
    """ReMDM-cap: sigma_t = min(eta, sigma_max), sigma_max = min(1, (1 - alpha_s)/alpha_t), for every
    position (Wang et al. 2025, Sec. 4.1; eta = 0.04 is their faster-sampling OWT setting)."""

    eta: float = 0.04

    def __post_init__(self):
        _check_real("eta", self.eta, 0.0, 1.0)

    def _sigmas(self, alpha_t, alpha_s, mask_t, mask_s, t, s, x, state):
        sigma = jnp.minimum(self.eta, sigma_max(alpha_t, mask_s))
        return sigma, sigma


@dataclasses.dataclass(frozen=True, kw_only=True)
class ReMDMRescale(_ReMDMFamily):
    """ReMDM-rescale: sigma_t = eta sigma_max (Wang et al. 2025, Sec. 4.1; eta = 0.9 as in their QM9 runs)."""

    eta: float = 0.9

    def __post_init__(self):
        _check_real("eta", self.eta, 0.0, 1.0)

    def _sigmas(self, alpha_t, alpha_s, mask_t, mask_s, t, s, x, state):
        sigma = self.eta * sigma_max(alpha_t, mask_s)
        return sigma, sigma


@dataclasses.dataclass(frozen=True, kw_only=True)
class ReMDMConf(_ReMDMFamily):
    """ReMDM-conf (Wang et al. 2025, Sec. 4.1 and Alg. 2, on top of the rescaled schedule):

        sigma^(l) = eta_conf^(l) eta sigma_max,   eta_conf^(l) = exp(-psi_l) / sum_{l'} exp(-psi_l'),

    psi_l = the predictor's probability of token l when it was (last) decoded, kept in the state; the sum
    runs over the unmasked, non-fixed positions (psi = +inf for masked ones, and prompt tokens are never
    remasked). Masked positions are decoded with the MDLM posterior (sigma = 0), as in the paper, so unlike
    the scalar schedules this rule does not preserve the forward marginals exactly. The paper's
    Alg. 2 stores psi when a token is decoded (followed here); the official code is reported to
    recompute it from the current prediction, which with carry-over predictors is always 1."""

    eta: float = 1.0

    def __post_init__(self):
        _check_real("eta", self.eta, 0.0, 1.0)

    def _sigmas(self, alpha_t, alpha_s, mask_t, mask_s, t, s, x, state):
        eligible = (x != self._mask()) & ~state.fixed
        w = jnp.where(eligible, jnp.exp(-state.psi), 0.0)
        total = jnp.sum(w)
        eta_conf = w / jnp.where(total > 0, total, 1.0)
        return eta_conf * (self.eta * sigma_max(alpha_t, mask_s)), 0.0


@dataclasses.dataclass(frozen=True, kw_only=True)
class ReMDMLoop(_ReMDMFamily):
    """ReMDM-loop (Wang et al. 2025, Sec. 4.2 and Alg. 3) with the max-capped sigma in the loop.

    The grid times ts decide the phases through an effective schedule alpha_eff(t) = alpha(u(t)),

        u(t) = t                  for t >= t_on       phase 1: MDLM (sigma = 0) from alpha(1) to alpha(t_on),
        u(t) = t_on               for t_off <= t <= t_on  phase 2: alpha held at alpha(t_on),
        u(t) = t t_on / t_off     for t < t_off       phase 3: MDLM on the schedule's [0, t_on], compressed,

    and a step t -> s is a loop step iff t <= t_on and s >= t_off (then alpha_s = alpha_t = a):
    unmasked tokens are remasked w.p. sigma = min(eta, min(1, (1-a)/a)) and masked ones revealed w.p.
    sigma a / (1 - a), which keeps the fraction of unmasked tokens at a. Steps straddling t_on or t_off
    are MDLM steps of the effective schedule. On the uniform grid about T (1 - t_on) steps fall in
    phase 1, T (t_on - t_off) in the loop and T t_off in phase 3 (Alg. 3 with n_phase1 = T (1 - t_on),
    n_phase2 = T (t_on - t_off)). Defaults: eta = 0.02, t_on = 0.55, t_off = 0.05 (the paper's OWT
    setting). Deviation: the paper's code takes alpha(t_on) as a free hyperparameter alpha_on (0.9);
    here it is the schedule's value at t_on.
    """

    eta: float = 0.02
    t_on: float = 0.55
    t_off: float = 0.05

    def __post_init__(self):
        _check_real("eta", self.eta, 0.0, 1.0)
        _check_real("t_off", self.t_off, 0.0, 1.0, low_open=True)
        _check_real("t_on", self.t_on, 0.0, 1.0, low_open=True)
        if not self.t_off < self.t_on:
            raise ValueError(f"need 0 < t_off < t_on <= 1; got t_off={self.t_off}, t_on={self.t_on}")

    def effective_time(self, t: Array) -> Array:
        """u(t): the schedule time whose alpha the loop uses at grid time t."""
        return jnp.where(t >= self.t_on, t, jnp.where(t >= self.t_off, self.t_on, t * (self.t_on / self.t_off)))

    def _alphas(self, schedule, t, s):
        u_t, u_s = self.effective_time(t), self.effective_time(s)
        return schedule.alpha(u_t), schedule.alpha(u_s), schedule.mask_prob(u_t), schedule.mask_prob(u_s)

    def _sigmas(self, alpha_t, alpha_s, mask_t, mask_s, t, s, x, state):
        loop = (t <= self.t_on) & (s >= self.t_off)
        sigma = jnp.where(loop, jnp.minimum(self.eta, sigma_max(alpha_t, mask_s)), 0.0)
        return sigma, sigma


def _corrector_sigma(weight, alpha_t, alpha_s, mask_s):
    """weight (alpha_s - alpha_t) / alpha_t clipped to [0, sigma_max] (sigma_max where alpha_t = 0)."""
    smax = sigma_max(alpha_t, mask_s)
    safe = jnp.where(alpha_t > 0, alpha_t, 1.0)
    raw = jnp.where(alpha_t > 0, weight * (alpha_s - alpha_t) / safe, smax)
    return jnp.clip(raw, 0.0, smax)


@dataclasses.dataclass(frozen=True, kw_only=True)
class FBCorrector(_ReMDMFamily):
    """MDLM predictor + forward-backward corrector (Campbell et al. 2022), implemented through its ReMDM
    characterisation (Wang et al. 2025, Prop. 4.2): sigma_t = (alpha_s - alpha_t) / alpha_t, clipped to
    [0, sigma_max] (where it exceeds sigma_max the posterior would not be a distribution). By their
    Thm 4.1 this equals an ancestral step to s followed by one corrector step that remasks each
    unmasked non-fixed token w.p. sigma and reveals each masked one w.p. sigma alpha_s / (1 - alpha_s)
    with the same prediction x_theta(z_t): one predictor evaluation per step."""

    def _sigmas(self, alpha_t, alpha_s, mask_t, mask_s, t, s, x, state):
        sigma = _corrector_sigma(1.0, alpha_t, alpha_s, mask_s)
        return sigma, sigma


@dataclasses.dataclass(frozen=True, kw_only=True)
class DFMCorrector(_ReMDMFamily):
    """MDLM predictor + discrete-flow-matching corrector (Gat et al. 2024), implemented through its
    ReMDM characterisation (Wang et al. 2025, Prop. 4.3): sigma_t = beta_t (alpha_s - alpha_t) / alpha_t,
    clipped to [0, sigma_max], with the corrector schedule beta_t = A t^a (1 - t)^b, A = 10, a = b = 1/4
    (Wang et al. App. D.1, following Gat et al.). One predictor evaluation per step (Thm 4.1)."""

    A: float = 10.0
    a: float = 0.25
    b: float = 0.25

    def __post_init__(self):
        _check_real("A", self.A, 0.0)
        _check_real("a", self.a, 0.0)
        _check_real("b", self.b, 0.0)

    def _sigmas(self, alpha_t, alpha_s, mask_t, mask_s, t, s, x, state):
        beta = self.A * t**self.a * (1.0 - t) ** self.b
        sigma = _corrector_sigma(beta, alpha_t, alpha_s, mask_s)
        return sigma, sigma


@dataclasses.dataclass(frozen=True, kw_only=True)
class Revision(Ancestral):
    """Ancestral step followed by predictor-driven revision of already revealed tokens (2 NFE per step).

    After the ancestral step t -> s (prediction at (x_t, t)), a set R of positions that were unmasked
    and not fixed at time t is chosen:
      * threshold None: each independently w.p. revise_prob (1 - alpha_t) (frequent early, none at t -> 0);
      * threshold set:  those whose stored probability psi (the predictor's probability of the token when
        it was drawn) is below threshold.
    R is hidden (set to MASK) in x_s, the predictor is evaluated once more at (x_s with R hidden, t) and
    every position of R is redrawn from its marginal; psi is updated. Hiding is needed because the
    predictors here carry unmasked tokens over (a point mass on the current token), so resampling
    from p(. | x_t) at a revealed position would never change it; likewise their "current-token
    probability" is always 1, hence the stored psi for the threshold mode. With an exact predictor and
    |R| = 1 the redraw is an exact Gibbs update; with |R| >= 2 it is a product of marginals."""

    revise_prob: float = 0.5
    threshold: float | None = None
    nfe_per_step: ClassVar[int] = 2

    def __post_init__(self):
        _check_real("revise_prob", self.revise_prob, 0.0, 1.0)
        if self.threshold is not None:
            _check_real("threshold", self.threshold, 0.0, 1.0, low_open=True)

    def step(self, schedule, predictor, x, state, t, s, key):
        mask_id = self._mask()
        n = x.shape[0]
        tok_words, u_words, sel_words, tok2_words = _words(key, (2, n, mask_id), (n,), (n,), (2, n, mask_id))
        x_s, new_state = self._remdm_step(schedule, predictor, x, state, t, s, tok_words, u_words)
        candidate = (x != mask_id) & ~state.fixed
        if self.threshold is None:
            chosen = candidate & (_uniform_from_words(sel_words) < self.revise_prob * schedule.mask_prob(t))
        else:
            chosen = candidate & (state.psi < self.threshold)
        hidden = jnp.where(chosen, jnp.int32(mask_id), x_s)
        tokens, p_tok = _draw(tok2_words, _predict(predictor, hidden, t, mask_id))
        return (jnp.where(chosen, tokens, x_s).astype(jnp.int32),
                new_state._replace(psi=jnp.where(chosen, p_tok, new_state.psi)))


# --------------------------------------------------------------------------------------------------
# Reveal-by-score family: exactly k_t positions per step
# --------------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, kw_only=True)
class _RevealByScore(MaskedRule):
    """One predictor call at (x_t, t); candidate tokens drawn from it; `_quota` masked positions per group
    with the highest `_score` are revealed with their candidate tokens; nothing else changes."""

    def _score(self, logp, tokens, p_tok, noise, t, s):
        """Higher = revealed first; noise: (2, L) random uint32 words for rules with random scores."""
        raise NotImplementedError

    def _count(self, schedule, t, s, n_gen, n_masked):
        """Number of positions to reveal (single group)."""
        raise NotImplementedError

    def _quota(self, schedule, x, state, t, s):
        masked = x == self._mask()
        n_masked = jnp.sum(masked, dtype=jnp.int32)
        n_gen = jnp.sum(~state.fixed, dtype=jnp.int32)
        k = jnp.clip(self._count(schedule, t, s, n_gen, n_masked), 0, n_masked).astype(jnp.int32)
        zeros = jnp.zeros(x.shape, jnp.int32)
        return zeros + k, zeros, zeros

    def step(self, schedule, predictor, x, state, t, s, key):
        mask_id = self._mask()
        n = x.shape[0]
        tok_words, noise, tie = _words(key, (2, n, mask_id), (2, n), (n,))
        logp = _predict(predictor, x, t, mask_id)
        tokens, p_tok = _draw(tok_words, logp)
        quota, group, start = self._quota(schedule, x, state, t, s)
        chosen = _select_top(self._score(logp, tokens, p_tok, noise, t, s), x == mask_id, quota, group,
                             start, tie)
        return (jnp.where(chosen, tokens, x).astype(jnp.int32),
                state._replace(psi=jnp.where(chosen, p_tok, state.psi)))


def _schedule_count(schedule, s, n_gen, n_masked, k):
    """k_t = #masked(t) - round(n_gen (1 - alpha_s)), or min(k, #masked) for a fixed k; all at s = 0."""
    if k is None:
        target = jnp.round(n_gen * schedule.mask_prob(s)).astype(jnp.int32)
        return jnp.where(s > 0, n_masked - target, n_masked)
    return jnp.where(s > 0, jnp.minimum(k, n_masked), n_masked)


@dataclasses.dataclass(frozen=True, kw_only=True)
class _TopK(_RevealByScore):
    """Count k_t = #masked(t) - round(n_gen (1 - alpha_s)) (n_gen = non-prompt positions), so the number
    of masked positions follows the schedule; with `k` set, exactly k per step instead. The last step
    (s = 0) reveals all remaining positions."""

    k: int | None = None

    def __post_init__(self):
        if self.k is not None:
            _check_positive_int("k (positions revealed per step)", self.k)

    def _count(self, schedule, t, s, n_gen, n_masked):
        return _schedule_count(schedule, s, n_gen, n_masked, self.k)


@dataclasses.dataclass(frozen=True, kw_only=True)
class TopKConfidence(_TopK):
    """Reveal the k_t masked positions whose sampled token has the highest probability (LLaDA,
    Nie et al. 2025, Alg. "low_confidence" remasking: sample x0 ~ p, rank by p(x0))."""

    def _score(self, logp, tokens, p_tok, noise, t, s):
        return p_tok


@dataclasses.dataclass(frozen=True, kw_only=True)
class TopKMargin(_TopK):
    """Reveal the k_t masked positions with the largest top1 - top2 probability margin (Kim et al. 2025,
    "Train for the worst, plan for the best", margin-based adaptive order); tokens sampled."""

    def _score(self, logp, tokens, p_tok, noise, t, s):
        p = jnp.exp(logp)
        if p.shape[-1] == 1:
            return p[:, 0]
        top2 = jax.lax.top_k(p, 2)[0]
        return top2[:, 0] - top2[:, 1]


@dataclasses.dataclass(frozen=True, kw_only=True)
class TopKEntropy(_TopK):
    """Reveal the k_t masked positions of lowest predictive entropy (Ben-Hamu et al. 2025; Dream's
    "entropy" order); tokens sampled."""

    def _score(self, logp, tokens, p_tok, noise, t, s):
        p = jnp.exp(logp)
        return jnp.sum(jnp.where(p > 0, p * logp, 0.0), axis=-1)  # -entropy


@dataclasses.dataclass(frozen=True, kw_only=True)
class TopKRandom(_TopK):
    """Reveal k_t uniformly random masked positions (LLaDA "random" remasking); tokens sampled."""

    def _score(self, logp, tokens, p_tok, noise, t, s):
        return _uniform_from_words(noise[0])


@dataclasses.dataclass(frozen=True, kw_only=True)
class FirstHitting(TopKRandom):
    """One reveal event per step at a uniformly random masked position, token from the predictor: the
    first-hitting sampler of Zheng et al. 2024 (arXiv 2409.02908, Alg. 1) with the event times replaced
    by the grid (the grid times only matter through s = 0). With fewer steps than masked positions, the
    last step (s = 0) reveals all remaining positions at once; with more, the extra steps do nothing."""

    def __post_init__(self):
        if self.k is not None:
            raise ValueError("first_hitting reveals exactly one position per step; use topk_random for k > 1")

    def _count(self, schedule, t, s, n_gen, n_masked):
        return _schedule_count(schedule, s, n_gen, n_masked, 1)


@dataclasses.dataclass(frozen=True, kw_only=True)
class MaskGIT(_RevealByScore):
    """MaskGIT iterative decoding (Chang et al. 2022, Sec. 3.2 and its reference code), with progress
    r = 1 - s (= (k + 1)/T on the uniform grid):

        #masked after the step  n = floor(n_gen cos(pi/2 r)), clipped to [1, #masked(t) - 1] (0 at s = 0),
        scores                  log p(sampled token) + temperature (1 - r) G,   G ~ Gumbel (gumbel46),

    revealing the #masked(t) - n best-scored masked positions (at least one per step). temperature = 4.5
    is MaskGIT's choice temperature."""

    temperature: float = 4.5

    def __post_init__(self):
        _check_real("temperature", self.temperature, 0.0)

    def _count(self, schedule, t, s, n_gen, n_masked):
        target = jnp.floor(n_gen * jnp.cos(0.5 * jnp.pi * (1.0 - s))).astype(jnp.int32)
        target = jnp.where(s > 0, jnp.clip(target, 1, n_masked - 1), 0)
        return n_masked - jnp.maximum(target, 0)

    def _score(self, logp, tokens, p_tok, noise, t, s):
        logp_tok = jnp.take_along_axis(logp, tokens[:, None], axis=-1)[:, 0]
        return logp_tok + self.temperature * s * _gumbel_from_words(noise)


@dataclasses.dataclass(frozen=True, kw_only=True)
class SemiAR(_RevealByScore):
    """LLaDA semi-autoregressive remasking (Nie et al. 2025, Sec. 2.4 / App. B): the generated (non-prompt)
    positions, in order, form B = ceil(n_gen / block_len) consecutive blocks; block b is decoded while the
    progress r = 1 - t runs through [b/B, (b+1)/B] (so on a uniform grid with T a multiple of B every
    block gets T/B steps), and within it the number of masked positions falls linearly:

        #masked in block b after the step = round(size_b (1 - clip(B (1 - s) - b, 0, 1))),

    the positions revealed being the block's highest-confidence ones (probability of the sampled token,
    as topk_confidence). Blocks not yet started are untouched, finished blocks are complete. Deviation:
    LLaDA spreads the remainder of size_b / steps over the first steps; here the count is rounded."""

    block_len: int = 32

    def __post_init__(self):
        _check_positive_int("block_len", self.block_len)

    def _score(self, logp, tokens, p_tok, noise, t, s):
        return p_tok

    def _quota(self, schedule, x, state, t, s):
        n = x.shape[0]
        gen = ~state.fixed
        n_gen = jnp.sum(gen, dtype=jnp.int32)
        block = jnp.where(gen, (jnp.cumsum(gen, dtype=jnp.int32) - 1) // self.block_len, n)
        n_blocks = jnp.maximum((n_gen + self.block_len - 1) // self.block_len, 1)
        size = jnp.clip(n_gen - block * self.block_len, 0, self.block_len)
        progress = jnp.clip(n_blocks * (1.0 - s) - block, 0.0, 1.0)
        target = jnp.where(s > 0, jnp.round(size * (1.0 - progress)).astype(jnp.int32), 0)
        masked_in = jax.ops.segment_sum((x == self._mask()).astype(jnp.int32), block, num_segments=n + 1)[block]
        quota = jnp.maximum(masked_in - target, 0)
        return quota, block, jnp.where(gen, block * self.block_len, 0)


# --------------------------------------------------------------------------------------------------
# Registry and sampling entry points
# --------------------------------------------------------------------------------------------------

MASKED_SAMPLERS: dict[str, type[MaskedRule]] = {
    "ancestral": Ancestral,
    "first_hitting": FirstHitting,
    "topk_confidence": TopKConfidence,
    "topk_margin": TopKMargin,
    "topk_entropy": TopKEntropy,
    "topk_random": TopKRandom,
    "maskgit": MaskGIT,
    "semi_ar": SemiAR,
    "remdm_cap": ReMDMCap,
    "remdm_rescale": ReMDMRescale,
    "remdm_conf": ReMDMConf,
    "remdm_loop": ReMDMLoop,
    "fb_corrector": FBCorrector,
    "dfm_corrector": DFMCorrector,
    "revision": Revision,
}


def make_masked_sampler(name: str, **kwargs) -> MaskedRule:
    """The masked update rule called `name` (see MASKED_SAMPLERS), built with `kwargs`."""
    return lookup(MASKED_SAMPLERS, "masked sampler", name)(**kwargs)


def _constant_init(template: Array, key: Array) -> Array:
    del key
    return template


def initial_tokens(length: int, vocab_size: int, prompt=None, prompt_mask=None) -> np.ndarray:
    """The starting sequence (length,) int32: MASK = vocab_size everywhere except the prompt.

    prompt: P <= length tokens in [0, vocab_size). prompt_mask: optional bool (length,) with exactly P
    True entries, the prompt's positions (in order); default: the first P positions.
    """
    _check_positive_int("length", length)
    _check_positive_int("vocab_size", vocab_size)
    x = np.full((length,), vocab_size, np.int32)
    if prompt is None:
        if prompt_mask is not None:
            raise ValueError("prompt_mask given without a prompt")
        return x
    p = np.asarray(prompt)
    if p.ndim != 1:
        raise ValueError(f"prompt must be a 1-D array of token ids; got shape {p.shape}")
    if p.size and not np.issubdtype(p.dtype, np.integer):
        raise ValueError(f"prompt must contain integer token ids; got dtype {p.dtype}")
    if p.shape[0] > length:
        raise ValueError(f"prompt of length {p.shape[0]} is longer than the sequence length {length}")
    if p.size and (p.min() < 0 or p.max() >= vocab_size):
        raise ValueError(f"prompt tokens must lie in [0, vocab_size) = [0, {vocab_size}); got {p.tolist()}")
    if prompt_mask is None:
        where = np.arange(p.shape[0])
    else:
        pm = np.asarray(prompt_mask)
        if pm.shape != (length,) or pm.dtype != np.bool_:
            raise ValueError(f"prompt_mask must be a bool array of shape ({length},); got {pm.dtype} {pm.shape}")
        if int(pm.sum()) != p.shape[0]:
            raise ValueError(f"prompt_mask has {int(pm.sum())} True entries but the prompt has {p.shape[0]} tokens")
        where = np.flatnonzero(pm)
    x[where] = p.astype(np.int32)
    return x


def _check_inputs(predictor, schedule, rule, ts, length, vocab_size) -> None:
    if not isinstance(schedule, MaskingSchedule):
        raise ValueError(f"schedule must be a MaskingSchedule (one of {sorted(SCHEDULES)}); got {schedule!r}")
    if not isinstance(rule, MaskedRule):
        raise ValueError(f"rule must be a masked sampler rule (one of {sorted(MASKED_SAMPLERS)}); got {rule!r}")
    ts = np.asarray(ts)
    if ts.ndim != 1 or ts.shape[0] < 2:
        raise ValueError(f"ts must be a 1-D time grid with at least 2 points (steps >= 1); got shape {ts.shape}")
    if ts[-1] != 0:
        raise ValueError(f"masked samplers end at t = 0 (every position revealed): ts[-1] must be 0, got {ts[-1]}")
    if not callable(predictor):
        raise ValueError(f"predictor must be callable (x, t) -> (L, V) logits; got {predictor!r}")
    out = jax.eval_shape(predictor, jax.ShapeDtypeStruct((length,), jnp.int32),
                         jax.ShapeDtypeStruct((), jnp.float32))
    if getattr(out, "shape", None) != (length, vocab_size):
        raise ValueError(f"predictor returns shape {getattr(out, 'shape', out)} for a sequence of length {length}; "
                         f"expected (length, vocab_size) = ({length}, {vocab_size}): vocabulary or length mismatch")


def sample_tokens_with_snapshots(
    predictor: Predictor,
    schedule: MaskingSchedule,
    rule: MaskedRule,
    ts: Array,
    *,
    key: Array,
    n_seeds: int,
    length: int,
    vocab_size: int,
    prompt=None,
    prompt_mask=None,
    snapshot_steps: Sequence[int] = (),
    mesh: Mesh | None = None,
    block_size: int = driver.DEFAULT_BLOCK_SIZE,
    pad_to: int | None = None,
) -> tuple[Array, Array]:
    """Tokens (n_seeds, length) int32 and snapshots (n_seeds, len(snapshot_steps), length) int32.

    Args:
      predictor: (x (L,) int32, t) -> logits or log-probabilities (L, vocab_size) for one sequence; a
        `jax.tree_util.Partial` keeps its arrays traced (new values reuse the compiled program).
      schedule: masking schedule (`diffserial.processes.masked`).
      rule: a rule from MASKED_SAMPLERS (`make_masked_sampler`); its mask_id is bound to vocab_size.
      ts: decreasing grid from <= 1 to exactly 0 (`masked_grid`); steps = len(ts) - 1 >= 1.
      key: PRNG key; seed i uses fold_in(key, i) (the driver's seed contract: results do not depend on
        n_seeds, the mesh or padding, for a fixed block_size).
      length, vocab_size: L and V (MASK = V).
      prompt, prompt_mask: see `initial_tokens`; prompt positions are fixed for every rule.
      snapshot_steps, mesh, block_size, pad_to: as in `driver.run_chain`.
    Raises ValueError before compiling on bad inputs (prompt longer than the sequence or outside the
    vocabulary, predictor output not (length, vocab_size), steps < 1, ts not ending at 0, ...).
    """
    _check_positive_int("length", length)
    _check_positive_int("vocab_size", vocab_size)
    _check_inputs(predictor, schedule, rule, ts, length, vocab_size)
    template = jnp.asarray(initial_tokens(length, vocab_size, prompt, prompt_mask))
    return driver.run_chain(
        predictor, schedule, rule.bind(vocab_size), ts, key=key, n_seeds=n_seeds,
        init_fn=Partial(_constant_init, template), shape=(length,), fn_out_shape=(length, vocab_size),
        t_end_min=0.0, snapshot_steps=snapshot_steps, mesh=mesh, block_size=block_size, pad_to=pad_to)


def sample_tokens(
    predictor: Predictor,
    schedule: MaskingSchedule,
    rule: MaskedRule,
    ts: Array,
    *,
    key: Array,
    n_seeds: int,
    length: int,
    vocab_size: int,
    prompt=None,
    prompt_mask=None,
    mesh: Mesh | None = None,
    block_size: int = driver.DEFAULT_BLOCK_SIZE,
    pad_to: int | None = None,
) -> Array:
    """Final tokens (n_seeds, length) int32; see `sample_tokens_with_snapshots` for the arguments."""
    tokens, _ = sample_tokens_with_snapshots(
        predictor, schedule, rule, ts, key=key, n_seeds=n_seeds, length=length, vocab_size=vocab_size,
        prompt=prompt, prompt_mask=prompt_mask, mesh=mesh, block_size=block_size, pad_to=pad_to)
    return tokens


__all__ = [
    "GRID_SPACINGS", "MASKED_SAMPLERS", "Ancestral", "DFMCorrector", "FBCorrector", "FirstHitting",
    "MaskGIT", "MaskedRule", "MaskedRuleState", "ReMDMCap", "ReMDMConf", "ReMDMLoop", "ReMDMRescale",
    "Revision", "SemiAR", "TopKConfidence", "TopKEntropy", "TopKMargin", "TopKRandom", "gumbel46",
    "initial_tokens", "make_masked_sampler", "masked_grid", "remdm_transition", "sample_categorical",
    "sample_tokens", "sample_tokens_with_snapshots", "sigma_max",
]
