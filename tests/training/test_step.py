"""Data-parallel train step on 8 simulated CPU devices (tests/conftest.py).

Tolerances: the compared paths run the same float32 math but reduce across devices (pmean) and across
the batch in different orders, so parameters agree to rounding error amplified by 5 Adam steps
(Adam normalises by sqrt(v), which can magnify tiny gradient differences for near-zero gradients):
rtol 1e-5 / atol 1e-6 for shard_map vs pmap (identical per-device computation), rtol 1e-4 / atol 1e-5
for 1 device vs 8 devices (different per-device batch sums).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from diffserial.losses import dsm_batch_loss
from diffserial.models.mlp import ScoreMLP
from diffserial.processes.gaussian import VPLinear
from diffserial.training import (
    OptimizerConfig,
    TrainState,
    ema_decay_at,
    ema_update,
    make_optimizer,
    make_pmap_step,
    make_schedule,
    make_shard_map_step,
    raise_if_nonfinite,
    replicate,
    unreplicate,
)

B, D, N_STEPS = 32, 2, 5
CONFIG = OptimizerConfig(lr=1e-2, warmup_steps=2, total_steps=10, weight_decay=1e-4, clip_norm=1.0, ema_decay=0.9)


@pytest.fixture(scope="module")
def setup():
    assert jax.device_count() >= 8
    model = ScoreMLP(hidden=16, n_blocks=1, embed_dim=8)
    apply_fn = lambda p, x, t: model.apply({"params": p}, x, t)
    params = jax.jit(model.init)(jax.random.PRNGKey(0), jnp.zeros((1, D)), jnp.zeros((1,)))["params"]
    x = 0.5 + 2.0 * jax.random.normal(jax.random.PRNGKey(1), (B, D))
    batch = {"x": x, "index": jnp.arange(B, dtype=jnp.int32)}
    optimizer = make_optimizer(CONFIG)
    state = TrainState.create(params, optimizer, jax.random.PRNGKey(2))
    return apply_fn, optimizer, state, batch


_STEPS = {}


def _step(setup, path, n_devices, noise="device"):
    """Compiled steps shared between tests (compilation dominates the run time)."""
    k = (path, n_devices, noise)
    if k not in _STEPS:
        apply_fn, opt, _, _ = setup
        loss_fn = dsm_batch_loss(apply_fn, VPLinear(), per_example_noise=noise == "example")
        make = make_shard_map_step if path == "shard_map" else make_pmap_step
        _STEPS[k] = make(loss_fn, opt, ema_decay=CONFIG.ema_decay, devices=jax.devices()[:n_devices],
                         noise=noise, schedule=make_schedule(CONFIG))
    return _STEPS[k]


def _run(step, state, batch, n=N_STEPS):
    metrics = []
    for _ in range(n):
        state, m = step(state, batch)
        raise_if_nonfinite(m)
        metrics.append(m)
    return state, metrics


def _close(a, b, rtol, atol):
    jax.tree.map(lambda u, v: np.testing.assert_allclose(np.asarray(u), np.asarray(v), rtol=rtol, atol=atol), a, b)


def test_shard_map_matches_pmap(setup):
    _, _, state, batch = setup
    s_sm, m_sm = _run(_step(setup, "shard_map", 8), state, batch)
    s_pm, m_pm = _run(_step(setup, "pmap", 8), replicate(state, 8), batch)
    s_pm = unreplicate(s_pm)
    assert int(s_sm.step) == int(s_pm.step) == N_STEPS
    _close(s_sm.params, s_pm.params, 1e-5, 1e-6)
    _close(s_sm.ema_params, s_pm.ema_params, 1e-5, 1e-6)
    np.testing.assert_array_equal(jax.random.key_data(s_sm.rng), jax.random.key_data(s_pm.rng))
    for a, b in zip(m_sm, m_pm):
        np.testing.assert_allclose(a["loss"], b["loss"], rtol=1e-5)
        np.testing.assert_allclose(a["grad_norm"], b["grad_norm"], rtol=1e-5)
        np.testing.assert_allclose(a["lr"], b["lr"], rtol=1e-6)
    # the parameters actually moved
    diff = jax.tree.leaves(jax.tree.map(lambda u, v: jnp.max(jnp.abs(u - v)), s_sm.params, state.params))
    assert max(float(d) for d in diff) > 1e-4
    # warmup: lr 0 at step 0, peak at warmup_steps
    np.testing.assert_allclose([float(m["lr"]) for m in m_sm[:3]], [0.0, 5e-3, 1e-2], rtol=1e-6, atol=1e-9)


def test_one_vs_eight_devices_per_example_noise(setup):
    _, _, state, batch = setup
    s1, m1 = _run(_step(setup, "shard_map", 1, "example"), state, batch)
    s8, m8 = _run(_step(setup, "shard_map", 8, "example"), state, batch)
    for a, b in zip(m1, m8):  # grad_norm equality also checks grads are averaged, not summed, over devices
        np.testing.assert_allclose(a["loss"], b["loss"], rtol=1e-5)
        np.testing.assert_allclose(a["grad_norm"], b["grad_norm"], rtol=1e-4)
    _close(s1.params, s8.params, 1e-4, 1e-5)
    _close(s1.ema_params, s8.ema_params, 1e-4, 1e-5)
    # with noise="device" the draws depend on the device count, so the losses differ
    _, a = _step(setup, "shard_map", 1)(state, batch)
    _, b = _step(setup, "shard_map", 8)(state, batch)
    assert not np.isclose(float(a["loss"]), float(b["loss"]), rtol=1e-3)


@pytest.mark.parametrize("path", ["shard_map", "pmap"])
def test_nan_batch_is_a_noop(setup, path):
    _, _, state, batch = setup
    bad = {"x": batch["x"].at[3, 1].set(jnp.nan), "index": batch["index"]}
    step = _step(setup, path, 8)
    s0 = state if path == "shard_map" else replicate(state, 8)
    s1, _ = step(s0, batch)  # one good step first, so opt_state is non-trivial
    s2, m = step(s1, bad)
    assert not bool(m["finite"])
    assert int(m["step"]) == 1
    jax.tree.map(np.testing.assert_array_equal, s2, s1)  # state untouched (params, opt, ema, rng, step)
    with pytest.raises(FloatingPointError, match="step 1"):
        raise_if_nonfinite(m)
    s3, m3 = step(s2, batch)  # training continues afterwards
    assert bool(m3["finite"]) and int(m3["step"]) == 1


def test_batch_divisibility_validated(setup):
    apply_fn, opt, state, batch = setup
    loss_fn = dsm_batch_loss(apply_fn, VPLinear())
    odd = jax.tree.map(lambda x: x[:30], batch)
    with pytest.raises(ValueError, match="divisible"):
        make_shard_map_step(loss_fn, opt, ema_decay=0.9, devices=jax.devices()[:8])(state, odd)
    with pytest.raises(ValueError, match="divisible"):
        make_pmap_step(loss_fn, opt, ema_decay=0.9, devices=jax.devices()[:8])(replicate(state, 8), odd)
    with pytest.raises(ValueError, match="ema_decay"):
        make_shard_map_step(loss_fn, opt, ema_decay=1.0)


@pytest.mark.parametrize(
    "kwargs, field",
    [
        (dict(warmup_steps=11, total_steps=10), "warmup_steps"),
        (dict(lr=0.0), "lr"),
        (dict(lr=-1e-3), "lr"),
        (dict(ema_decay=1.0), "ema_decay"),
        (dict(ema_decay=-0.1), "ema_decay"),
        (dict(b2=1.0), "b2"),
        (dict(clip_norm=0.0), "clip_norm"),
        (dict(weight_decay=-1.0), "weight_decay"),
    ],
)
def test_optimizer_validation(kwargs, field):
    with pytest.raises(ValueError, match=field):
        OptimizerConfig(**kwargs)
    with pytest.raises(ValueError, match=field):
        make_optimizer(kwargs)


def test_optimizer_misc():
    with pytest.raises(ValueError, match="unknown"):
        make_optimizer({"learning_rate": 1e-3})
    with pytest.raises(ValueError, match="warmup_steps"):
        make_optimizer({"lr": 1e-3, "warmup_steps": 10, "total_steps": 10})  # needs a cosine phase
    sched = make_schedule(dict(lr=1.0, warmup_steps=4, total_steps=12, end_lr_ratio=0.1))
    np.testing.assert_allclose([sched(0), sched(2), sched(4), sched(12)], [0.0, 0.5, 1.0, 0.1], rtol=1e-6, atol=1e-7)
    ema = ema_update({"a": jnp.ones(3)}, {"a": jnp.zeros(3)}, 0.75)
    np.testing.assert_allclose(ema["a"], 0.75)
    with pytest.raises(ValueError, match="decay"):
        ema_update({"a": jnp.ones(3)}, {"a": jnp.zeros(3)}, 1.0)
    np.testing.assert_allclose([ema_decay_at(s, 0.999) for s in (0, 1, 90, 10**5)],
                               [1 / 10, 2 / 11, 91 / 100, 0.999], rtol=1e-6)
