"""Masked (absorbing) diffusion: schedules' closed forms, NELBO weight, corruption and reveal probabilities."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from diffserial.processes.masked import (
    SCHEDULES,
    Cosine,
    Linear,
    LogLinear,
    Polynomial,
    corrupt,
    make_schedule,
    mask_id_for,
    nelbo_weight,
    reveal_probability,
)

ALL = [Linear(), Cosine(), Polynomial(2.0), Polynomial(0.5), Polynomial(3), LogLinear(), LogLinear(eps=0.1)]
IDS = [f"{s.name}-{getattr(s, 'power', getattr(s, 'eps', ''))}" for s in ALL]
TIMES = [0.05, 0.3, 0.5, 0.77, 0.999]


@pytest.mark.parametrize("s", ALL, ids=IDS)
def test_endpoints(s):
    assert float(s.alpha(0.0)) == 1.0
    end = s.eps if isinstance(s, LogLinear) else 0.0
    assert float(s.alpha(1.0)) == pytest.approx(end, abs=1e-7)
    np.testing.assert_allclose(s.mask_prob(jnp.array(TIMES)), 1.0 - s.alpha(jnp.array(TIMES)), atol=1e-6)


@pytest.mark.parametrize("s", ALL, ids=IDS)
@pytest.mark.parametrize("t", TIMES)
def test_dalpha_is_the_derivative(s, t):
    t = jnp.float32(t)
    np.testing.assert_allclose(s.dalpha(t), jax.grad(s.alpha)(t), rtol=1e-5, atol=1e-6)
    assert float(s.dalpha(t)) <= 0.0


def test_published_forms():
    t = 0.3
    assert float(Cosine().alpha(t)) == pytest.approx(1 - math.cos(math.pi / 2 * (1 - t)), abs=1e-6)  # MD4
    ll = LogLinear(eps=1e-3)
    sigma = -math.log(1 - (1 - 1e-3) * t)  # MDLM LogLinearNoise total noise
    assert float(ll.sigma(t)) == pytest.approx(sigma, rel=1e-5)
    assert float(ll.alpha(t)) == pytest.approx(math.exp(-sigma), rel=1e-6)
    assert float(Polynomial(3).alpha(t)) == pytest.approx(1 - t**3, abs=1e-7)


@pytest.mark.parametrize("t", TIMES)
def test_nelbo_weight(t):
    for s in ALL:
        w = float(nelbo_weight(s, t))
        assert w == pytest.approx(float(s.dalpha(t)) / (1.0 - float(s.alpha(t))), rel=2e-4)
        assert w < 0
    assert float(nelbo_weight(Linear(), t)) == pytest.approx(-1 / t, rel=1e-6)
    assert float(nelbo_weight(LogLinear(), t)) == pytest.approx(-1 / t, rel=1e-6)
    assert float(nelbo_weight(Polynomial(2.5), t)) == pytest.approx(-2.5 / t, rel=1e-5)
    assert float(nelbo_weight(Cosine(), t)) == pytest.approx(-math.pi / 2 / math.tan(math.pi * t / 2), rel=1e-4)  # float32 cos near pi/2


def test_registry_and_static_pytrees():
    assert set(SCHEDULES) == {"linear", "cosine", "polynomial", "loglinear"}
    assert make_schedule("polynomial", power=3.0) == Polynomial(3.0)
    with pytest.raises(ValueError, match="cosine.*linear.*loglinear.*polynomial"):
        make_schedule("sqrt")
    assert jax.tree_util.tree_leaves(Polynomial(2.0)) == []
    f = jax.jit(lambda sched, t: sched.alpha(t))
    assert float(f(Cosine(), 0.5)) == pytest.approx(1 - math.sin(math.pi / 4), abs=1e-6)
    assert float(f(Polynomial(2.0), 0.5)) == pytest.approx(0.75)


@pytest.mark.parametrize("s", [Linear(), Cosine(), LogLinear()], ids=lambda s: s.name)
def test_corrupt_mask_rate(s):
    n, t = 20000, 0.37
    x0 = jax.random.randint(jax.random.PRNGKey(0), (n,), 0, 7)
    xt = corrupt(jax.random.PRNGKey(1), x0, t, s, mask_id=7)
    assert xt.dtype == jnp.int32 and xt.shape == x0.shape
    masked = np.asarray(xt == 7)
    p = 1.0 - float(s.alpha(t))
    assert abs(masked.mean() - p) < 5 * math.sqrt(p * (1 - p) / n)
    np.testing.assert_array_equal(np.asarray(xt)[~masked], np.asarray(x0)[~masked])
    assert not np.any(np.asarray(corrupt(jax.random.PRNGKey(2), x0, 0.0, s, 7)) == 7)
    if not isinstance(s, LogLinear):
        assert np.all(np.asarray(corrupt(jax.random.PRNGKey(2), x0, 1.0, s, 7)) == 7)


def test_corrupt_prompt_and_vmap():
    length, v = 16, 5
    prompt = jnp.arange(length) < 4
    x0 = jax.random.randint(jax.random.PRNGKey(0), (64, length), 0, v)
    ts = jnp.linspace(0.5, 1.0, 64)
    keys = jax.random.split(jax.random.PRNGKey(3), 64)
    xt = jax.jit(jax.vmap(lambda k, x, t: corrupt(k, x, t, Cosine(), mask_id_for(v), prompt)))(keys, x0, ts)
    np.testing.assert_array_equal(xt[:, :4], x0[:, :4])  # never masked, even at t = 1
    assert np.all(np.asarray(xt[-1, 4:]) == v)


def test_reveal_probability():
    s, big_t = Linear(), 8
    for m in range(1, big_t + 1):  # t_k = 1 - k/T: from m/T to (m-1)/T the probability is 1/m
        r = float(reveal_probability(s, m / big_t, (m - 1) / big_t))
        assert r == pytest.approx(1.0 / m, rel=1e-5)
    for sched in ALL:
        assert float(reveal_probability(sched, 0.4, 0.0)) == 1.0
        assert float(reveal_probability(sched, 0.4, 0.4)) == 0.0
        t, u = 0.8, 0.35
        want = (float(sched.alpha(u)) - float(sched.alpha(t))) / (1 - float(sched.alpha(t)))
        assert float(reveal_probability(sched, t, u)) == pytest.approx(want, rel=1e-4)


def test_bad_inputs():
    with pytest.raises(ValueError, match="t must lie in"):
        Linear().alpha(1.5)
    with pytest.raises(ValueError, match="t must lie in"):
        Cosine().alpha(jnp.array([0.2, -0.1]))
    with pytest.raises(ValueError, match="t must lie in"):
        Linear().alpha(float("nan"))
    for p in (0, -1.0, float("inf"), "2"):
        with pytest.raises(ValueError, match="power"):
            Polynomial(p)
    for e in (0.0, 1.0, -0.5):
        with pytest.raises(ValueError, match="eps"):
            LogLinear(eps=e)
    with pytest.raises(ValueError, match=r"t must lie in \(0"):
        nelbo_weight(Linear(), 0.0)
    with pytest.raises(ValueError, match="s must be <= t"):
        reveal_probability(Linear(), 0.3, 0.5)
    with pytest.raises(ValueError, match="schedule"):
        nelbo_weight("linear", 0.5)
    with pytest.raises(ValueError, match="vocab_size"):
        mask_id_for(0)
    key, x0 = jax.random.PRNGKey(0), jnp.array([0, 1, 2])
    with pytest.raises(ValueError, match="prompt_mask"):
        corrupt(key, x0, 0.5, Linear(), 3, prompt_mask=jnp.array([True, False]))
    with pytest.raises(ValueError, match="x0 tokens"):
        corrupt(key, x0, 0.5, Linear(), 2)
    with pytest.raises(ValueError, match="integer"):
        corrupt(key, x0.astype(jnp.float32), 0.5, Linear(), 3)
    with pytest.raises(ValueError, match="scalar"):
        corrupt(key, x0, jnp.array([0.1, 0.2, 0.3]), Linear(), 3)
