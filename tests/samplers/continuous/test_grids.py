"""Time grids: end points, monotonicity and the defining spacing of each grid."""

import math

import numpy as np
import pytest

from diffserial.processes.gaussian import VEGeometric, VPLinear
from diffserial.samplers import CONTINUOUS_GRIDS, continuous_grid


@pytest.mark.parametrize("name", sorted(CONTINUOUS_GRIDS))
@pytest.mark.parametrize("process", [VPLinear(), VEGeometric()], ids=lambda p: p.name)
def test_grid_runs_from_one_to_eps_strictly_decreasing(name, process):
    ts = np.asarray(continuous_grid(name, process, 37, eps=2e-3))
    assert ts.shape == (38,) and ts[0] == 1.0 and ts[-1] == np.float32(2e-3)
    assert np.all(np.diff(ts) < 0)


def test_uniform_and_quadratic():
    np.testing.assert_allclose(continuous_grid("uniform", VPLinear(), 4, eps=0.2), [1, 0.8, 0.6, 0.4, 0.2], atol=1e-7)
    np.testing.assert_allclose(continuous_grid("quadratic", VPLinear(), 2, eps=0.2), [1, 0.4, 0.2], atol=1e-7)


def _vp_logsnr(t):
    lmc = -0.25 * t**2 * 19.9 - 0.05 * t
    return 2 * lmc - math.log(-math.expm1(2 * lmc))


def test_logsnr_grid_is_uniform_in_logsnr():
    ts = np.asarray(continuous_grid("logsnr", VPLinear(), 8), np.float64)
    lam = np.array([_vp_logsnr(t) for t in ts])
    np.testing.assert_allclose(np.diff(lam), np.full(8, (lam[-1] - lam[0]) / 8), rtol=2e-3)


def test_karras_grid_is_rho_spaced_in_sigma():
    """VE: sigma(t) = s_t / m_t = sqrt(sigma_min^2 (sigma_max/sigma_min)^(2t) - sigma_min^2)."""
    ve = VEGeometric()
    ts = np.asarray(continuous_grid("karras", ve, 10), np.float64)
    sig = np.sqrt((0.01 * 5000**ts) ** 2 - 1e-4)
    root = sig ** (1 / 7)
    np.testing.assert_allclose(np.diff(root), np.full(10, (root[-1] - root[0]) / 10), rtol=5e-3)
