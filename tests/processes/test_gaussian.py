"""Forward processes: closed forms against published constants and the SDE's own moment ODEs."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from diffserial.processes.gaussian import PROCESSES, SubVP, VEGeometric, VPCosine, VPLinear

ALL = [cls() for cls in PROCESSES.values()]
TIMES = [1e-3, 0.1, 0.37, 0.8, 1.0]


@pytest.mark.parametrize("p", ALL, ids=lambda p: p.name)
@pytest.mark.parametrize("t", TIMES)
def test_marginal_solves_the_moment_odes(p, t):
    """For dx = f x dt + g dW from a point: d/dt log m = f and d/dt s^2 = 2 f s^2 + g^2."""
    t = jnp.float32(t)
    dlogm = jax.grad(lambda u: jnp.log(p.mean_coeff(u)))(t)
    dvar = jax.grad(p.variance)(t)
    np.testing.assert_allclose(dlogm, p.drift_coeff(t), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(dvar, 2 * p.drift_coeff(t) * p.variance(t) + p.diffusion(t) ** 2,
                               rtol=1e-3, atol=1e-4)


@pytest.mark.parametrize("p", ALL, ids=lambda p: p.name)
def test_starts_at_the_data(p):
    m, s = p.marginal(jnp.float32(0.0))
    assert float(m) == pytest.approx(1.0, abs=1e-6) and float(s) == pytest.approx(0.0, abs=1e-6)


def test_vp_linear_matches_score_sde_constants():
    """score_sde VPSDE(beta_min=0.1, beta_max=20): log m(1) = -(20 - 0.1)/4 - 0.1/2."""
    m, s = VPLinear().marginal(jnp.float32(1.0))
    assert float(m) == pytest.approx(math.exp(-19.9 / 4 - 0.05), rel=1e-5)
    assert float(s) == pytest.approx(math.sqrt(1 - math.exp(-19.9 / 2 - 0.1)), rel=1e-6)


def test_subvp_std_and_ve_sigma():
    t = 0.3
    lmc = -0.25 * t**2 * 19.9 - 0.5 * t * 0.1
    assert float(SubVP().std(jnp.float32(t))) == pytest.approx(1 - math.exp(2 * lmc), rel=1e-5)
    ve = VEGeometric(sigma_min=0.01, sigma_max=50.0)
    sigma = 0.01 * 5000**t
    assert float(ve.std(jnp.float32(t))) == pytest.approx(math.sqrt(sigma**2 - 1e-4), rel=1e-5)
    assert ve.prior_std() == pytest.approx(math.sqrt(2500 - 1e-4))


def test_vp_cosine_is_nichol_dhariwal_up_to_the_end_angle():
    p = VPCosine()
    s_off = 0.008
    theta = lambda t: 0.5 * math.pi * (t + s_off) / (1 + s_off)
    # near t = 0 the schedule is Nichol & Dhariwal's alpha-bar(t) = cos^2(theta(t)) / cos^2(theta(0))
    t = 0.2
    th0, th1 = p._theta_bounds()
    nd = math.cos(th0 + t * (th1 - th0)) ** 2 / math.cos(th0) ** 2
    assert float(p.mean_coeff(jnp.float32(t))) ** 2 == pytest.approx(nd, rel=1e-5)
    assert th0 == pytest.approx(theta(0.0))
    assert float(p.mean_coeff(jnp.float32(1.0))) == pytest.approx(p.alpha_end, rel=1e-4)


@pytest.mark.parametrize("p", ALL, ids=lambda p: p.name)
def test_logsnr_inverse(p):
    t = jnp.array([2e-3, 0.05, 0.5, 0.99], jnp.float32)
    np.testing.assert_allclose(p.t_of_logsnr(p.logsnr(t)), t, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("p", ALL, ids=lambda p: p.name)
def test_transition_composes(p):
    """x_t | x_0 is x_s | x_0 pushed through x_t | x_s: m_t = m_ts m_s, s_t^2 = m_ts^2 s_s^2 + v_ts."""
    s, t = jnp.float32(0.2), jnp.float32(0.7)
    m_ts, v_ts = p.transition(s, t)
    np.testing.assert_allclose(m_ts * p.mean_coeff(s), p.mean_coeff(t), rtol=1e-5)
    np.testing.assert_allclose(m_ts**2 * p.variance(s) + v_ts, p.variance(t), rtol=1e-5)
    assert float(v_ts) > 0


def test_processes_are_hashable_values():
    assert VPLinear() == VPLinear() and hash(VPLinear()) == hash(VPLinear())
    assert VPLinear() != SubVP() and VPLinear(beta_max=10.0) != VPLinear()
    assert jax.tree_util.tree_leaves(VPLinear()) == []
