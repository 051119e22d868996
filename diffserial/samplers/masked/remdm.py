"""The ReMDM family of masked rules: one posterior, a remasking probability sigma per rule.

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

Against the reference code (kuleshov-group/remdm, diffusion.py at f830d65: `_ddpm_caching_update`
l. 658-788, `_dfm_caching_update` l. 595-656). It fixes alpha_t = 1 - t (loglinear noise, l. 659, 664),
draws every categorical by Gumbel-max over unnormalised weights, so that a negative weight is never drawn
(l. 26-31; `remdm_transition`'s clip does the same), redraws a kept unmasked token from x_theta (the same as
keeping it, for the carry-over predictors of MDLM and of this library), and ends its grid at t = 1e-5
followed by an argmax "noise removal" step (l. 858-860, 885-892):

    remdm_cap       l. 700-713   sigma = min(eta, (1 - a_s)/a_t) (eta at a_t = 0): the same
    remdm_rescale   l. 714-728   sigma = eta min(1, (1 - a_s)/a_t) (eta at a_t = 0): the same
    remdm_conf      l. 729-754   sigma^(l) = softmax_l(conf) sigma_max, conf_l = -(x_theta's probability of
                                 the token when it was decoded, l. 748-752), -inf while masked (l. 753-754,
                                 864): no eta, so the same at eta = 1 (the default); eta < 1 is this library's
    remdm_loop      l. 755-781   ReMDMLoop(convention="reference"); the default convention differs at the
                                 phase boundaries, in the loop's cap and in alpha(t_on) (see `ReMDMLoop`)
    fb_corrector    l. 686-699   sigma = (a_s - a_t)/a_t (1 at a_t = 0), not clipped: the same wherever
                                 sigma <= sigma_max, i.e. 2 a_s <= 1 + a_t
    dfm_corrector   l. 595-656   sigma = beta_t (a_s/a_t - 1) (l. 603-604, 644) on its own adaptive grid
                                 (l. 605-608), which keeps sigma admissible; here any grid, sigma clipped
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import jax
import jax.numpy as jnp

from diffserial.samplers.masked.gumbel import random_words, uniform_from_words
from diffserial.samplers.masked.state import MaskedRule, draw_tokens, predict_logp
from diffserial.validation import check_choice, check_real

Array = jax.Array


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


@dataclasses.dataclass(frozen=True, kw_only=True)
class _ReMDMFamily(MaskedRule):
    """One predictor call at (x_t, t), candidate tokens drawn from it, then `remdm_transition` with the
    subclass's (alpha_t, alpha_s, m_t, m_s) and sigma (for unmasked, for masked positions)."""

    def alphas(self, schedule, t, s):
        """(alpha_t, alpha_s, m_t, m_s) of the step t -> s: the schedule's."""
        return schedule.alpha(t), schedule.alpha(s), schedule.mask_prob(t), schedule.mask_prob(s)

    def sigmas(self, alpha_t, alpha_s, mask_t, mask_s, t, s, x, state):
        """(sigma on unmasked positions, sigma on masked positions) of the step t -> s, each a scalar or (L,)."""
        raise NotImplementedError

    def _remdm_step(self, schedule, predictor, x, state, t, s, tok_words, u_words):
        mask_id = self.bound_mask_id()
        tokens, p_tok = draw_tokens(tok_words, predict_logp(predictor, x, t, mask_id))
        a_t, a_s, m_t, m_s = self.alphas(schedule, t, s)
        sig_u, sig_m = self.sigmas(a_t, a_s, m_t, m_s, t, s, x, state)
        u = uniform_from_words(u_words)
        x_s, revealed = remdm_transition(x, state.fixed, tokens, a_t, m_t, m_s, sig_u, sig_m, u, mask_id)
        return x_s, state._replace(psi=jnp.where(revealed, p_tok, state.psi))

    def step(self, schedule, predictor, x, state, t, s, key):
        n = x.shape[0]
        tok_words, u_words = random_words(key, (2, n, self.bound_mask_id()), (n,))
        return self._remdm_step(schedule, predictor, x, state, t, s, tok_words, u_words)


@dataclasses.dataclass(frozen=True, kw_only=True)
class Ancestral(_ReMDMFamily):
    """MDLM / MD4 ancestral step: each masked position is revealed independently w.p.
    (alpha_s - alpha_t) / (1 - alpha_t) (`processes.masked.reveal_probability`) with a token drawn from the
    predictor's marginal; revealed tokens never change; s = 0 reveals all that is left.
    (Sahoo et al. 2024, MDLM eq. 7; Shi et al. 2024, MD4 eq. 5.) ReMDM with sigma = 0."""

    def sigmas(self, alpha_t, alpha_s, mask_t, mask_s, t, s, x, state):
        return 0.0, 0.0


@dataclasses.dataclass(frozen=True, kw_only=True)
class ReMDMCap(_ReMDMFamily):
    """ReMDM-cap: sigma_t = min(eta, sigma_max), sigma_max = min(1, (1 - alpha_s)/alpha_t), for every
    position (Wang et al. 2025, Sec. 4.1; eta = 0.04 is their faster-sampling OWT setting)."""

    eta: float = 0.04

    def __post_init__(self):
        check_real("eta", self.eta, 0.0, 1.0)

    def sigmas(self, alpha_t, alpha_s, mask_t, mask_s, t, s, x, state):
        sigma = jnp.minimum(self.eta, sigma_max(alpha_t, mask_s))
        return sigma, sigma


@dataclasses.dataclass(frozen=True, kw_only=True)
class ReMDMRescale(_ReMDMFamily):
    """ReMDM-rescale: sigma_t = eta sigma_max (Wang et al. 2025, Sec. 4.1; eta = 0.9 as in their QM9 runs)."""

    eta: float = 0.9

    def __post_init__(self):
        check_real("eta", self.eta, 0.0, 1.0)

    def sigmas(self, alpha_t, alpha_s, mask_t, mask_s, t, s, x, state):
        sigma = self.eta * sigma_max(alpha_t, mask_s)
        return sigma, sigma


@dataclasses.dataclass(frozen=True, kw_only=True)
class ReMDMConf(_ReMDMFamily):
    """ReMDM-conf (Wang et al. 2025, Sec. 4.1 and Alg. 2, on top of the rescaled schedule):

        sigma^(l) = eta_conf^(l) eta sigma_max,   eta_conf^(l) = exp(-psi_l) / sum_{l'} exp(-psi_l'),

    psi_l = the predictor's probability of token l when it was (last) decoded, kept in the state; the sum
    runs over the unmasked, non-fixed positions (masked ones weigh 0, as if psi = +inf, and prompt tokens
    are never remasked). Masked positions are decoded with the MDLM posterior (sigma = 0), as in the paper, so unlike
    the scalar schedules this rule does not preserve the forward marginals exactly. psi is stored when a
    token is decoded, as in the paper's Alg. 2 and in the reference code (kuleshov-group/remdm
    diffusion.py l. 748-752: conf = -x_theta(decoded token) at the step that reveals it, -inf once
    remasked, l. 753-754). The reference code has no eta (l. 736-739: sigma^(l) = softmax_l(-psi)
    sigma_max): eta = 1, the default, is that rule; eta < 1 scales it as remdm_rescale scales sigma_max."""

    eta: float = 1.0

    def __post_init__(self):
        check_real("eta", self.eta, 0.0, 1.0)

    def sigmas(self, alpha_t, alpha_s, mask_t, mask_s, t, s, x, state):
        eligible = (x != self.bound_mask_id()) & ~state.fixed
        w = jnp.where(eligible, jnp.exp(-state.psi), 0.0)
        total = jnp.sum(w)
        eta_conf = w / jnp.where(total > 0, total, 1.0)
        return eta_conf * (self.eta * sigma_max(alpha_t, mask_s)), 0.0


LOOP_CONVENTIONS = ("schedule", "reference")


@dataclasses.dataclass(frozen=True, kw_only=True)
class ReMDMLoop(_ReMDMFamily):
    """ReMDM-loop (Wang et al. 2025, Sec. 4.2 and Alg. 3), in one of two conventions.

    convention = "schedule" (the default): the max-capped sigma in the loop, phases through the schedule.
    The grid times ts decide the phases through an effective schedule alpha_eff(t) = alpha(u(t)),

        u(t) = t                  for t >= t_on       phase 1: MDLM (sigma = 0) from alpha(1) to alpha(t_on),
        u(t) = t_on               for t_off <= t <= t_on  phase 2: alpha held at alpha(t_on),
        u(t) = t t_on / t_off     for t < t_off       phase 3: MDLM on the schedule's [0, t_on], compressed,

    and a step t -> s is a loop step iff t <= t_on and s >= t_off (then alpha_s = alpha_t = a):
    unmasked tokens are remasked w.p. sigma = min(eta, min(1, (1-a)/a)) and masked ones revealed w.p.
    sigma a / (1 - a), which keeps the fraction of unmasked tokens at a. Steps straddling t_on or t_off
    are MDLM steps of the effective schedule. On the uniform grid about T (1 - t_on) steps fall in
    phase 1, T (t_on - t_off) in the loop and T t_off in phase 3 (Alg. 3 with n_phase1 = T (1 - t_on),
    n_phase2 = T (t_on - t_off)). Every step is then an exact ReMDM step of alpha_eff with an admissible
    sigma, and the last step (s = 0) reveals every position on any grid. alpha(t_on) is the schedule's;
    alpha_on must be None.

    convention = "reference": the reference code (kuleshov-group/remdm diffusion.py l. 755-781), which
    ignores the schedule and takes alpha_on, alpha(t_on), as a free hyperparameter (0.9 in its OWT script
    with eta = 0.02, t_on = 0.55, t_off = 0.05). The phase of a step t -> s is decided by t alone:

        t > t_on           MDLM on m(u) = 1 - alpha_on (1 - u) / (1 - t_on), u = t, s   (l. 758-760, 767-772)
        t <= t_off         MDLM on m(u) = (1 - alpha_on) u / t_off, u = t, s            (l. 761-763, 767-772)
        t_off < t <= t_on  loop at alpha_s = alpha_t = alpha_on with sigma = eta, not capped (l. 773-781),

    so a step straddling t_on or t_off extrapolates its phase's line, or stays in the loop, past the
    boundary. On a grid whose last step starts in (t_off, t_on] (2 <= T < 1 / t_off on the uniform grid)
    positions may still be masked after s = 0: the reference follows its grid with an argmax step
    (l. 885-892), not done here. With the linear schedule, alpha_on = 1 - t_on and a grid with t_on and
    t_off on it, the two conventions give the same alphas and, wherever eta <= min(1, (1 - alpha_on) /
    alpha_on), the same sigma (up to rounding).

    Defaults: eta = 0.02, t_on = 0.55, t_off = 0.05 (the paper's OWT setting), convention "schedule".
    """

    eta: float = 0.02
    t_on: float = 0.55
    t_off: float = 0.05
    convention: str = "schedule"
    alpha_on: float | None = None

    def __post_init__(self):
        check_real("eta", self.eta, 0.0, 1.0)
        check_real("t_off", self.t_off, 0.0, 1.0, low_open=True)
        check_real("t_on", self.t_on, 0.0, 1.0, low_open=True)
        if not self.t_off < self.t_on:
            raise ValueError(f"need 0 < t_off < t_on <= 1; got t_off={self.t_off}, t_on={self.t_on}")
        check_choice("convention", self.convention, LOOP_CONVENTIONS)
        if self.convention == "reference":
            if self.alpha_on is None:
                raise ValueError("convention 'reference' needs alpha_on, the reference code's alpha at t_on "
                                 "(0.9 in its OWT script)")
            check_real("alpha_on", self.alpha_on, 0.0, 1.0, low_open=True, high_open=True)
        elif self.alpha_on is not None:
            raise ValueError(f"alpha_on is a field of convention 'reference'; convention 'schedule' takes "
                             f"alpha(t_on) from the schedule; got alpha_on={self.alpha_on!r}")

    def effective_time(self, t: Array) -> Array:
        """u(t): the schedule time whose alpha the loop uses at grid time t (convention "schedule")."""
        return jnp.where(t >= self.t_on, t, jnp.where(t >= self.t_off, self.t_on, t * (self.t_on / self.t_off)))

    def alphas(self, schedule, t, s):
        """(alpha_t, alpha_s, m_t, m_s): alpha(u(t)), alpha(u(s)) of the schedule, or with convention
        "reference" m = 1 - alpha from the line of t's phase (see the class docstring)."""
        if self.convention == "reference":
            return self._reference_alphas(t, s)
        u_t, u_s = self.effective_time(t), self.effective_time(s)
        return schedule.alpha(u_t), schedule.alpha(u_s), schedule.mask_prob(u_t), schedule.mask_prob(u_s)

    def _reference_alphas(self, t, s):
        a_on = self.alpha_on
        phase1, phase3 = t > self.t_on, t <= self.t_off

        def mask(u):
            return jnp.where(phase1, 1.0 - (1.0 - u) * (a_on / (1.0 - self.t_on)),
                             jnp.where(phase3, u * ((1.0 - a_on) / self.t_off), 1.0 - a_on))

        m_t, m_s = mask(t), mask(s)
        return 1.0 - m_t, 1.0 - m_s, m_t, m_s

    def sigmas(self, alpha_t, alpha_s, mask_t, mask_s, t, s, x, state):
        """sigma = min(eta, sigma_max) on loop steps (t <= t_on and s >= t_off), else 0; with convention
        "reference" sigma = eta where t_off < t <= t_on, else 0."""
        if self.convention == "reference":
            sigma = jnp.where((t > self.t_off) & (t <= self.t_on), self.eta, 0.0)
            return sigma, sigma
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
    with the same prediction x_theta(z_t): one predictor evaluation per step. The reference code does not
    clip (kuleshov-group/remdm diffusion.py l. 689-692); it is the same wherever sigma <= sigma_max, and
    unclipped, the last step to s = 0 here would remask w.p. min(1, (1 - alpha_t)/alpha_t)."""

    def sigmas(self, alpha_t, alpha_s, mask_t, mask_s, t, s, x, state):
        sigma = _corrector_sigma(1.0, alpha_t, alpha_s, mask_s)
        return sigma, sigma


@dataclasses.dataclass(frozen=True, kw_only=True)
class DFMCorrector(_ReMDMFamily):
    """MDLM predictor + discrete-flow-matching corrector (Gat et al. 2024), implemented through its
    ReMDM characterisation (Wang et al. 2025, Prop. 4.3): sigma_t = beta_t (alpha_s - alpha_t) / alpha_t,
    clipped to [0, sigma_max], with the corrector schedule beta_t = A t^a (1 - t)^b, A = 10, a = b = 1/4
    (Wang et al. App. D.1, following Gat et al.). One predictor evaluation per step (Thm 4.1). The
    reference code (kuleshov-group/remdm diffusion.py l. 595-656) has the same beta_t and sigma but
    chooses its own step, dt = min(1/T, 1 / ((1 + beta_t)/t + beta_t/(1 - t))) (l. 605-608), for which
    sigma never exceeds sigma_max; on a given grid sigma is clipped instead."""

    A: float = 10.0
    a: float = 0.25
    b: float = 0.25

    def __post_init__(self):
        check_real("A", self.A, 0.0)
        check_real("a", self.a, 0.0)
        check_real("b", self.b, 0.0)

    def sigmas(self, alpha_t, alpha_s, mask_t, mask_s, t, s, x, state):
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
        check_real("revise_prob", self.revise_prob, 0.0, 1.0)
        if self.threshold is not None:
            check_real("threshold", self.threshold, 0.0, 1.0, low_open=True)

    def step(self, schedule, predictor, x, state, t, s, key):
        mask_id = self.bound_mask_id()
        n = x.shape[0]
        tok_words, u_words, sel_words, tok2_words = random_words(key, (2, n, mask_id), (n,), (n,), (2, n, mask_id))
        x_s, new_state = self._remdm_step(schedule, predictor, x, state, t, s, tok_words, u_words)
        candidate = (x != mask_id) & ~state.fixed
        if self.threshold is None:
            chosen = candidate & (uniform_from_words(sel_words) < self.revise_prob * schedule.mask_prob(t))
        else:
            chosen = candidate & (state.psi < self.threshold)
        hidden = jnp.where(chosen, jnp.int32(mask_id), x_s)
        tokens, p_tok = draw_tokens(tok2_words, predict_logp(predictor, hidden, t, mask_id))
        return (jnp.where(chosen, tokens, x_s).astype(jnp.int32),
                new_state._replace(psi=jnp.where(chosen, p_tok, new_state.psi)))


__all__ = ["Ancestral", "DFMCorrector", "FBCorrector", "ReMDMCap", "ReMDMConf", "ReMDMLoop", "ReMDMRescale",
           "Revision", "remdm_transition", "sigma_max"]
