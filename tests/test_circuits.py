"""diffserial.circuits: the layered-circuit data structure, its numpy reference and JAX evaluators (the
constructions that simulate circuits are tested in tests/constructions/test_circuits.py)."""

import functools

import jax
import numpy as np
import pytest

from diffserial.circuits import AND, NAND, OR, XOR, LayeredCircuit, evaluate, evaluate_jax, random_layered_circuit

fast_jit = functools.partial(jax.jit, compiler_options={"xla_backend_optimization_level": 0})


def test_reference_evaluator_on_a_hand_built_circuit():
    # Layer 0: (x0 XOR x1, x1 AND x2, NAND(x2, x2) = NOT x2); layer 1: (g0 XOR g1, g1 OR g2, g2 AND g0).
    c = LayeredCircuit.create(3, [[XOR, AND, NAND], [XOR, OR, AND]], [[0, 1, 2], [0, 1, 2]], [[1, 2, 2], [1, 2, 0]])
    assert (c.depth, c.width, c.size, c.n_inputs) == (2, 3, 6, 3)
    xs = np.array([[(bits >> k) & 1 for k in range(3)] for bits in range(8)])
    jax_out = np.asarray(fast_jit(jax.vmap(evaluate_jax, in_axes=(None, 0)))(c, xs))
    for x, out in zip(xs, jax_out):
        g = [x[0] ^ x[1], x[1] & x[2], 1 - x[2]]
        expected = [g[0] ^ g[1], g[1] | g[2], g[2] & g[0]]
        np.testing.assert_array_equal(evaluate(c, x), expected)
        np.testing.assert_array_equal(out, expected)
    named = LayeredCircuit.create(3, [["xor", "and", "nand"], ["xor", "or", "and"]], c.in_a, c.in_b)
    np.testing.assert_array_equal(np.asarray(named.gate_types), np.asarray(c.gate_types))


def test_circuit_validation_errors():
    with pytest.raises(ValueError, match="n_inputs must be an int >= 1"):
        LayeredCircuit.create(0, [[AND]], [[0]], [[0]])
    with pytest.raises(ValueError, match="in_a\\[0\\].*inputs 0..1"):
        LayeredCircuit.create(2, [[AND]], [[2]], [[0]])
    with pytest.raises(ValueError, match="in_b\\[1:\\].*previous layer 0..1"):
        LayeredCircuit.create(3, [[AND, OR], [XOR, NAND]], [[0, 1], [0, 1]], [[0, 1], [0, 2]])
    with pytest.raises(ValueError, match="gate_types must lie in 0..3"):
        LayeredCircuit.create(2, [[7]], [[0]], [[0]])
    with pytest.raises(ValueError, match="gate_types names must be in"):
        LayeredCircuit.create(2, [["nor"]], [[0]], [[0]])
    with pytest.raises(ValueError, match="in_a must have the shape of gate_types"):
        LayeredCircuit.create(2, [[AND, OR]], [[0]], [[0, 1]])
    with pytest.raises(ValueError, match="depth must be an int >= 1"):
        random_layered_circuit(0, 2, 2, 0)
    with pytest.raises(ValueError, match="gate_types entries"):
        random_layered_circuit(0, 2, 2, 2, gate_types=("and", "implies"))
    c = random_layered_circuit(jax.random.key(0), 3, 2, 2)
    with pytest.raises(ValueError, match="inputs must have shape"):
        evaluate(c, [0, 1])
    with pytest.raises(ValueError, match="inputs must be bits"):
        evaluate(c, [0, 1, 2])
