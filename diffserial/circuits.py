"""Layered Boolean circuits: the data structure, a numpy reference evaluator and a JAX layer-by-layer
evaluator, shared by the circuit serial tasks (`serial_tasks.circuit_value`, `serial_tasks.do1`) and the
theorem constructions (`constructions.circuits`).

A `LayeredCircuit` has n inputs and d layers of exactly w two-input gates (any layered circuit
of width <= w is padded to this form). Gate i of layer l (0-indexed) computes

    g_{l,i} = G_{type[l,i]}(v_{l-1}[in_a[l,i]], v_{l-1}[in_b[l,i]]),      v_{-1} = inputs,

with G in {AND, OR, XOR, NAND} (NAND alone is universal; NOT v = NAND(v, v)); the outputs are the last
layer v_{d-1}. Depth d, width w, size N = d w. `evaluate` is a recursive numpy reference (Python bit
operators, no truth table, no JAX); `evaluate_jax` / `layer_values` evaluate layer by layer in JAX.
`random_layered_circuit` draws a circuit host-side (numpy), deterministic in its seed or key.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from diffserial.validation import check_positive_int, is_int

Array = jax.Array

AND, OR, XOR, NAND = 0, 1, 2, 3
GATE_NAMES = ("and", "or", "xor", "nand")
# TRUTH_TABLES[type, 2 a + b] = G_type(a, b), used by the JAX paths only.
TRUTH_TABLES = np.array([[0, 0, 0, 1], [0, 1, 1, 1], [0, 1, 1, 0], [1, 1, 1, 0]], dtype=np.int32)


@functools.partial(jax.tree_util.register_dataclass, data_fields=["gate_types", "in_a", "in_b"],
                   meta_fields=["n_inputs"])
@dataclasses.dataclass(frozen=True, eq=False)
class LayeredCircuit:
    """d layers of w two-input gates over n inputs; arrays int32 of shape (d, w).

    gate_types[l, i] in {AND, OR, XOR, NAND} = {0, 1, 2, 3}; in_a, in_b[l, i] index the previous layer:
    into 0..n-1 (the inputs) for l = 0, into 0..w-1 for l >= 1. Use `create` for a validated circuit;
    the raw constructor (pytree unflattening, possibly on tracers) checks nothing.
    """

    gate_types: Array
    in_a: Array
    in_b: Array
    n_inputs: int

    @property
    def depth(self) -> int:
        return self.gate_types.shape[0]

    @property
    def width(self) -> int:
        return self.gate_types.shape[1]

    @property
    def size(self) -> int:
        return self.depth * self.width

    @classmethod
    def create(cls, n_inputs: int, gate_types, in_a, in_b) -> "LayeredCircuit":
        """Validated circuit; gate_types may hold ints 0..3 or names from GATE_NAMES. Raises ValueError
        naming the offending argument, its value and what was expected."""
        n_inputs = check_positive_int("n_inputs", n_inputs)
        types = np.asarray(gate_types)
        if types.dtype.kind in "US":
            lookup = {name: k for k, name in enumerate(GATE_NAMES)}
            bad = sorted({str(v) for v in types.ravel()} - set(lookup))
            if bad:
                raise ValueError(f"gate_types names must be in {GATE_NAMES}; got {bad}")
            types = np.vectorize(lookup.__getitem__, otypes=[np.int64])(types)
        arrays = {}
        for name, value in (("gate_types", types), ("in_a", in_a), ("in_b", in_b)):
            arr = np.asarray(value)
            if arr.ndim != 2 or arr.shape[0] < 1 or arr.shape[1] < 1:
                raise ValueError(f"{name} must be a 2-D array (depth, width) with depth, width >= 1; got shape {arr.shape}")
            if arr.dtype.kind not in "iu" and not (arr.dtype.kind == "f" and np.all(arr == np.round(arr))):
                raise ValueError(f"{name} must hold integers; got dtype {arr.dtype}")
            arrays[name] = arr.astype(np.int64)
        shape = arrays["gate_types"].shape
        for name in ("in_a", "in_b"):
            if arrays[name].shape != shape:
                raise ValueError(f"{name} must have the shape of gate_types {shape}; got {arrays[name].shape}")
        if np.any((arrays["gate_types"] < 0) | (arrays["gate_types"] >= len(GATE_NAMES))):
            raise ValueError(f"gate_types must lie in 0..{len(GATE_NAMES) - 1} ({GATE_NAMES}); "
                             f"got {arrays['gate_types'].tolist()}")
        width = shape[1]
        for name in ("in_a", "in_b"):
            arr = arrays[name]
            if np.any((arr[0] < 0) | (arr[0] >= n_inputs)):
                raise ValueError(f"{name}[0] (layer 0) must index the inputs 0..{n_inputs - 1}; got {arr[0].tolist()}")
            if np.any((arr[1:] < 0) | (arr[1:] >= width)):
                raise ValueError(f"{name}[1:] must index the previous layer 0..{width - 1}; got {arr[1:].tolist()}")
        return cls(gate_types=jnp.asarray(arrays["gate_types"], jnp.int32), in_a=jnp.asarray(arrays["in_a"], jnp.int32),
                   in_b=jnp.asarray(arrays["in_b"], jnp.int32), n_inputs=n_inputs)


def _rng(key_or_seed) -> np.random.Generator:
    if isinstance(key_or_seed, np.random.Generator):
        return key_or_seed
    if is_int(key_or_seed):
        return np.random.default_rng(int(key_or_seed))
    if isinstance(key_or_seed, jax.Array):
        data = key_or_seed
        if jnp.issubdtype(data.dtype, jax.dtypes.prng_key):
            data = jax.random.key_data(data)
        return np.random.default_rng(np.asarray(data, np.uint32).ravel().tolist())
    raise ValueError(f"key_or_seed must be an int, a numpy Generator or a JAX PRNG key; got {key_or_seed!r}")


def random_layered_circuit(key_or_seed, n_inputs: int, width: int, depth: int,
                           gate_types: Sequence[str | int] = GATE_NAMES) -> LayeredCircuit:
    """Random layered circuit: every gate's type uniform on `gate_types` (names or ids), its two inputs
    uniform (independently, repeats allowed) on the previous layer. Host-side (numpy), deterministic in
    `key_or_seed` (int seed, numpy Generator or JAX key)."""
    for name, value in (("n_inputs", n_inputs), ("width", width), ("depth", depth)):
        check_positive_int(name, value)
    ids = []
    for g in gate_types:
        if isinstance(g, str) and g.lower() in GATE_NAMES:
            ids.append(GATE_NAMES.index(g.lower()))
        elif is_int(g) and 0 <= g < len(GATE_NAMES):
            ids.append(int(g))
        else:
            raise ValueError(f"gate_types entries must be names in {GATE_NAMES} or ids 0..{len(GATE_NAMES) - 1}; got {g!r}")
    if not ids:
        raise ValueError("gate_types must be non-empty; got an empty sequence")
    rng = _rng(key_or_seed)
    types = rng.choice(np.array(ids), size=(depth, width))
    fan_in = np.array([n_inputs] + [width] * (depth - 1))[:, None]
    in_a = np.floor(rng.random((depth, width)) * fan_in).astype(np.int64)
    in_b = np.floor(rng.random((depth, width)) * fan_in).astype(np.int64)
    return LayeredCircuit.create(n_inputs, types, in_a, in_b)


def _check_inputs(circuit: LayeredCircuit, inputs) -> np.ndarray:
    arr = np.asarray(inputs)
    if arr.shape != (circuit.n_inputs,):
        raise ValueError(f"inputs must have shape (n_inputs,) = ({circuit.n_inputs},); got {arr.shape}")
    if not np.all((arr == 0) | (arr == 1)):
        raise ValueError(f"inputs must be bits 0/1; got {arr.tolist()}")
    return arr.astype(np.int64)


_GATE_OPS = {AND: lambda a, b: a & b, OR: lambda a, b: a | b, XOR: lambda a, b: a ^ b,
             NAND: lambda a, b: 1 - (a & b)}


def evaluate(circuit: LayeredCircuit, inputs) -> np.ndarray:
    """Reference output (w,) int64 for bit inputs (n,): recursive evaluation of each output gate with
    memoization, Python bit operators (independent of TRUTH_TABLES and of the JAX evaluator)."""
    x = _check_inputs(circuit, inputs)
    types, in_a, in_b = (np.asarray(a) for a in (circuit.gate_types, circuit.in_a, circuit.in_b))
    memo: dict[tuple[int, int], int] = {}

    def value(layer: int, i: int) -> int:
        if layer < 0:
            return int(x[i])
        if (layer, i) not in memo:
            a, b = value(layer - 1, int(in_a[layer, i])), value(layer - 1, int(in_b[layer, i]))
            memo[layer, i] = _GATE_OPS[int(types[layer, i])](a, b)
        return memo[layer, i]

    return np.array([value(circuit.depth - 1, i) for i in range(circuit.width)], dtype=np.int64)


def gate_values(types: Array, a: Array, b: Array) -> Array:
    """G_type(a, b) by truth-table lookup (a, b in {0, 1})."""
    return jnp.asarray(TRUTH_TABLES)[types, 2 * a + b]


def layer_values(circuit: LayeredCircuit, inputs: Array) -> Array:
    """All gate values (d, w) int32, layer by layer in JAX (`lax.scan` over layers 1..d-1)."""
    inputs = jnp.asarray(inputs, jnp.int32)
    first = gate_values(circuit.gate_types[0], inputs[circuit.in_a[0]], inputs[circuit.in_b[0]])

    def body(prev, layer):
        types, ia, ib = layer
        v = gate_values(types, prev[ia], prev[ib])
        return v, v

    rest = (circuit.gate_types[1:], circuit.in_a[1:], circuit.in_b[1:])
    _, vs = jax.lax.scan(body, first, rest)
    return jnp.concatenate([first[None], vs], axis=0)


def evaluate_jax(circuit: LayeredCircuit, inputs: Array) -> Array:
    """Circuit output (w,) int32 in JAX: the last row of `layer_values`."""
    return layer_values(circuit, inputs)[-1]


__all__ = ["AND", "GATE_NAMES", "NAND", "OR", "TRUTH_TABLES", "XOR", "LayeredCircuit", "evaluate", "evaluate_jax",
           "gate_values", "layer_values", "random_layered_circuit"]
