"""The circuit value problem (CVP, P-complete; Ladner 1975) on random layered circuits.

Circuits are `diffserial.circuits.LayeredCircuit`s (n inputs, d layers of w two-input gates,
gate (l, i) = G_type(v_{l-1}[in_a], v_{l-1}[in_b]), v_{-1} = the inputs) and are evaluated by its
`layer_values`; this module only draws them in JAX (one circuit per example) and tokenizes them.

`random_circuit(key, n, w, d, gate_ids)`: every gate's type uniform on `gate_ids`, its two inputs uniform
(independently, repeats allowed) on the previous layer (on the n inputs for layer 0), input bits uniform.
This is the law of `circuits.random_layered_circuit` (up to the m / 2^32 bias of `common.below`), drawn
with JAX instead of numpy.

Token layout of `CircuitValueTask(n_inputs, width, depth)` (vocab_size = 6 + max(n, w)):

    0, 1               bits (inputs, gate values, answer)
    2, 3, 4, 5         gate types AND, OR, XOR, NAND  (2 + the `circuits` type id)
    6 + j              wire index j (0 <= j < max(n, w)): input j for layer 0, gate j of the previous layer

    prompt  = x_0 .. x_{n-1}, then for each layer l = 0..d-1 and gate i = 0..w-1 the triple
              (2 + type[l, i], 6 + in_a[l, i], 6 + in_b[l, i])                      length n + 3 d w
    answer  = the values of gates 0 .. n_outputs-1 of the last layer                length n_outputs
    cot     = the gate values of layers 0 .. d-2, layer by layer                     length (d - 1) w

With n_outputs = 1 this is the standard single-output CVP; the chain of thought is one circuit layer per
block of w tokens (Thm 3.1 of the DLM paper: one layer per round).

`wiring="relative"` writes the same circuit so that every lookup the chain of thought needs is a relative
offset (what rotary attention expresses; vocab_size = 6 + max(n, w) + w - 1):

    6 + (j - i + w - 1)   a wire of gate i naming wire j of the previous layer, by its offset
                          delta = j - i in -(w-1) .. max(n, w)-1
    prompt  = x_0 .. x_{n-1}, then the d w types (2 + type), then the d w in_a offsets, then the d w
              in_b offsets, each stream layer by layer                                length n + 3 d w

In the absolute layout, the cot token of gate (l, i) finds its triple at a distance that depends on (l, i)
and its operands at positions named by absolute wire numbers, neither of which a relative-position model
can read without knowing its own absolute position; in the relative one its type and wires are at fixed
distances from it (one per stream) and its operands at distances set by the offset token alone: delta - w
into the previous cot block, or delta - (prompt length) into the inputs for layer 0.
"""

from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp

from diffserial.circuits import GATE_NAMES, LayeredCircuit, layer_values
from diffserial.pytrees import static_dataclass
from diffserial.serial_tasks.common import MAX_RANGE, Example, LayeredCircuitLayout, SerialTask, below, random_words, top_bit
from diffserial.validation import check_choice, check_int

Array = jax.Array

N_BIT_TOKENS = 2
TYPE_OFFSET = N_BIT_TOKENS
WIRE_OFFSET = TYPE_OFFSET + len(GATE_NAMES)


def gate_ids_from_names(gate_types: Sequence[str]) -> tuple[int, ...]:
    """Type ids of gate names (in GATE_NAMES); ValueError listing the valid names otherwise."""
    if isinstance(gate_types, str) or len(gate_types) == 0:
        raise ValueError(f"gate_types must be a non-empty sequence of names from {GATE_NAMES}; got {gate_types!r}")
    for name in gate_types:
        if name not in GATE_NAMES:
            raise ValueError(f"gate_types entries must be names in {GATE_NAMES}; got {name!r}")
    return tuple(GATE_NAMES.index(name) for name in gate_types)


def circuit_vocab_size(n_inputs: int, width: int, wiring: str = "absolute") -> int:
    """Bits, gate types and wire tokens: 6 + max(n, w) wire numbers, or 6 + max(n, w) + w - 1 offsets
    (relative)."""
    return WIRE_OFFSET + max(n_inputs, width) + (0 if wiring == "absolute" else width - 1)


def layer_fan_in(n_inputs: int, width: int, depth: int) -> Array:
    """(d, 1) int32: how many wires gate (l, .) can name, n for layer 0 and w for layers >= 1."""
    return jnp.array([n_inputs] + [width] * (depth - 1), jnp.int32)[:, None]


def random_wiring(words: Array, n_inputs: int, width: int, depth: int) -> tuple[Array, Array]:
    """(in_a, in_b) int32 (d, w) from 2 d w random words: uniform on 0..n-1 for layer 0 and on 0..w-1
    for layers >= 1 (`common.below`)."""
    fan_in = layer_fan_in(n_inputs, width, depth)
    wires = below(words.reshape(2, depth, width), fan_in)
    return wires[0], wires[1]


def random_circuit(key: Array, n_inputs: int, width: int, depth: int,
                   gate_ids: Sequence[int] = (0, 1, 2, 3)) -> tuple[LayeredCircuit, Array]:
    """(circuit, inputs): gate types uniform on `gate_ids`, wiring by `random_wiring`, inputs (n,)
    uniform bits, all from one draw of 3 d w + n words. Pure JAX (the circuit's arrays may be traced)."""
    size = depth * width
    words = random_words(key, 3 * size + n_inputs)
    types = jnp.asarray(gate_ids, jnp.int32)[below(words[:size], len(gate_ids))].reshape(depth, width)
    in_a, in_b = random_wiring(words[size:3 * size], n_inputs, width, depth)
    inputs = top_bit(words[3 * size:])
    return LayeredCircuit(gate_types=types, in_a=in_a, in_b=in_b, n_inputs=n_inputs), inputs


def encode_circuit(circuit: LayeredCircuit, inputs: Array) -> Array:
    """Prompt tokens (n + 3 d w,): the inputs, then (type, in_a, in_b) per gate, layer by layer."""
    triples = jnp.stack([TYPE_OFFSET + circuit.gate_types, WIRE_OFFSET + circuit.in_a,
                         WIRE_OFFSET + circuit.in_b], axis=-1)
    return jnp.concatenate([jnp.asarray(inputs, jnp.int32), triples.reshape(-1).astype(jnp.int32)])


def decode_circuit(prompt: Array, n_inputs: int, width: int, depth: int) -> tuple[LayeredCircuit, Array]:
    """Inverse of `encode_circuit` for a well-formed prompt (n + 3 d w,). Out-of-range tokens are clipped
    into range (the result is then some valid circuit, not an error: this runs under jit)."""
    inputs = jnp.clip(prompt[:n_inputs], 0, 1)
    triples = prompt[n_inputs:n_inputs + 3 * depth * width].reshape(depth, width, 3)
    fan_in = layer_fan_in(n_inputs, width, depth)
    types = jnp.clip(triples[..., 0] - TYPE_OFFSET, 0, len(GATE_NAMES) - 1)
    in_a = jnp.clip(triples[..., 1] - WIRE_OFFSET, 0, fan_in - 1)
    in_b = jnp.clip(triples[..., 2] - WIRE_OFFSET, 0, fan_in - 1)
    return LayeredCircuit(gate_types=types, in_a=in_a, in_b=in_b, n_inputs=n_inputs), inputs


def encode_relative(circuit: LayeredCircuit, inputs: Array) -> Array:
    """Prompt tokens (n + 3 d w,) of the relative layout: the inputs, the types, the in_a offsets, the in_b
    offsets (6 + j - i + w - 1 for wire j of gate i)."""
    width = circuit.width
    gate = jnp.arange(width, dtype=jnp.int32)
    streams = [TYPE_OFFSET + circuit.gate_types, WIRE_OFFSET + circuit.in_a - gate + width - 1,
               WIRE_OFFSET + circuit.in_b - gate + width - 1]
    return jnp.concatenate([jnp.asarray(inputs, jnp.int32)] + [s.reshape(-1).astype(jnp.int32) for s in streams])


def decode_relative(prompt: Array, n_inputs: int, width: int, depth: int) -> tuple[LayeredCircuit, Array]:
    """Inverse of `encode_relative` for a well-formed prompt; out-of-range tokens are clipped into range."""
    inputs = jnp.clip(prompt[:n_inputs], 0, 1)
    types, in_a, in_b = prompt[n_inputs:n_inputs + 3 * depth * width].reshape(3, depth, width)
    fan_in = layer_fan_in(n_inputs, width, depth)
    gate = jnp.arange(width, dtype=jnp.int32)
    wire = lambda tokens: jnp.clip(tokens - WIRE_OFFSET - width + 1 + gate, 0, fan_in - 1)
    return (LayeredCircuit(gate_types=jnp.clip(types - TYPE_OFFSET, 0, len(GATE_NAMES) - 1), in_a=wire(in_a),
                           in_b=wire(in_b), n_inputs=n_inputs), inputs)


WIRINGS = {"absolute": (encode_circuit, decode_circuit), "relative": (encode_relative, decode_relative)}


def check_circuit_shape(n_inputs, width, depth) -> None:
    """ValueError unless n_inputs, width (both at most MAX_RANGE, the wire-sampling limit) and depth are
    ints >= 1."""
    check_int("n_inputs", n_inputs, 1, MAX_RANGE)
    check_int("width", width, 1, MAX_RANGE)
    check_int("depth", depth, 1)


@static_dataclass
class CircuitValueTask(LayeredCircuitLayout, SerialTask):
    """CVP on a random layered circuit per example (gate types from `gate_types`); see the module
    docstring for the token layouts (`wiring` "absolute" or "relative"). cot is None if not with_cot or
    depth = 1."""

    n_inputs: int
    width: int
    depth: int
    n_outputs: int = 1
    gate_types: tuple[str, ...] = GATE_NAMES
    with_cot: bool = True
    wiring: str = "absolute"

    def __post_init__(self):
        check_circuit_shape(self.n_inputs, self.width, self.depth)
        check_choice("wiring", self.wiring, tuple(WIRINGS))
        check_int("n_outputs", self.n_outputs, 1, self.width)
        gate_ids_from_names(self.gate_types)

    @property
    def vocab_size(self) -> int:
        return circuit_vocab_size(self.n_inputs, self.width, self.wiring)

    def sample_one(self, key: Array) -> Example:
        """A random circuit and input; answer = first n_outputs gates of the last layer; cot = the other
        layers' values."""
        circuit, inputs = random_circuit(key, self.n_inputs, self.width, self.depth,
                                         gate_ids_from_names(self.gate_types))
        values = layer_values(circuit, inputs)
        cot = values[:-1].reshape(-1) if self.cot_len else None
        encode, _ = WIRINGS[self.wiring]
        return Example(prompt=encode(circuit, inputs), answer=values[-1, :self.n_outputs], cot=cot)

    def solve(self, prompt: Array) -> Array:
        """Decode the circuit and evaluate it layer by layer (`circuits.layer_values`)."""
        _, decode = WIRINGS[self.wiring]
        circuit, inputs = decode(prompt, self.n_inputs, self.width, self.depth)
        return layer_values(circuit, inputs)[-1, :self.n_outputs]
