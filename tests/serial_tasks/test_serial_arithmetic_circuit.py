"""Arithmetic circuit value over Z_p: prompts parsed here by the documented token layout and evaluated by a
recursive plain-Python evaluator (answers and the chain of thought), the op / wiring / input law,
determinism over batch sizes and devices, a checker that rejects every perturbed output, the registry,
the training layout and bad arguments."""

import functools

import jax
import ml_collections
import numpy as np
import pytest
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from diffserial.serial_tasks import make_task
from diffserial.serial_tasks.arithmetic_circuit import ArithmeticCircuitTask
from diffserial.training.tasks import serial_layout

KEY = jax.random.key(23)
BATCH = 16
OPS = {0: lambda a, b: a + b, 1: lambda a, b: a - b, 2: lambda a, b: a * b}
TASKS_UNDER_TEST = {
    "all_ops": ArithmeticCircuitTask(4, 4, 6),
    "p5_add_mul_multi_output": ArithmeticCircuitTask(3, 5, 4, p=5, ops=("add", "mul"), n_outputs=5),
    "p2_sub_depth1": ArithmeticCircuitTask(6, 3, 1, p=2, ops=("sub",)),
    "p11_wide": ArithmeticCircuitTask(2, 7, 3, p=11),
}


def parse(prompt, n, w, d, p):
    """(inputs, gates[l][i] = (op id, a, b)) from the layout: n values, then d*w (p+op, p+3+a, p+3+b)."""
    inputs = [int(t) for t in prompt[:n]]
    triples = np.asarray(prompt[n:]).reshape(d, w, 3)
    return inputs, [[(int(o) - p, int(a) - p - 3, int(b) - p - 3) for o, a, b in layer] for layer in triples]


def recursive_value(inputs, gates, p, layer, i, memo):
    """Value of gate (layer, i) in Z_p; layer -1 is the inputs."""
    if layer < 0:
        return inputs[i]
    if (layer, i) not in memo:
        op, a, b = gates[layer][i]
        memo[layer, i] = OPS[op](recursive_value(inputs, gates, p, layer - 1, a, memo),
                                 recursive_value(inputs, gates, p, layer - 1, b, memo)) % p
    return memo[layer, i]


@functools.lru_cache(maxsize=None)
def examples(name):
    return jax.device_get(TASKS_UNDER_TEST[name].sample(KEY, BATCH))


@pytest.mark.parametrize("name", list(TASKS_UNDER_TEST))
def test_matches_recursive_evaluator(name):
    task = TASKS_UNDER_TEST[name]
    n, w, d, p = task.n_inputs, task.width, task.depth, task.p
    ex = examples(name)
    assert ex.prompt.shape == (BATCH, n + 3 * d * w) and ex.answer.shape == (BATCH, task.n_outputs)
    assert ex.prompt.max() < task.vocab_size == p + 3 + max(n, w)
    assert (ex.cot is None) == (d == 1)
    for k in range(BATCH):
        inputs, gates = parse(ex.prompt[k], n, w, d, p)
        memo = {}
        np.testing.assert_array_equal(ex.answer[k], [recursive_value(inputs, gates, p, d - 1, i, memo)
                                                     for i in range(task.n_outputs)])
        if d > 1:
            cot = [recursive_value(inputs, gates, p, l, i, memo) for l in range(d - 1) for i in range(w)]
            np.testing.assert_array_equal(ex.cot[k], cot)
            assert ex.cot.shape == (BATCH, task.cot_len) and ex.cot.max() < p


def test_cot_is_consistent_layer_by_layer():
    """Each cot layer is the previous one (the inputs for layer 0) pushed through that layer's gates, and
    the answer is the last cot layer pushed through the last layer."""
    task = TASKS_UNDER_TEST["all_ops"]
    n, w, d, p = task.n_inputs, task.width, task.depth, task.p
    ex = examples("all_ops")
    for k in range(BATCH):
        inputs, gates = parse(ex.prompt[k], n, w, d, p)
        layers = [inputs] + np.asarray(ex.cot[k]).reshape(d - 1, w).tolist()
        for l in range(d):
            values = [OPS[op](layers[l][a], layers[l][b]) % p for op, a, b in gates[l]]
            if l < d - 1:
                assert values == layers[l + 1]
            else:
                assert values[:task.n_outputs] == ex.answer[k].tolist()


def test_random_circuit_law():
    """Ops only from the allowed set and all of them used; wires and inputs in range and covering it."""
    for name, allowed in [("all_ops", {0, 1, 2}), ("p5_add_mul_multi_output", {0, 2}), ("p2_sub_depth1", {1})]:
        task = TASKS_UNDER_TEST[name]
        p = task.p
        ex = examples(name)
        gates = np.asarray(ex.prompt)[:, task.n_inputs:].reshape(BATCH, task.depth, task.width, 3)
        assert set(np.unique(gates[..., 0] - p).tolist()) == allowed
        wires = gates[..., 1:] - p - 3
        assert set(np.unique(wires[:, 0]).tolist()) == set(range(task.n_inputs))
        if task.depth > 1:
            assert set(np.unique(wires[:, 1:]).tolist()) == set(range(task.width))
        assert set(np.unique(ex.prompt[:, :task.n_inputs]).tolist()) == set(range(p))


def test_same_key_same_data_across_batch_sizes_and_devices():
    task = TASKS_UNDER_TEST["all_ops"]
    full = examples("all_ops")
    small = task.sample(KEY, 3)
    sharded = task.sample(KEY, BATCH, NamedSharding(Mesh(np.array(jax.devices()), ("data",)), PartitionSpec("data")))
    tail = task.sample_at(KEY, np.arange(13, 16))
    for field in ("prompt", "answer", "cot"):
        np.testing.assert_array_equal(getattr(small, field), getattr(full, field)[:3])
        np.testing.assert_array_equal(getattr(sharded, field), getattr(full, field))
        np.testing.assert_array_equal(getattr(tail, field), getattr(full, field)[13:])


@pytest.mark.parametrize("name", list(TASKS_UNDER_TEST))
def test_checker_accepts_truth_rejects_perturbed(name):
    task = TASKS_UNDER_TEST[name]
    ex = examples(name)
    wrong = np.array(ex.answer)
    rng = np.random.default_rng(0)
    j = rng.integers(0, task.n_outputs, BATCH)
    wrong[np.arange(BATCH), j] = (wrong[np.arange(BATCH), j] + rng.integers(1, task.p, BATCH)) % task.p
    assert np.all(np.asarray(task.check(ex.prompt, ex.answer)))
    assert not np.any(np.asarray(task.check(ex.prompt, wrong)))


def test_registry_layout_and_no_cot():
    assert make_task("arithmetic_circuit", 4, 4, 6) == TASKS_UNDER_TEST["all_ops"]
    no_cot = ArithmeticCircuitTask(4, 4, 6, with_cot=False)
    ex = no_cot.sample(KEY, BATCH)
    assert ex.cot is None and no_cot.cot_len == 0
    np.testing.assert_array_equal(ex.answer, examples("all_ops").answer)
    config = ml_collections.ConfigDict({"serial_task": "arithmetic_circuit", "cot": True,
                                        "task_args": {"n_inputs": 3, "width": 4, "depth": 5, "p": 5}})
    layout = serial_layout(config)
    ex = layout.task.sample(jax.random.key(0), 4)
    assert (layout.prompt_len, layout.cot_len, layout.answer_len) == (3 + 60, 16, 1)
    assert ex.prompt.shape == (4, 63) and ex.cot.shape == (4, 16) and ex.answer.shape == (4, 1)
    assert layout.sequence(layout.task.sample_one(jax.random.key(1))).shape == (layout.length,)


def test_bad_arguments():
    with pytest.raises(ValueError, match="p must be a prime"):
        ArithmeticCircuitTask(3, 2, 2, p=9)
    with pytest.raises(ValueError, match="p must be an int in 2..61"):
        ArithmeticCircuitTask(3, 2, 2, p=1)
    with pytest.raises(ValueError, match="p must be an int in 2..61"):
        ArithmeticCircuitTask(3, 2, 2, p=67)
    with pytest.raises(ValueError, match="n_inputs must be an int in 1..32768"):
        ArithmeticCircuitTask(0, 2, 2)
    with pytest.raises(ValueError, match="width must be an int in 1..32768"):
        ArithmeticCircuitTask(3, 0, 2)
    with pytest.raises(ValueError, match="depth must be an int >= 1"):
        ArithmeticCircuitTask(3, 2, 0)
    with pytest.raises(ValueError, match="n_outputs must be an int in 1..2"):
        ArithmeticCircuitTask(3, 2, 2, n_outputs=3)
    with pytest.raises(ValueError, match="ops entries must be names"):
        ArithmeticCircuitTask(3, 2, 2, ops=("div",))
    with pytest.raises(ValueError, match="ops must be a non-empty sequence"):
        ArithmeticCircuitTask(3, 2, 2, ops="add")
