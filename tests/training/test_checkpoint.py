"""Tests for diffserial.training.checkpoint (orbax CheckpointManager wrapper)."""

import os
import shutil
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P, SingleDeviceSharding

from diffserial.training import checkpoint as ckpt


def _state(seed=0, step=7):
    k = jax.random.key(seed)
    k1, k2, k3 = jax.random.split(k, 3)
    params = {"dense": {"w": jax.random.normal(k1, (16, 8)), "b": jnp.zeros((8,))}, "scale": jnp.float32(1.5)}
    ema = jax.tree.map(lambda x: x * 0.5, params)
    opt_state = {
        "count": jnp.int32(step),
        "mu": jax.tree.map(jnp.ones_like, params),
        "nu": {"inner": [jax.random.uniform(k2, (16, 8)), jnp.arange(8, dtype=jnp.int32)]},
    }
    return {"params": params, "ema": ema, "opt_state": opt_state, "step": jnp.int32(step), "rng": k3}


def _assert_bitwise(a, b):
    la, ta = jax.tree.flatten(a)
    lb, tb = jax.tree.flatten(b)
    assert ta == tb
    for x, y in zip(la, lb):
        if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
            assert jax.dtypes.issubdtype(y.dtype, jax.dtypes.prng_key)
            assert jax.random.key_impl(x) == jax.random.key_impl(y)
            x, y = jax.random.key_data(x), jax.random.key_data(y)
        x, y = np.asarray(x), np.asarray(y)
        assert x.dtype == y.dtype and x.shape == y.shape
        assert x.tobytes() == y.tobytes()


def test_roundtrip_bitwise(tmp_path):
    state = _state()
    mgr = ckpt.open_manager(tmp_path / "ck", max_to_keep=3)
    assert ckpt.restore_latest(mgr, ckpt.abstract_like(state)) is None
    assert ckpt.save(mgr, 7, state)
    ckpt.wait(mgr)
    step, restored = ckpt.restore_latest(mgr, ckpt.abstract_like(state))
    assert step == 7
    _assert_bitwise(state, restored)
    # the restored key is usable and identical in behaviour
    assert np.array_equal(jax.random.normal(restored["rng"], (3,)), jax.random.normal(state["rng"], (3,)))
    ckpt.close(mgr)

    # a fresh manager (new process-like) sees the same committed step
    mgr2 = ckpt.CheckpointConfig(str(tmp_path / "ck")).open()
    step, restored = ckpt.restore_latest(mgr2, jax.eval_shape(lambda: state))
    assert step == 7
    _assert_bitwise(state, restored)
    ckpt.close(mgr2)


def test_keep_latest_n(tmp_path):
    state = _state()
    mgr = ckpt.open_manager(tmp_path, max_to_keep=2, async_save=True)
    for s in range(1, 6):
        ckpt.save(mgr, s, state)
    ckpt.wait(mgr)
    assert mgr.all_steps() == [4, 5]
    assert sorted(p for p in os.listdir(tmp_path) if p.isdigit()) == ["4", "5"]
    ckpt.close(mgr)


def test_restore_onto_different_sharding(tmp_path):
    devs = jax.devices()
    assert len(devs) == 8
    one = Mesh(np.array(devs[:1]), ("x",))
    rep1 = NamedSharding(one, P())
    state = jax.device_put(_state(), rep1)
    mgr = ckpt.open_manager(tmp_path, async_save=True)
    ckpt.save(mgr, 1, state)
    ckpt.wait(mgr)

    mesh8 = Mesh(np.array(devs), ("x",))

    def shard_fn(x):  # shard the leading axis when divisible, else replicate
        if x.ndim and x.shape[0] % 8 == 0:
            return NamedSharding(mesh8, P("x"))
        return NamedSharding(mesh8, P())

    abstract = ckpt.abstract_like(state, shard_fn)
    step, restored = ckpt.restore_latest(mgr, abstract)
    assert step == 1
    w = restored["params"]["dense"]["w"]
    assert w.sharding.is_equivalent_to(NamedSharding(mesh8, P("x")), w.ndim)
    assert len(w.addressable_shards) == 8 and w.addressable_shards[0].data.shape == (2, 8)
    assert restored["step"].sharding.is_equivalent_to(NamedSharding(mesh8, P()), 0)
    assert len(restored["rng"].sharding.device_set) == 8
    _assert_bitwise(state, restored)
    ckpt.close(mgr)


def test_uncommitted_checkpoints_ignored(tmp_path):
    """The commit marker on a local FS is the atomic rename `<step>.orbax-checkpoint-tmp* -> <step>`."""
    state = _state()
    mgr = ckpt.open_manager(tmp_path, max_to_keep=10)
    ckpt.save(mgr, 3, state)
    ckpt.wait(mgr)
    ckpt.close(mgr)
    # Simulate interrupted saves of steps 4 and 6: complete-looking data left in temporary dirs,
    # plus a half-written one (truncated data).
    shutil.copytree(tmp_path / "3", tmp_path / "4.orbax-checkpoint-tmp-1700000000")
    shutil.copytree(tmp_path / "3", tmp_path / "6.orbax-checkpoint-tmp")
    shutil.rmtree(tmp_path / "6.orbax-checkpoint-tmp" / "default" / "d")

    mgr = ckpt.open_manager(tmp_path, max_to_keep=10)
    assert mgr.all_steps() == [3]
    step, restored = ckpt.restore_latest(mgr, ckpt.abstract_like(state))
    assert step == 3
    _assert_bitwise(state, restored)
    ckpt.close(mgr)

    # Documented behaviour of orbax 0.12 on local FS: commit_success.txt is NOT the marker
    # (AtomicRenameTemporaryPath); a renamed (suffix-free) dir counts as committed without it.
    shutil.copytree(tmp_path / "3", tmp_path / "5")
    for root, _, files in os.walk(tmp_path / "5"):
        if "commit_success.txt" in files:
            os.remove(os.path.join(root, "commit_success.txt"))
    mgr = ckpt.open_manager(tmp_path, max_to_keep=10)
    assert mgr.all_steps() == [3, 5]
    ckpt.close(mgr)


_CHILD = textwrap.dedent(
    """
    import os, signal, sys
    os.environ["JAX_PLATFORMS"] = "cpu"
    import jax, jax.numpy as jnp
    from diffserial.training import checkpoint as ckpt

    d = sys.argv[1]
    mgr = ckpt.open_manager(d, max_to_keep=5, async_save=True)
    for s in (1, 2, 3):
        st = {"w": jnp.full((64, 64), float(s)), "step": jnp.int32(s), "rng": jax.random.key(s)}
        ckpt.save(mgr, s, st)
        ckpt.wait(mgr)
    # "large-ish": 8 MiB extra leaf; killed right after the (non-blocking) save call.
    big = {"w": jnp.full((64, 64), 4.0), "step": jnp.int32(4), "rng": jax.random.key(4),
           "big": jnp.full((1024, 2048), 4.0)}
    ckpt.save(mgr, 4, big)
    os.kill(os.getpid(), signal.SIGKILL)
    """
)


def test_sigkill_during_async_save(tmp_path):
    script = tmp_path / "child.py"
    script.write_text(_CHILD)
    d = tmp_path / "ck"
    env = dict(os.environ)
    env.pop("XLA_FLAGS", None)  # child: a single CPU device
    proc = subprocess.run([sys.executable, str(script), str(d)], env=env, capture_output=True, timeout=60)
    assert proc.returncode == -9, proc.stderr.decode()[-2000:]

    # Steps 1..3 are committed; step 4 is at most a leftover `4.orbax-checkpoint-tmp*` dir.
    assert {"1", "2", "3"} <= set(os.listdir(d))
    mgr = ckpt.open_manager(d, max_to_keep=5)
    step = mgr.latest_step()
    assert step in (3, 4)
    if step == 3:
        abstract = {"w": jax.ShapeDtypeStruct((64, 64), jnp.float32), "step": jax.ShapeDtypeStruct((), jnp.int32)}
    else:
        abstract = {
            "w": jax.ShapeDtypeStruct((64, 64), jnp.float32),
            "step": jax.ShapeDtypeStruct((), jnp.int32),
            "big": jax.ShapeDtypeStruct((1024, 2048), jnp.float32),
        }
    sh = SingleDeviceSharding(jax.devices()[0])
    abstract["rng"] = jax.eval_shape(lambda: jax.random.key(0))
    abstract = jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=sh), abstract)
    got_step, restored = ckpt.restore_latest(mgr, abstract)
    assert got_step == step
    assert int(restored["step"]) == step
    assert np.all(np.asarray(restored["w"]) == float(step))
    assert np.array_equal(jax.random.key_data(restored["rng"]), jax.random.key_data(jax.random.key(step)))
    if step == 4:
        assert np.all(np.asarray(restored["big"]) == 4.0)
    ckpt.close(mgr)
