"""Continuous update rules against independent references: diffrax steps and exact Gaussian recursions."""

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from diffserial.processes.gaussian import VEGeometric, VPCosine, VPLinear
from diffserial.samplers import continuous_grid, continuous_sampler, sample_continuous

MU = np.array([1.0, -0.5])
SIGMA0 = np.array([[0.5, 0.2], [0.2, 0.3]])


def _gauss_score(process):
    """Exact score of p_t for p_0 = N(MU, SIGMA0): -(m^2 S + s^2 I)^{-1} (x - m MU)."""

    def score(x, t):
        m, s = process.marginal(t)
        cov = m**2 * SIGMA0 + s**2 * jnp.eye(2)
        return -jnp.linalg.solve(cov, x - m * MU)

    return score


def _step_normals(key, seed, steps, shape):
    """z_k that the driver's seed contract gives seed `seed` at step k (one draw per step)."""
    step_keys = jax.random.fold_in(jax.random.fold_in(key, seed), 1)
    return jnp.stack([jax.random.normal(jax.random.fold_in(step_keys, k), shape) for k in range(steps)])


class _GivenIncrements(diffrax.AbstractPath):
    """Brownian path with increment dW[k] along the reverse-time step ts[k] -> ts[k+1] (ts decreasing).

    Integrating backwards, diffrax asks for evaluate(ts[k+1], ts[k]), i.e. W(ts[k]) - W(ts[k+1]), and
    negates it; so the path returns -dW[k] there.
    """

    ts: jax.Array
    dw: jax.Array

    @property
    def t0(self):
        return self.ts[0]

    @property
    def t1(self):
        return self.ts[-1]

    def evaluate(self, t0, t1=None, left=True):
        k = jnp.argmin(jnp.abs(self.ts[:-1] - t1))
        return -self.dw[k]


@pytest.mark.parametrize("process", [VPLinear(), VEGeometric()], ids=lambda p: p.name)
def test_euler_maruyama_matches_diffrax_euler_with_same_brownian_increments(process):
    steps, key, seed = 16, jax.random.key(7), 5
    ts = continuous_grid("quadratic", process, steps)
    score = _gauss_score(process)
    x1 = jnp.array([0.3, -1.2]) * process.prior_std()
    ours = sample_continuous(score, process, continuous_sampler("euler_maruyama"), ts, key=key,
                         n_seeds=seed + 1, shape=(2,), init_fn=lambda k: x1)[seed]
    z = _step_normals(key, seed, steps, (2,))
    dw = jnp.sqrt(ts[:-1] - ts[1:])[:, None] * z  # the reverse-time Brownian increments we used
    drift = diffrax.ODETerm(lambda t, y, args: process.reverse_drift(y, t, score(y, t)))
    noise = diffrax.ControlTerm(lambda t, y, args: process.diffusion(t) * jnp.eye(2),
                                _GivenIncrements(ts, dw))
    sol = diffrax.diffeqsolve(diffrax.MultiTerm(drift, noise), diffrax.Euler(), t0=ts[0], t1=ts[-1],
                              dt0=None, y0=x1, stepsize_controller=diffrax.StepTo(ts), saveat=diffrax.SaveAt(t1=True))
    np.testing.assert_allclose(np.asarray(ours), np.asarray(sol.ys[-1]), rtol=2e-5, atol=2e-5)


@pytest.mark.parametrize("process", [VPLinear(), VPCosine(), VEGeometric()], ids=lambda p: p.name)
def test_pf_heun_matches_diffrax_heun(process):
    steps = 12
    ts = continuous_grid("karras", process, steps)
    score = _gauss_score(process)
    x1 = jnp.array([0.7, 0.1]) * process.prior_std()
    ours = sample_continuous(score, process, continuous_sampler("pf_heun"), ts, key=jax.random.key(0),
                         n_seeds=1, shape=(2,), init_fn=lambda k: x1)[0]
    term = diffrax.ODETerm(lambda t, y, args: process.pf_drift(y, t, score(y, t)))
    sol = diffrax.diffeqsolve(term, diffrax.Heun(), t0=ts[0], t1=ts[-1], dt0=None, y0=x1,
                              stepsize_controller=diffrax.StepTo(ts), saveat=diffrax.SaveAt(t1=True))
    np.testing.assert_allclose(np.asarray(ours), np.asarray(sol.ys[-1]), rtol=2e-5, atol=2e-5)


# --- single Gaussian target: every update is affine in x, so the output law is Gaussian with a
# --- mean/covariance recursion we compute here in float64 from the SDE's closed forms alone.

B0, B1 = 0.1, 20.0


def _vp(t):
    """VP-linear closed forms in float64: beta, m, s^2."""
    beta = B0 + t * (B1 - B0)
    m = np.exp(-0.25 * t**2 * (B1 - B0) - 0.5 * t * B0)
    return beta, m, 1.0 - m**2


def _affine_step(name, t, s):
    """(A, b, C): x_s = A x_t + b + C z for the exact Gaussian score, VP linear, in float64."""
    beta, m_t, v_t = _vp(t)
    _, m_s, v_s = _vp(s)
    prec = np.linalg.inv(m_t**2 * SIGMA0 + v_t * np.eye(2))  # score = -prec (x - m_t MU)
    eye, dt = np.eye(2), t - s
    if name == "euler_maruyama":  # x - (-beta x / 2 - beta score) dt + sqrt(beta dt) z
        a = eye + dt * (0.5 * beta * eye - beta * prec)
        return a, beta * dt * prec @ (m_t * MU), np.sqrt(beta * dt) * eye
    if name == "ancestral":  # (x + v_ts score) / m_ts + sqrt(v_ts v_s / v_t) z
        m_ts = m_t / m_s
        v_ts = v_t - m_ts**2 * v_s
        a = (eye - v_ts * prec) / m_ts
        return a, v_ts * prec @ (m_t * MU) / m_ts, np.sqrt(v_ts * v_s / v_t) * eye
    if name == "li_yan_sde":  # (x + (1 - a) score + sqrt(1 - a) z) / sqrt(a)
        al = (m_t / m_s) ** 2
        a = (eye - (1 - al) * prec) / np.sqrt(al)
        return a, (1 - al) * prec @ (m_t * MU) / np.sqrt(al), np.sqrt((1 - al) / al) * eye
    if name == "pf_euler":  # x - (-beta x / 2 - beta score / 2) dt
        a = eye + dt * (0.5 * beta * eye - 0.5 * beta * prec)
        return a, 0.5 * beta * dt * prec @ (m_t * MU), 0.0 * eye
    raise KeyError(name)


@pytest.mark.parametrize("name", ["euler_maruyama", "ancestral", "li_yan_sde", "pf_euler"])
def test_gaussian_target_moments_follow_the_exact_recursion(name):
    process, steps, n = VPLinear(), 3, 100_000
    ts = continuous_grid("uniform", process, steps)
    x = sample_continuous(_gauss_score(process), process, continuous_sampler(name), ts,
                      key=jax.random.key(11), n_seeds=n, shape=(2,))
    x = np.asarray(x, np.float64)
    mean, cov = np.zeros(2), np.eye(2)  # the prior N(0, I)
    for t, s in zip(np.asarray(ts[:-1], np.float64), np.asarray(ts[1:], np.float64)):
        a, b, c = _affine_step(name, t, s)
        mean, cov = a @ mean + b, a @ cov @ a.T + c @ c.T
    se_mean = np.sqrt(np.diag(cov) / n)
    np.testing.assert_array_less(np.abs(x.mean(0) - mean), 5 * se_mean)
    emp = np.cov(x.T)
    se_cov = np.sqrt((cov**2 + np.outer(np.diag(cov), np.diag(cov))) / n)  # Var of a Gaussian sample cov
    np.testing.assert_array_less(np.abs(emp - cov), 5 * se_cov)
    # the recursion is not the target: the test would notice a sampler that returned exact samples
    assert np.any(np.abs(cov - (_vp(1e-3)[1] ** 2 * SIGMA0 + _vp(1e-3)[2] * np.eye(2))) > 5 * se_cov)


def test_dpm_solver_is_exact_for_a_point_mass():
    """For p_0 = delta(mu) the data prediction is exact, so DPM-Solver++ lands on m_eps mu + s_eps/s_1 x_1."""
    process, mu = VPLinear(), jnp.array([0.4, -2.0])

    def score(x, t):
        m, s = process.marginal(t)
        return -(x - m * mu) / s**2

    ts = continuous_grid("logsnr", process, 5)
    x = sample_continuous(score, process, continuous_sampler("dpm_solver_pp_2m"), ts,
                      key=jax.random.key(0), n_seeds=64, shape=(2,))
    m_e, s_e = process.marginal(ts[-1])
    x1 = jax.vmap(lambda i: jax.random.normal(jax.random.fold_in(jax.random.fold_in(jax.random.key(0), i), 0), (2,)))(
        jnp.arange(64))
    expected = m_e * mu + (s_e / process.std(1.0)) * x1
    np.testing.assert_allclose(np.asarray(x), np.asarray(expected), rtol=1e-4, atol=1e-4)
