"""Circuit value problem: prompts parsed here by the documented token layout and evaluated by a recursive
Python evaluator (answers and the chain of thought), the wiring / gate-type law, determinism over batch
sizes and 8 devices, and a checker that rejects every flipped output bit."""

import functools

import jax
import numpy as np
import pytest
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from diffserial.serial_tasks import make_task
from diffserial.serial_tasks.circuit_value import CircuitValueTask

KEY = jax.random.key(11)
BATCH = 16
GATES = {2: lambda a, b: a & b, 3: lambda a, b: a | b, 4: lambda a, b: a ^ b, 5: lambda a, b: 1 - (a & b)}
TASKS_UNDER_TEST = {
    "all_gates": CircuitValueTask(5, 4, 6),
    "nand_multi_output": CircuitValueTask(3, 6, 4, n_outputs=6, gate_types=("nand",)),
    "and_or_depth1": CircuitValueTask(7, 3, 1, gate_types=("and", "or")),
}


def parse(prompt, n, w, d):
    """(inputs, gates[l][i] = (type token, a, b)) from the layout: n bits, then d*w (type, 6+a, 6+b)."""
    inputs = [int(t) for t in prompt[:n]]
    triples = np.asarray(prompt[n:]).reshape(d, w, 3)
    return inputs, [[(int(t), int(a) - 6, int(b) - 6) for t, a, b in layer] for layer in triples]


def recursive_value(inputs, gates, layer, i, memo):
    """Value of gate (layer, i); layer -1 is the inputs."""
    if layer < 0:
        return inputs[i]
    if (layer, i) not in memo:
        kind, a, b = gates[layer][i]
        memo[layer, i] = GATES[kind](recursive_value(inputs, gates, layer - 1, a, memo),
                                     recursive_value(inputs, gates, layer - 1, b, memo))
    return memo[layer, i]


@functools.lru_cache(maxsize=None)
def examples(name):
    return TASKS_UNDER_TEST[name].sample(KEY, BATCH)


@pytest.mark.parametrize("name", list(TASKS_UNDER_TEST))
def test_matches_recursive_evaluator(name):
    task = TASKS_UNDER_TEST[name]
    n, w, d = task.n_inputs, task.width, task.depth
    ex = jax.device_get(examples(name))
    assert ex.prompt.shape == (BATCH, n + 3 * d * w) and ex.answer.shape == (BATCH, task.n_outputs)
    assert ex.prompt.max() < task.vocab_size == 6 + max(n, w)
    for prompt, answer, k in zip(ex.prompt, ex.answer, range(BATCH)):
        inputs, gates = parse(prompt, n, w, d)
        memo = {}
        np.testing.assert_array_equal(answer, [recursive_value(inputs, gates, d - 1, i, memo)
                                               for i in range(task.n_outputs)])
        if d > 1:
            cot = [recursive_value(inputs, gates, l, i, memo) for l in range(d - 1) for i in range(w)]
            np.testing.assert_array_equal(ex.cot[k], cot)
    assert (ex.cot is None) == (d == 1)


def test_random_circuit_law():
    """Gate types only from the allowed set and all of them used; wires in range and covering it."""
    for name, allowed in [("all_gates", {2, 3, 4, 5}), ("nand_multi_output", {5}), ("and_or_depth1", {2, 3})]:
        task = TASKS_UNDER_TEST[name]
        ex = jax.device_get(examples(name))
        gates = np.asarray(ex.prompt)[:, task.n_inputs:].reshape(BATCH, task.depth, task.width, 3)
        assert set(np.unique(gates[..., 0]).tolist()) == allowed
        wires = gates[..., 1:] - 6
        assert set(np.unique(wires[:, 0]).tolist()) == set(range(task.n_inputs))
        if task.depth > 1:
            assert set(np.unique(wires[:, 1:]).tolist()) == set(range(task.width))
        assert set(np.unique(ex.prompt[:, :task.n_inputs]).tolist()) == {0, 1}


@pytest.mark.parametrize("name", list(TASKS_UNDER_TEST))
def test_checker_accepts_truth_rejects_flipped_bit(name):
    task = TASKS_UNDER_TEST[name]
    ex = examples(name)
    wrong = np.array(ex.answer)
    wrong[np.arange(BATCH), np.random.default_rng(0).integers(0, task.n_outputs, BATCH)] ^= 1
    assert np.all(np.asarray(task.check(ex.prompt, ex.answer)))
    assert not np.any(np.asarray(task.check(ex.prompt, wrong)))


def test_same_key_same_data_across_batch_sizes_and_devices():
    task = TASKS_UNDER_TEST["all_gates"]
    full = examples("all_gates")
    small = task.sample(KEY, 3)
    sharded = task.sample(KEY, BATCH, NamedSharding(Mesh(np.array(jax.devices()), ("data",)), PartitionSpec("data")))
    tail = task.sample_at(KEY, np.arange(13, 16))  # 3 rows: the program compiled for batch 3
    for name in ("prompt", "answer", "cot"):
        np.testing.assert_array_equal(getattr(small, name), getattr(full, name)[:3])
        np.testing.assert_array_equal(getattr(sharded, name), getattr(full, name))
        np.testing.assert_array_equal(getattr(tail, name), getattr(full, name)[13:])


def test_registry_and_bad_arguments():
    assert make_task("circuit_value", 5, 4, 6) == TASKS_UNDER_TEST["all_gates"]
    with pytest.raises(ValueError, match="gate_types entries must be names"):
        CircuitValueTask(3, 2, 2, gate_types=("not",))
    with pytest.raises(ValueError, match="n_outputs must be an int in 1..2"):
        CircuitValueTask(3, 2, 2, n_outputs=3)
    with pytest.raises(ValueError, match="width must be an int in 1..32768"):
        CircuitValueTask(3, 0, 2)


def parse_relative(prompt, n, w, d):
    """(inputs, gates) from the relative layout: n bits, d*w type tokens, then d*w in_a and d*w in_b offset
    tokens 6 + (j - i + w - 1) for wire j of gate i."""
    inputs = [int(t) for t in prompt[:n]]
    types, in_a, in_b = (np.asarray(prompt[n + k * d * w:n + (k + 1) * d * w]).reshape(d, w) for k in range(3))
    return inputs, [[(int(types[l, i]), int(in_a[l, i]) - 6 - (w - 1) + i, int(in_b[l, i]) - 6 - (w - 1) + i)
                     for i in range(w)] for l in range(d)]


@pytest.mark.parametrize("n, w, d", [(5, 4, 6), (3, 6, 3), (4, 4, 2)])
def test_relative_wiring_matches_recursive_evaluator_and_absolute_layout(n, w, d):
    """Same key: the relative layout holds the same circuit as the absolute one (wire offsets in range),
    answer and cot match the recursive evaluator, and the checker accepts the truth."""
    rel, ab = CircuitValueTask(n, w, d, wiring="relative"), CircuitValueTask(n, w, d)
    ex, ex_abs = jax.device_get(rel.sample(KEY, BATCH)), jax.device_get(ab.sample(KEY, BATCH))
    assert rel.vocab_size == 6 + max(n, w) + w - 1 and ex.prompt.max() < rel.vocab_size
    np.testing.assert_array_equal(ex.answer, ex_abs.answer)
    for k, prompt in enumerate(ex.prompt):
        inputs, gates = parse_relative(prompt, n, w, d)
        assert (inputs, gates) == parse(ex_abs.prompt[k], n, w, d)
        memo = {}
        np.testing.assert_array_equal(ex.answer[k], [recursive_value(inputs, gates, d - 1, 0, memo)])
        np.testing.assert_array_equal(ex.cot[k], [recursive_value(inputs, gates, l, i, memo)
                                                  for l in range(d - 1) for i in range(w)])
    assert bool(np.all(rel.check(ex.prompt, ex.answer)))
    with pytest.raises(ValueError, match="wiring must be one of"):
        CircuitValueTask(n, w, d, wiring="sideways")
