"""Layered circuits and their DLM simulations: Thm 3.1 (one layer per round, L = n + N) and Thm 3.2
(remasking on two buffers of width + clock positions), checked against a recursive numpy evaluator."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from diffserial.circuits import evaluate, layer_values, random_layered_circuit
from diffserial.constructions.circuits import (
    circuit_cot,
    circuit_remask,
    clock_bits,
    cot_outputs,
    remask_outputs,
)
from diffserial.constructions.common import MASK, positions_in_use, run_rounds_trajectory

# Tests check exact integer outputs; XLA's backend optimizations only cost compile time here.
fast_jit = functools.partial(jax.jit, compiler_options={"xla_backend_optimization_level": 0})

# (n_inputs, width, depth, n_circuits): 50 random circuits in all.
SHAPES = [(1, 1, 1, 5), (3, 4, 5, 15), (5, 2, 9, 15), (8, 7, 3, 15)]
N_INPUTS_PER_CIRCUIT = 4


def stack(circuits):
    return jax.tree.map(lambda *a: np.stack(a), *circuits)  # host-side: no eager dispatch


def _prepare(shape_index):
    n, w, d, n_circ = SHAPES[shape_index]
    rng = np.random.default_rng(100 + shape_index)
    circuits = [random_layered_circuit(rng, n, w, d) for _ in range(n_circ)]
    inputs = rng.integers(0, 2, size=(n_circ, N_INPUTS_PER_CIRCUIT, n))
    refs = np.array([[evaluate(c, x) for x in xs] for c, xs in zip(circuits, inputs)])
    return circuits, inputs, refs


def _trajectories(circuits, inputs, seed):
    """For a batch of same-shape circuits and their inputs: JAX layer values and both DLMs' trajectories
    (and decoded outputs) over depth + 1 rounds."""
    d = circuits.gate_types.shape[1]

    def one(circuit, x, key):
        cot, rem = circuit_cot(circuit), circuit_remask(circuit)
        cot_traj = run_rounds_trajectory(cot.rule, cot.predictor, cot.initial_sequence(x), key, d + 1)
        rem_traj = run_rounds_trajectory(rem.rule, rem.predictor, rem.initial_sequence(x), key, d + 1)
        return (layer_values(circuit, x), cot_traj, jax.vmap(functools.partial(cot_outputs, circuit))(cot_traj),
                rem_traj, jax.vmap(functools.partial(remask_outputs, circuit))(rem_traj))

    n_circ, n_per = inputs.shape[:2]
    keys = jax.random.split(jax.random.key(seed), n_circ * n_per).reshape(n_circ, n_per)
    return jax.vmap(jax.vmap(one, in_axes=(None, 0, 0)))(circuits, inputs, keys)


@functools.lru_cache(maxsize=None)
def simulate_all():
    """Every shape's circuits, inputs, numpy references and simulations, in one compiled program."""
    prepared = [_prepare(i) for i in range(len(SHAPES))]
    batches = [(stack(circuits), inputs) for circuits, inputs, _ in prepared]
    out = fast_jit(lambda batches: [_trajectories(c, x, i) for i, (c, x) in enumerate(batches)])(batches)
    keys = ("values", "cot_traj", "cot_out", "rem_traj", "rem_out")
    return [dict(circuits=circuits, inputs=inputs, refs=refs, **{k: np.asarray(a) for k, a in zip(keys, arrays)})
            for (circuits, inputs, refs), arrays in zip(prepared, out)]


def simulate(shape_index):
    return simulate_all()[shape_index]


@pytest.mark.parametrize("shape_index", range(len(SHAPES)))
def test_jax_evaluator_and_both_dlms_match_the_numpy_reference(shape_index):
    r = simulate(shape_index)
    n, w, d, _ = SHAPES[shape_index]
    np.testing.assert_array_equal(r["values"][:, :, -1], r["refs"])  # JAX layer-by-layer evaluator
    assert circuit_cot(r["circuits"][0]).n_rounds == circuit_remask(r["circuits"][0]).n_rounds == d
    for key in ("cot_out", "rem_out"):
        np.testing.assert_array_equal(r[key][:, :, d], r["refs"])  # exact after depth rounds
        np.testing.assert_array_equal(r[key][:, :, d + 1], r["refs"])  # and a fixed point afterwards
        assert (r[key][:, :, d - 1] == MASK).all()  # depth - 1 rounds: the output layer is not there yet


@pytest.mark.parametrize("shape_index", range(len(SHAPES)))
def test_cot_round_k_reveals_exactly_layer_k(shape_index):
    r = simulate(shape_index)
    n, w, d, _ = SHAPES[shape_index]
    traj, values, inputs = r["cot_traj"], r["values"], r["inputs"]
    for k in range(d + 2):
        x = traj[:, :, k]
        np.testing.assert_array_equal(x[..., :n], inputs)  # the prompt is never masked
        gates = x[..., n:].reshape(x.shape[:2] + (d, w))
        done = min(k, d)
        np.testing.assert_array_equal(gates[:, :, :done], values[:, :, :done])
        assert (gates[:, :, done:] == MASK).all()
    in_use = positions_in_use(jnp.asarray(traj), n)
    np.testing.assert_array_equal(np.asarray(in_use[0, 0]), np.minimum(np.arange(d + 2), d) * w)  # grows with size


def test_fewer_rounds_than_depth_give_wrong_outputs():
    # With depth - 1 rounds the output layer is still masked; decoding it anyway (fair bits, as a final
    # unmasking of uninformative predictions would) is wrong for a measurable fraction of pairs.
    rng = np.random.default_rng(0)
    wrong, total = 0, 0
    for i in range(len(SHAPES)):
        r = simulate(i)
        d = SHAPES[i][2]
        for key in ("cot_out", "rem_out"):
            early = r[key][:, :, d - 1]
            decoded = np.where(early == MASK, rng.integers(0, 2, size=early.shape), early)
            wrong += int(np.any(decoded != r["refs"], axis=-1).sum())
            total += early.shape[0] * early.shape[1]
    assert wrong / total > 0.4, wrong / total


@pytest.mark.parametrize("shape_index", range(len(SHAPES)))
def test_remask_memory_is_width_plus_clock(shape_index):
    r = simulate(shape_index)
    n, w, d, _ = SHAPES[shape_index]
    b = clock_bits(d)
    assert circuit_remask(r["circuits"][0]).seq_len == n + 2 * (w + b)
    in_use = np.asarray(positions_in_use(jnp.asarray(r["rem_traj"]), n))
    assert in_use.max() <= w + b  # c = 1 (plus the clock) after every round
    assert (in_use[:, :, 1:] == w + b).all() and (in_use[:, :, 0] == 0).all()
    prompts = r["rem_traj"][:, :, :, :n]
    np.testing.assert_array_equal(prompts, np.broadcast_to(r["inputs"][:, :, None, :], prompts.shape))  # kept


def test_remask_length_grows_with_width_not_size():
    narrow_deep = random_layered_circuit(0, n_inputs=4, width=4, depth=1000)
    cot, rem = circuit_cot(narrow_deep), circuit_remask(narrow_deep)
    assert cot.seq_len - cot.n_prompt == 4000
    assert rem.seq_len - rem.n_prompt == 2 * (4 + 10)  # bit_length(1000) = 10
    assert rem.n_rounds == cot.n_rounds == 1000


def test_rules_are_hashable_static_values():
    c = random_layered_circuit(1, 3, 4, 5)
    a, b = circuit_remask(c).rule, circuit_remask(random_layered_circuit(2, 3, 4, 5)).rule
    assert a == b and hash(a) == hash(b)
    assert circuit_cot(c).rule == circuit_cot(c).rule
    assert jax.tree_util.tree_leaves(a) == []


def test_validation_errors():
    c = random_layered_circuit(jax.random.key(0), 3, 2, 2)
    with pytest.raises(ValueError, match="prompt must have shape"):
        circuit_cot(c).initial_sequence(jnp.zeros(2, jnp.int32))
    with pytest.raises(ValueError, match="threshold"):
        circuit_remask(c, threshold=0.5)
