"""Arithmetic circuit value over Z_p (paper section 3.5): random layered dependency graphs of modular
arithmetic, the math-QA graphs of Ye et al., "Physics of Language Models: Part 2.1" (2024), in their
circuit form.

A circuit has n input values x_j in Z_p (p prime) and d layers of w two-input gates; gate (l, i) computes

    g[l, i] = op[l, i](g[l-1, a[l, i]], g[l-1, b[l, i]])  mod p,      g[-1] = the inputs,

with op in {add, sub, mul} (a - b for sub). Random circuits (`random_arithmetic_circuit`): every op
uniform on the allowed `ops`, both operands uniform (independently, repeats allowed) on the previous layer
(on the n inputs for layer 0), inputs uniform on Z_p, all from one draw of 3 d w + n words (`common.below`).
Value skew: with mul a zero propagates (0 * y = 0) and sub gives a - a = 0 on a repeated operand, and an
all-zero layer is absorbing, so narrow deep circuits answer 0 far above 1/p. Measured P(answer = 0) at
n = 4, all ops, p = 7 (4096 samples): width 4: 0.43 / 0.73 / 0.99 at depth 4 / 16 / 64; width 8: 0.49 /
0.78 at depth 16 / 64; width 16: 0.34 / 0.39 at depth 16 / 64 (p = 23, width 16: 0.17 / 0.19; ops
add, sub at width 8: ~0.21). Use width >= 16 (or a larger p, or no mul) when depth is the size knob, and
compare accuracy against the majority-answer baseline.

Token layout of `ArithmeticCircuitTask(n_inputs, width, depth, p)` (vocab_size = p + 3 + max(n, w)):

    0 .. p-1           values in Z_p (inputs, gate values, answer)
    p, p+1, p+2        ops add, sub, mul   (p + the OP_NAMES index, whatever subset `ops` allows)
    p + 3 + j          wire index j (0 <= j < max(n, w)): input j for layer 0, gate j of the previous layer

    prompt  = x_0 .. x_{n-1}, then for each layer l = 0..d-1 and gate i = 0..w-1 the triple
              (p + op[l, i], p + 3 + a[l, i], p + 3 + b[l, i])                   length n + 3 d w
    answer  = the values of gates 0 .. n_outputs-1 of the last layer             length n_outputs
    cot     = the gate values of layers 0 .. d-2, layer by layer                  length (d - 1) w

The layout is the one of `circuit_value.CircuitValueTask` with bits replaced by Z_p values and Boolean
gates by modular ops. Distinct prompts: p^n (|ops| n^2)^w (|ops| w^2)^(w (d-1)); e.g. (n, w, d, p) =
(4, 4, 4, 7) with all three ops: 7^4 * 48^16 ~ 2^100.
"""

from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp

from diffserial.pytrees import static_dataclass
from diffserial.serial_tasks.common import MAX_RANGE, Example, LayeredCircuitLayout, SerialTask, below, random_words
from diffserial.validation import check_int

Array = jax.Array

OP_NAMES = ("add", "sub", "mul")
N_OPS = len(OP_NAMES)
MAX_MODULUS = 61  # keeps vocab_size = p + 3 + max(n, w) small


def op_ids_from_names(ops: Sequence[str]) -> tuple[int, ...]:
    """OP_NAMES indices of op names; ValueError listing the valid names otherwise."""
    if isinstance(ops, str) or len(ops) == 0:
        raise ValueError(f"ops must be a non-empty sequence of names from {OP_NAMES}; got {ops!r}")
    for name in ops:
        if name not in OP_NAMES:
            raise ValueError(f"ops entries must be names in {OP_NAMES}; got {name!r}")
    return tuple(OP_NAMES.index(name) for name in ops)


def check_prime(name: str, value, maximum: int) -> int:
    """`value` if it is a prime int in 2..maximum; ValueError otherwise."""
    value = check_int(name, value, 2, maximum)
    if any(value % k == 0 for k in range(2, int(value ** 0.5) + 1)):
        raise ValueError(f"{name} must be a prime; got {value!r}")
    return value


def apply_op(op: Array, a: Array, b: Array, p: int) -> Array:
    """op(a, b) mod p elementwise, op ids 0 add, 1 sub, 2 mul; a, b in 0..p-1 (products fit int32)."""
    value = jnp.where(op == 0, a + b, jnp.where(op == 1, a - b, a * b))
    return jnp.mod(value, p).astype(jnp.int32)


def gate_values(ops: Array, in_a: Array, in_b: Array, inputs: Array, p: int) -> Array:
    """All gate values (d, w) int32, layer by layer (`lax.scan` over layers 1..d-1)."""
    inputs = jnp.asarray(inputs, jnp.int32)
    first = apply_op(ops[0], inputs[in_a[0]], inputs[in_b[0]], p)

    def body(prev, layer):
        op, ia, ib = layer
        value = apply_op(op, prev[ia], prev[ib], p)
        return value, value

    _, rest = jax.lax.scan(body, first, (ops[1:], in_a[1:], in_b[1:]))
    return jnp.concatenate([first[None], rest], axis=0)


def random_arithmetic_circuit(key: Array, n_inputs: int, width: int, depth: int, p: int,
                              op_ids: Sequence[int] = (0, 1, 2)) -> tuple[Array, Array, Array, Array]:
    """(ops, in_a, in_b) int32 (d, w) and inputs (n,) in Z_p, from one draw of 3 d w + n words."""
    size = depth * width
    words = random_words(key, 3 * size + n_inputs)
    ops = jnp.asarray(op_ids, jnp.int32)[below(words[:size], len(op_ids))].reshape(depth, width)
    fan_in = jnp.array([n_inputs] + [width] * (depth - 1), jnp.int32)[:, None]
    wires = below(words[size:3 * size].reshape(2, depth, width), fan_in)
    inputs = below(words[3 * size:], p)
    return ops, wires[0], wires[1], inputs


@static_dataclass
class ArithmeticCircuitTask(LayeredCircuitLayout, SerialTask):
    """Value of a random layered arithmetic circuit over Z_p per example (ops from `ops`); see the module
    docstring for the token layout. cot is None if not with_cot or depth = 1."""

    n_inputs: int
    width: int
    depth: int
    p: int = 7
    ops: tuple[str, ...] = OP_NAMES
    n_outputs: int = 1
    with_cot: bool = True

    def __post_init__(self):
        check_int("n_inputs", self.n_inputs, 1, MAX_RANGE)
        check_int("width", self.width, 1, MAX_RANGE)
        check_int("depth", self.depth, 1)
        check_prime("p", self.p, MAX_MODULUS)
        check_int("n_outputs", self.n_outputs, 1, self.width)
        op_ids_from_names(self.ops)

    @property
    def vocab_size(self) -> int:
        return self.p + N_OPS + max(self.n_inputs, self.width)

    def _encode(self, ops: Array, in_a: Array, in_b: Array, inputs: Array) -> Array:
        wire = self.p + N_OPS
        triples = jnp.stack([self.p + ops, wire + in_a, wire + in_b], axis=-1)
        return jnp.concatenate([inputs, triples.reshape(-1)]).astype(jnp.int32)

    def _decode(self, prompt: Array) -> tuple[Array, Array, Array, Array]:
        """Inverse of `_encode`; out-of-range tokens are clipped into range (this runs under jit)."""
        n, w, d, wire = self.n_inputs, self.width, self.depth, self.p + N_OPS
        inputs = jnp.clip(prompt[:n], 0, self.p - 1)
        triples = prompt[n:n + 3 * d * w].reshape(d, w, 3)
        fan_in = jnp.array([n] + [w] * (d - 1), jnp.int32)[:, None]
        ops = jnp.clip(triples[..., 0] - self.p, 0, N_OPS - 1)
        in_a = jnp.clip(triples[..., 1] - wire, 0, fan_in - 1)
        in_b = jnp.clip(triples[..., 2] - wire, 0, fan_in - 1)
        return ops, in_a, in_b, inputs

    def sample_one(self, key: Array) -> Example:
        """A random circuit and input; answer = first n_outputs gates of the last layer; cot = the other
        layers' values."""
        ops, in_a, in_b, inputs = random_arithmetic_circuit(key, self.n_inputs, self.width, self.depth, self.p,
                                                            op_ids_from_names(self.ops))
        values = gate_values(ops, in_a, in_b, inputs, self.p)
        cot = values[:-1].reshape(-1) if self.cot_len else None
        return Example(prompt=self._encode(ops, in_a, in_b, inputs), answer=values[-1, :self.n_outputs], cot=cot)

    def solve(self, prompt: Array) -> Array:
        """Decode the circuit and evaluate it layer by layer."""
        ops, in_a, in_b, inputs = self._decode(prompt)
        return gate_values(ops, in_a, in_b, inputs, self.p)[-1, :self.n_outputs]
