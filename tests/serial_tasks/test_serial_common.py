"""The shared interface: the word-to-integer maps against exact Python integer arithmetic, and the same
key giving the same data in a separate process with 1 device as here with 8 sharded devices, for every
registered task; every task's arrays have the declared shapes, int32 tokens below vocab_size, and pass
their own checker."""

import hashlib
import json
import os
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from diffserial.serial_tasks import TASKS, make_task
from diffserial.serial_tasks.common import below, bernoulli, top_bit

# name -> (args, kwargs): the configurations the family test files use (so a full run compiles each once).
CONFIGS = {
    "parity": ((9,), {}), "majority": ((6,), {}), "sum_mod": ((9, 7), {}), "s5": ((9,), {}), "a5": ((9,), {}),
    "s5_gen": ((9,), {}), "a5_gen": ((9,), {}),
    "rule110": ((9, 6), {}), "rule110_cell": ((3,), {}), "elementary_ca": ((8, 5), {"rule": 30, "with_cot": False}),
    "circuit_value": ((5, 4, 6), {}), "do1": ((6, 4, 8), {}), "do1_2afc": ((3, 2, 3), {}),
    "mechanics": ((9,), {}), "free_flight": ((9,), {}), "arithmetic_circuit": ((4, 4, 6), {}),
    "billiards": ((6,), {}), "billiards_free_flight": ((6,), {}),
    "sudoku": (("easy",), {}),
}
CROSS_PROCESS = ("s5", "do1_2afc", "sudoku")  # each costs a compile in the subprocess
SEED, BATCH = 13, 16


def digest(example):
    """sha256 of the prompt, answer and cot bytes (int32, C order)."""
    h = hashlib.sha256()
    for arr in (example.prompt, example.answer, example.cot):
        if arr is not None:
            h.update(np.ascontiguousarray(np.asarray(arr, np.int32)).tobytes())
    return h.hexdigest()


SUBPROCESS = textwrap.dedent("""
    import hashlib, json, sys
    import jax, numpy as np
    from diffserial.serial_tasks import make_task
    configs, seed, batch = json.loads(sys.argv[1])
    assert len(jax.devices()) == 1
    out = {}
    for name, (args, kwargs) in configs.items():
        ex = make_task(name, *args, **kwargs).sample(jax.random.key(seed), batch)
        h = hashlib.sha256()
        for arr in (ex.prompt, ex.answer, ex.cot):
            if arr is not None:
                h.update(np.ascontiguousarray(np.asarray(arr, np.int32)).tobytes())
        out[name] = h.hexdigest()
    print(json.dumps(out))
""")


def test_registry_covers_every_family():
    assert set(CONFIGS) == set(TASKS)


@pytest.mark.parametrize("name", list(CONFIGS))
def test_every_task_meets_the_interface(name):
    args, kwargs = CONFIGS[name]
    task = make_task(name, *args, **kwargs)
    ex = task.sample(jax.random.key(SEED), BATCH)
    assert ex.prompt.shape == (BATCH, task.prompt_len) and ex.answer.shape == (BATCH, task.answer_len)
    assert (ex.cot is None) == (task.cot_len == 0)
    if ex.cot is not None:
        assert ex.cot.shape == (BATCH, task.cot_len)
    for arr in (ex.prompt, ex.answer) + (() if ex.cot is None else (ex.cot,)):
        assert arr.dtype == jnp.int32 and 0 <= int(arr.min()) and int(arr.max()) < task.vocab_size
    assert np.all(np.asarray(task.check(ex.prompt, ex.answer)))


def test_same_data_in_another_process_on_one_device():
    configs = {name: CONFIGS[name] for name in CROSS_PROCESS}
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=1", "JAX_PLATFORMS": "cpu"}
    result = subprocess.run([sys.executable, "-c", SUBPROCESS, json.dumps([configs, SEED, 8])], env=env,
                            capture_output=True, text=True, timeout=300, check=True)
    theirs = json.loads(result.stdout.strip().splitlines()[-1])
    sharding = NamedSharding(Mesh(np.array(jax.devices()), ("data",)), PartitionSpec("data"))
    assert len(jax.devices()) == 8
    for name, (args, kwargs) in configs.items():
        ex = make_task(name, *args, **kwargs).sample(jax.random.key(SEED), 8, sharding)
        assert len(ex.prompt.sharding.device_set) == 8
        assert digest(ex) == theirs[name], name


@pytest.mark.parametrize("maxval", [1, 2, 3, 5, 7, 60, 120, 1000, 2 ** 15])
def test_below_is_floor_of_word_times_maxval_over_2_32(maxval):
    words = np.concatenate([np.random.default_rng(maxval).integers(0, 2 ** 32, 2000, dtype=np.uint64),
                            np.array([0, 1, 2 ** 16 - 1, 2 ** 16, 2 ** 31, 2 ** 32 - 1], np.uint64)])
    expected = [int(w) * maxval >> 32 for w in words]
    got = np.asarray(below(jnp.asarray(words.astype(np.uint32)), maxval))
    np.testing.assert_array_equal(got, expected)
    assert got.min() >= 0 and got.max() < maxval


def test_top_bit_and_bernoulli():
    words = np.random.default_rng(0).integers(0, 2 ** 32, 4000, dtype=np.uint64)
    w32 = jnp.asarray(words.astype(np.uint32))
    np.testing.assert_array_equal(top_bit(w32), [int(w >= 2 ** 31) for w in words])
    for p in (0.0, 0.25, 0.5, 1.0):
        np.testing.assert_array_equal(bernoulli(w32, p), [int((int(w) >> 8) < p * 2 ** 24) for w in words])


def test_bad_key():
    with pytest.raises(ValueError, match="key must be a JAX PRNG key"):
        make_task("s5", 3).sample(3, 2)
