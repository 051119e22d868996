"""DO1 (paper appendix G): the circuits are alternating, d_1 equals a longest-path recursion written here,
the optimal values V* of the forced-choice environment equal a brute force over every set of chosen gates,
the checker accepts exactly the optimal first actions, and the switchover read-out satisfies the bounds of
the proof of Thm G.2 for exact and for eps-approximate value functions."""

import functools
import itertools
import math

import jax
import numpy as np
import pytest
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from diffserial.serial_tasks import make_task
from diffserial.serial_tasks.do1 import Do1ForcedChoiceTask, Do1Task, switchover_estimate

KEY = jax.random.key(5)
BATCH = 16
AND_TOKEN, OR_TOKEN = 2, 3
PREDICT = Do1Task(6, 4, 8)                 # |C| = 32
CHOICE = Do1ForcedChoiceTask(3, 2, 3)      # |C| = 6: m = 3, chains of 1, 2, 4, 8 gates


@functools.lru_cache(maxsize=None)
def examples(name):
    return jax.device_get({"predict": PREDICT, "choice": CHOICE}[name].sample(KEY, BATCH))


def reference(prompt, n, w, d):
    """(depth, value) dicts of every gate (l, i) by recursion on the circuit graph parsed from the tokens:
    depth = 1 + max depth of the two sources (inputs have depth 0). Also asserts alternation."""
    inputs = [int(t) for t in prompt[:n]]
    gates = np.asarray(prompt[n:n + 3 * d * w]).reshape(d, w, 3)
    ops = {AND_TOKEN: lambda a, b: a & b, OR_TOKEN: lambda a, b: a | b}
    depth, value = {}, {}

    def visit(l, i):
        if l < 0:
            return 0, inputs[i]
        if (l, i) not in depth:
            kind, a, b = (int(t) for t in gates[l, i])
            (da, va), (db, vb) = visit(l - 1, a - 6), visit(l - 1, b - 6)
            if l > 0:  # alternation: an AND feeds on ORs and an OR on ANDs
                assert {int(gates[l - 1, a - 6, 0]), int(gates[l - 1, b - 6, 0])} == {AND_TOKEN + OR_TOKEN - kind}
            depth[l, i], value[l, i] = 1 + max(da, db), ops[kind](va, vb)
        return depth[l, i], value[l, i]

    for l, i in itertools.product(range(d), range(w)):
        visit(l, i)
    return depth, value


def reference_d1(depth, value):
    return max([depth[g] for g in depth if value[g] == 1], default=0)


def test_d1_matches_longest_path_recursion():
    task = PREDICT
    ex = examples("predict")
    assert ex.answer.shape == (BATCH, 1) and ex.cot.shape == (BATCH, task.depth * task.width)
    d1s = []
    for prompt, answer, cot in zip(ex.prompt, ex.answer, ex.cot):
        depth, value = reference(prompt, task.n_inputs, task.width, task.depth)
        assert int(gates_type(prompt, task, 0)) == OR_TOKEN  # the first layer is OR: chains start OR -> AND
        d1s.append(reference_d1(depth, value))
        assert answer[0] == task.depth_offset + d1s[-1]
        np.testing.assert_array_equal(cot, [value[l, i] for l in range(task.depth) for i in range(task.width)])
    assert len(set(d1s)) >= 2 and ex.answer.max() < task.vocab_size
    assert np.all(np.asarray(task.check(ex.prompt, ex.answer)))
    assert not np.any(np.asarray(task.check(ex.prompt, ex.answer + 1 - 2 * (ex.answer == task.vocab_size - 1))))


def gates_type(prompt, task, layer):
    return prompt[task.n_inputs + 3 * layer * task.width]


def brute_force_values(depth, value, chain_length):
    """V*(s_g) for every gate and V*(s_chain) from the environment's rules: after the first gate, any set
    of further gates may be chosen (H >= |C| steps); reward = max depth if every chosen gate outputs 1."""
    gates = list(depth)

    def reward(chosen):
        return max(depth[g] for g in chosen) if all(value[g] for g in chosen) else 0

    v_gate = {g: max(reward((g,) + rest) for r in range(len(gates)) for rest in itertools.combinations(gates, r))
              for g in gates}
    chain = range(1, chain_length + 1)  # chain gate j has depth j and outputs 1 (input 1, OR/AND of 1s)
    v_chain = max(max((1,) + rest) for r in range(chain_length) for rest in itertools.combinations(chain[1:], r))
    return v_gate, v_chain


def test_forced_choice_values_and_checker_match_brute_force():
    task = CHOICE
    ex = examples("choice")
    values = jax.jit(jax.vmap(task.values))(ex.prompt)
    circuit_tok, chain_tok = task.circuit_token, task.chain_token
    accepts = {tok: np.asarray(task.check(ex.prompt, np.full((BATCH, 1), tok))) for tok in (circuit_tok, chain_tok)}
    for b, prompt in enumerate(ex.prompt):
        depth, value = reference(prompt, task.n_inputs, task.width, task.depth)
        exponent = int(prompt[-1]) - task.exponent_offset
        v_gate, v_chain = brute_force_values(depth, value, 2 ** exponent)
        np.testing.assert_array_equal(values[0][b], [[v_gate[l, i] for i in range(task.width)]
                                                     for l in range(task.depth)])
        assert values[1][b] == v_chain == 2 ** exponent
        best_circuit = max(v_gate.values())
        assert accepts[circuit_tok][b] == (best_circuit >= v_chain)
        assert accepts[chain_tok][b] == (v_chain >= best_circuit)
        assert ex.answer[b, 0] == (chain_tok if v_chain >= best_circuit else circuit_tok)
    assert set(ex.prompt[:, -1] - task.exponent_offset) <= set(range(task.n_exponents)) and task.n_exponents == 4
    assert not np.any(np.asarray(task.check(ex.prompt, np.full((BATCH, 1), task.exponent_offset))))


def test_checker_accepts_both_actions_at_a_tie():
    """Hand-built circuit with d_1 = 1 (one OR of layer 0 fires): chain length 1 is a tie, longer chains win."""
    task = CHOICE
    inputs = [1, 0, 0]
    layers = [[(OR_TOKEN, 0, 0), (OR_TOKEN, 1, 2)], [(AND_TOKEN, 1, 1), (AND_TOKEN, 1, 0)],
              [(OR_TOKEN, 0, 1), (OR_TOKEN, 1, 1)]]
    circuit = inputs + [t for layer in layers for kind, a, b in layer for t in (kind, 6 + a, 6 + b)]
    assert reference_d1(*reference(np.array(circuit), 3, 2, 3)) == 1
    exponents = np.arange(BATCH) % task.n_exponents
    prompts = np.array([circuit + [task.exponent_offset + e] for e in exponents])
    for token, expected in [(task.circuit_token, exponents == 0), (task.chain_token, np.ones(BATCH, bool))]:
        np.testing.assert_array_equal(task.check(prompts, np.full((BATCH, 1), token)), expected)


def test_switchover_read_out_from_the_exact_checker():
    """Agent = the exact checker asked 'is CHAIN optimal?' in E_0..E_m: d' = 2^ceil(log2 d_1) in [d_1, 2 d_1)."""
    task = Do1ForcedChoiceTask(PREDICT.n_inputs, PREDICT.width, PREDICT.depth)
    ex = examples("predict")
    prompts = np.concatenate([np.asarray(task.environment_prompts(p)) for p in ex.prompt[:4]])
    m1 = task.n_exponents
    assert m1 == 6 and prompts.shape == (4 * m1, task.prompt_len)
    chain_optimal = np.asarray(task.check(prompts, np.full((len(prompts), 1), task.chain_token))).reshape(4, m1)
    estimates = np.asarray(switchover_estimate(chain_optimal, task.n_gates))
    for prompt, estimate in zip(ex.prompt[:4], estimates):
        d1 = reference_d1(*reference(prompt, task.n_inputs, task.width, task.depth))
        assert estimate == (2 ** math.ceil(math.log2(d1)) if d1 >= 1 else 1)


def test_switchover_bounds_for_approximate_value_functions():
    """Any V with V(s) in [eps V*(s), V*(s)]: eps d_1 <= d' < 2 d_1 / eps (proof of Thm G.2(a))."""
    rng = np.random.default_rng(0)
    n_gates, m1, trials = 32, 6, 4000
    for eps in (1.0, 0.5, 0.2):
        d1 = rng.integers(1, n_gates + 1, trials)
        chain = 2.0 ** np.arange(m1) * rng.uniform(eps, 1, (trials, m1))
        best_gate = d1[:, None] * rng.uniform(eps, 1, (trials, m1))  # max_g V(s_g): some gate has V* = d_1
        estimate = np.asarray(switchover_estimate(chain >= best_gate, n_gates))
        assert np.all(eps * d1 <= estimate) and np.all(estimate < 2 * d1 / eps)
    np.testing.assert_array_equal(switchover_estimate(np.array([[False] * 3, [True] * 3, [False, True, True]]), 5),
                                  [5, 1, 2])


def test_same_key_same_data_across_batch_sizes_and_devices():
    task = CHOICE
    full = examples("choice")
    small = task.sample(KEY, 3)
    sharded = task.sample(KEY, BATCH, NamedSharding(Mesh(np.array(jax.devices()), ("data",)), PartitionSpec("data")))
    tail = task.sample_at(KEY, np.arange(13, 16))  # 3 rows: the program compiled for batch 3
    for name in ("prompt", "answer", "cot"):
        np.testing.assert_array_equal(getattr(small, name), getattr(full, name)[:3])
        np.testing.assert_array_equal(getattr(sharded, name), getattr(full, name))
        np.testing.assert_array_equal(getattr(tail, name), getattr(full, name)[13:])


def test_registry_and_bad_arguments():
    assert make_task("do1", 6, 4, 8) == PREDICT and make_task("do1_2afc", 3, 2, 3) == CHOICE
    with pytest.raises(ValueError, match="input_density"):
        Do1Task(3, 2, 2, input_density=1.5)
    with pytest.raises(ValueError, match="depth must be an int >= 1"):
        Do1ForcedChoiceTask(3, 2, 0)
    assert CHOICE.vocab_size == 6 + 3 + 4 + 2 and PREDICT.vocab_size == 6 + 6 + 9
