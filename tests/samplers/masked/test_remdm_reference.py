"""The ReMDM rules against their reference code: kuleshov-group/remdm, diffusion.py at f830d65
(`_ddpm_caching_update` l. 658-788, `_dfm_caching_update` l. 595-656).

The reference formulas are re-derived here in numpy, line by line, from that code (alpha_t = 1 - t: its
move chance is t, l. 664); the library's rules are asked only for their own alphas and sigmas of a step
t -> s, on the linear schedule, and compared with them.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from diffserial.processes.masked import Linear
from diffserial.samplers import masked as M

LINEAR = Linear()
V = 3  # vocabulary {0, 1, 2}, MASK = 3
L = 5

# steps t -> s of uniform grids whose points miss t_on = 0.55 and t_off = 0.05 (so no float ties decide a
# phase), plus the two steps that straddle them on the 7-step grid's scale
_GRIDS = [np.linspace(1.0, 0.0, T + 1) for T in (3, 7, 64)]
T_PAIRS = np.concatenate([g[:-1] for g in _GRIDS] + [np.array([0.6, 0.1])])
S_PAIRS = np.concatenate([g[1:] for g in _GRIDS] + [np.array([0.5, 0.02])])


def _library(rule, t, s, x=None, state=None):
    """(m_t, m_s, sigma on unmasked, sigma on masked) of the bound rule, as float64 numpy."""
    rule = rule.bind(V)
    if x is None:
        x = jnp.full((L,), V, jnp.int32)
        state = rule.init_state(x)
    t, s = jnp.asarray(t, jnp.float32), jnp.asarray(s, jnp.float32)
    a_t, a_s, m_t, m_s = rule.alphas(LINEAR, t, s)
    sig_u, sig_m = rule.sigmas(a_t, a_s, m_t, m_s, t, s, x, state)
    shape = jnp.broadcast_shapes(jnp.shape(sig_u), t.shape)
    return tuple(np.broadcast_to(np.asarray(v, np.float64), shape) for v in (m_t, m_s, sig_u, sig_m))


# ---------------------------------------------------------------- the reference, transcribed in numpy


def ref_sigma_max(t, s):
    """l. 717-720 / 732-735: min(1, (1 - alpha_s) / alpha_t), 1 when alpha_t = 0."""
    a_t, a_s = 1.0 - t, 1.0 - s
    return np.where(a_t > 0, np.minimum(1.0, (1.0 - a_s) / np.where(a_t > 0, a_t, 1.0)), 1.0)


def ref_cap(t, s, eta):
    """l. 701-706: min(eta, (1 - alpha_s) / alpha_t), eta when alpha_t = 0."""
    a_t, a_s = 1.0 - t, 1.0 - s
    return np.where(a_t > 0, np.minimum(eta, (1.0 - a_s) / np.where(a_t > 0, a_t, 1.0)), eta)


def ref_rescale(t, s, eta):
    """l. 721: eta sigma_max."""
    return eta * ref_sigma_max(t, s)


def ref_forward_backward(t, s):
    """l. 687-692: (alpha_s - alpha_t) / alpha_t, 1 when alpha_t = 0 (not clipped)."""
    a_t, a_s = 1.0 - t, 1.0 - s
    return np.where(a_t > 0, (a_s - a_t) / np.where(a_t > 0, a_t, 1.0), 1.0)


def ref_dfm(t, s):
    """l. 603-604, 644: the unmasked row keeps w.p. coef2 = 1 - b_t (alpha_s / alpha_t - 1), b_t =
    10 t^(1/4) (1 - t)^(1/4): sigma = b_t (alpha_s / alpha_t - 1) (not clipped; l. 605-608 choose dt)."""
    b = 10.0 * t**0.25 * (1.0 - t) ** 0.25
    return b * ((1.0 - s) / (1.0 - t) - 1.0)


def ref_conf(t, s, conf, masked):
    """l. 736-739: softmax over positions of conf (-inf on masked ones; all -inf gives NaN, then zeroed),
    zero on masked positions, times sigma_max."""
    e = np.exp(conf)
    eta = e / e.sum() if e.sum() > 0 else np.full_like(e, np.nan)
    eta[masked] = 0.0
    return eta * ref_sigma_max(t, s)


def ref_loop(t, s, eta, t_on, t_off, alpha_on):
    """l. 756-781 for one step, dt = t - s: (move chance at t, at s, sigma)."""
    dt = t - s
    if t > t_on:  # l. 758-760, MDLM (l. 767-772): sigma = 0
        return 1 - (1 - t) * alpha_on / (1 - t_on), 1 - (1 - t + dt) * alpha_on / (1 - t_on), 0.0
    if t <= t_off:  # l. 761-763, MDLM
        return t * (1 - alpha_on) / t_off, (t - dt) * (1 - alpha_on) / t_off, 0.0
    # l. 773-781: ReMDM at alpha_s = alpha_t = alpha_on, sigma = eta
    return 1 - alpha_on, 1 - alpha_on, eta


# ---------------------------------------------------------------- scalar rules


@pytest.mark.parametrize("eta", [0.008, 0.04, 0.5, 1.0])
def test_cap_and_rescale_match_the_reference(eta):
    m_t, m_s, sig_u, sig_m = _library(M.masked_sampler("remdm_cap", eta=eta), T_PAIRS, S_PAIRS)
    np.testing.assert_allclose(m_t, T_PAIRS, atol=1e-7)
    np.testing.assert_allclose(m_s, S_PAIRS, atol=1e-7)
    np.testing.assert_allclose(sig_u, ref_cap(T_PAIRS, S_PAIRS, eta), rtol=2e-6, atol=1e-7)
    np.testing.assert_array_equal(sig_m, sig_u)
    _, _, sig_u, sig_m = _library(M.masked_sampler("remdm_rescale", eta=eta), T_PAIRS, S_PAIRS)
    np.testing.assert_allclose(sig_u, ref_rescale(T_PAIRS, S_PAIRS, eta), rtol=2e-6, atol=1e-7)
    np.testing.assert_array_equal(sig_m, sig_u)


@pytest.mark.parametrize("name,reference", [("fb_corrector", ref_forward_backward), ("dfm_corrector", ref_dfm)])
def test_correctors_match_the_reference_up_to_the_documented_clip(name, reference):
    # at t = 1 (alpha_t = 0) every non-fixed position is masked and sigma enters the masked row only as
    # sigma alpha_t = 0: any sigma gives that step (the reference's DFM makes it plain MDLM, l. 605-606)
    keep = T_PAIRS < 1.0
    t, s = T_PAIRS[keep], S_PAIRS[keep]
    _, _, sig_u, sig_m = _library(M.masked_sampler(name), t, s)
    ref, smax = reference(t, s), ref_sigma_max(t, s)
    inside = ref <= smax
    assert inside.sum() >= 40 and (~inside).sum() >= 3  # both sides of the clip are exercised
    np.testing.assert_allclose(sig_u[inside], ref[inside], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(sig_u[~inside], smax[~inside], rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(sig_m, sig_u)


# ---------------------------------------------------------------- confidence


def test_conf_matches_the_reference_at_eta_one_and_scales_with_eta():
    rng = np.random.default_rng(0)
    psi = rng.uniform(0.05, 1.0, L).astype(np.float32)
    masked = np.array([True, False, False, True, False])
    x = jnp.asarray(np.where(masked, V, rng.integers(0, V, L)), jnp.int32)
    state = M.MaskedRuleState(fixed=jnp.zeros(L, bool), psi=jnp.asarray(psi))
    conf = np.where(masked, -np.inf, -psi.astype(np.float64))  # l. 751-754, 864
    for t, s in [(0.9, 0.6), (0.5, 0.3), (0.2, 0.0)]:
        ref = ref_conf(t, s, conf, masked)
        _, _, sig_u, sig_m = _library(M.masked_sampler("remdm_conf"), t, s, x, state)
        np.testing.assert_allclose(sig_u, ref, rtol=1e-6, atol=1e-7)
        assert np.all(sig_m == 0.0)  # masked positions: the MDLM posterior (sigma[masked] = 0, l. 738)
        _, _, half, _ = _library(M.masked_sampler("remdm_conf", eta=0.5), t, s, x, state)
        np.testing.assert_allclose(half, 0.5 * ref, rtol=1e-6, atol=1e-7)
    # all masked (the first step): the reference's softmax is NaN there and zeroed; no remasking
    x = jnp.full((L,), V, jnp.int32)
    ref = ref_conf(1.0, 0.9, np.full(L, -np.inf), np.ones(L, bool))
    _, _, sig_u, _ = _library(M.masked_sampler("remdm_conf"), 1.0, 0.9, x, state)
    np.testing.assert_array_equal(sig_u, ref)


def test_conf_stores_the_decoded_tokens_probability():
    """l. 748-752: the probability kept for a position is x_theta(token) at the step that reveals it."""
    rule = M.masked_sampler("remdm_conf").bind(V)
    logits = jnp.asarray(np.random.default_rng(1).normal(size=(L, V)), jnp.float32)
    x = jnp.asarray([V, 0, V, V, 2], jnp.int32)
    state = M.MaskedRuleState(fixed=jnp.asarray([False, True, False, False, False]),
                              psi=jnp.full((L,), 0.25, jnp.float32))
    x_s, new = rule.step(LINEAR, lambda x, t: logits, x, state, jnp.float32(0.5), jnp.float32(0.0),
                         jax.random.key(3))
    revealed = np.asarray((x == V) & (x_s != V))
    np.testing.assert_array_equal(revealed, np.asarray(x == V))  # s = 0 reveals every masked position
    p = np.asarray(jax.nn.softmax(logits, axis=-1))[np.arange(L), np.asarray(x_s)]
    np.testing.assert_allclose(np.asarray(new.psi)[revealed], p[revealed], rtol=1e-6)
    np.testing.assert_array_equal(np.asarray(new.psi)[~revealed], 0.25)


# ---------------------------------------------------------------- loop


@pytest.mark.parametrize("eta,t_on,t_off,alpha_on", [(0.02, 0.55, 0.05, 0.9), (0.5, 0.55, 0.05, 0.9),
                                                     (0.3, 0.7, 0.2, 0.45)])
def test_loop_reference_convention_is_the_reference(eta, t_on, t_off, alpha_on):
    rule = M.masked_sampler("remdm_loop", eta=eta, t_on=t_on, t_off=t_off, convention="reference",
                            alpha_on=alpha_on)
    m_t, m_s, sig_u, sig_m = _library(rule, T_PAIRS, S_PAIRS)
    ref = np.array([ref_loop(t, s, eta, t_on, t_off, alpha_on) for t, s in zip(T_PAIRS, S_PAIRS)])
    np.testing.assert_allclose(m_t, ref[:, 0], rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(m_s, ref[:, 1], rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(sig_u, ref[:, 2], rtol=1e-6)
    np.testing.assert_array_equal(sig_m, sig_u)


def _straddles(t, s, t_on, t_off):
    return ((t > t_on) & (s < t_on)) | ((t > t_off) & (s < t_off))


@pytest.mark.parametrize("eta,t_on,t_off", [(0.02, 0.55, 0.05), (0.5, 0.2, 0.05)])
def test_loop_schedule_convention_against_the_reference(eta, t_on, t_off):
    """The default convention with alpha_on = alpha(t_on) = 1 - t_on: the reference's alphas and sigma on
    every step inside a phase, sigma capped at sigma_max in the loop, and the documented differences on
    the steps that straddle t_on or t_off."""
    a_on = 1.0 - t_on
    m_t, m_s, sig_u, sig_m = _library(M.masked_sampler("remdm_loop", eta=eta, t_on=t_on, t_off=t_off),
                                      T_PAIRS, S_PAIRS)
    ref = np.array([ref_loop(t, s, eta, t_on, t_off, a_on) for t, s in zip(T_PAIRS, S_PAIRS)])
    inside = ~_straddles(T_PAIRS, S_PAIRS, t_on, t_off)
    cap = min(1.0, (1.0 - a_on) / a_on)
    np.testing.assert_allclose(m_t[inside], ref[inside, 0], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(m_s[inside], ref[inside, 1], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(sig_u[inside], np.minimum(ref[inside, 2], cap), rtol=1e-5)
    np.testing.assert_array_equal(sig_m, sig_u)
    # across t_on: the reference extrapolates phase 1's line to s; here alpha_s = alpha(t_on)
    across_on = (T_PAIRS > t_on) & (S_PAIRS < t_on) & (S_PAIRS >= t_off)
    assert across_on.any()
    np.testing.assert_allclose(m_s[across_on], 1.0 - a_on, rtol=1e-6)
    assert np.all(np.abs(ref[across_on, 1] - (1.0 - a_on)) > 1e-3)
    # across t_off from inside the loop: the reference loops at alpha_on; here an MDLM step (sigma = 0)
    across_off = (T_PAIRS > t_off) & (T_PAIRS <= t_on) & (S_PAIRS < t_off)
    assert across_off.any()
    assert np.all(sig_u[across_off] == 0.0) and np.all(ref[across_off, 2] == eta)
    np.testing.assert_allclose(m_s[across_off], S_PAIRS[across_off] * t_on / t_off, rtol=1e-5, atol=1e-7)


def test_loop_convention_fields_are_checked():
    with pytest.raises(ValueError, match="convention must be one of"):
        M.masked_sampler("remdm_loop", convention="paper")
    with pytest.raises(ValueError, match="needs alpha_on"):
        M.masked_sampler("remdm_loop", convention="reference")
    with pytest.raises(ValueError, match="alpha_on is a field of convention 'reference'"):
        M.masked_sampler("remdm_loop", alpha_on=0.9)
    with pytest.raises(ValueError, match=r"alpha_on must be a number in \(0.0, 1.0\)"):
        M.masked_sampler("remdm_loop", convention="reference", alpha_on=1.0)
