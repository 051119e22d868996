"""Depth-of-1 (DO1) of alternating AND/OR circuits and the two-alternative forced-choice (2AFC)
environment of Theorem G.2 ("The Serial Scaling Hypothesis", appendix G).

Definitions (appendix G.1). A circuit is alternating when every AND gate feeds only OR gates and every
OR gate only AND gates. The depth of a gate is the length of the longest path from a circuit input to it
(a chain OR -> AND -> OR ... has depths 1, 2, 3, ...). The depth-of-1 of (C, x) is

    d_1(C, x) = max{depth(g) : gate g outputs 1 on x},     0 if no gate outputs 1.

Approximating d_1 within any constant factor is P-complete (Thm G.1, Korousis & Spirakis 1988).

Circuits here (an interpretation: the appendix allows any alternating circuit) are layered
`LayeredCircuit`s whose layer l is all OR for even l and all AND for odd l, every gate reading two gates
of layer l - 1 (two inputs for l = 0), so they are alternating and every gate of layer l has depth l + 1:
d_1 = 1 + the last layer holding a 1. Wiring as in `circuit_value.random_wiring`, inputs i.i.d.
Bernoulli(input_density). Monotone: values drift to all-0 (then d_1 < d) or all-1 (d_1 = d) with depth,
so d_1 concentrates on small values and on d; the tests report the empirical law.

`Do1Task` (prediction): prompt = the circuit as in `circuit_value` (types, wires, inputs), answer = one
depth token for d_1 in 0..d, cot = all gate values layer by layer (d w bits).

The DO1 environment (appendix G.2) for (C, x) and a chain length k: at t = 0 the agent sees (C, x) and an
alternating chain of length k with input 1; its first action selects a gate of one of the two circuits
(the other circuit is removed: the forced choice); afterwards it may select one more gate per step for
H = max(k, |C|) steps; the terminal reward is the largest depth among the chosen gates if all of them
output 1, else 0. Optimal values after the first action (derived from these rules, checked by brute force
in the tests):

    V*(s_g)     = d_1(C, x) if gate g outputs 1, else 0      (then select a gate of depth d_1 outputting 1)
    V*(s_chain) = k                                           (every chain gate outputs 1; select the last)

so choosing C is optimal iff d_1 >= k and the chain iff k >= d_1.

`Do1ForcedChoiceTask`: |C| = d w gates, m = ceil(log2 |C|) (2^{m-1} < |C| <= 2^m), k = 2^l with l
uniform on 0..m (the environments E_0 .. E_m of the proof of Thm G.2(a)). Prompt = circuit tokens + one
chain-exponent token for l; answer = one action token (CIRCUIT or CHAIN), canonically CHAIN iff
2^l >= d_1; the checker accepts every optimal action (both at a tie). cot = all gate values.

Switchover read-out (proof of Thm G.2(a)). Given, for one (C, x), whether an agent weakly prefers the
chain in E_l (V(s_chain^(l)) >= max_g V(s_g^(l))) for l = 0..m, `switchover_estimate` returns
d' = 2^{l*} with l* the smallest l at which the chain is preferred, and d' = |C| if it never is.
Interpretation: the paper writes "k = smallest l such that V(s_chain) <= max_g V(s_g), d' = 2^{m-k}",
which contradicts its own text (the chain wins for large l and loses for small l; its special cases
"rejects the chain even for l = 0 -> |C|" and "always picks the chain -> 1" only make sense for the
switch to the chain); we index environments by l = log2 k. With the exact values V*, d_1 <= d' < 2 d_1
for d_1 >= 1 (d' = 1 for d_1 <= 1); for any V in [eps V*, V*], eps d_1 <= d' < 2 d_1 / eps.

Token layout (vocab_size = 6 + max(n, w) + (d + 1) for `Do1Task`, 6 + max(n, w) + (m + 1) + 2 for
`Do1ForcedChoiceTask`): ids below 6 + max(n, w) as in `circuit_value` (bits, gate types AND = 2, OR = 3,
wire indices); then depth tokens d_1 = 0..d (Do1Task) or chain exponents l = 0..m followed by CIRCUIT,
CHAIN (Do1ForcedChoiceTask).
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp

from diffserial.circuits import AND, OR, LayeredCircuit, layer_values
from diffserial.pytrees import static_dataclass
from diffserial.serial_tasks.circuit_value import (
    check_circuit_shape,
    circuit_vocab_size,
    decode_circuit,
    encode_circuit,
    random_wiring,
)
from diffserial.serial_tasks.common import Example, SerialTask, below, bernoulli, random_words

Array = jax.Array


def alternating_types(width: int, depth: int) -> Array:
    """(d, w) gate types: OR on even layers (depth 1, 3, ...), AND on odd layers."""
    return jnp.where(jnp.arange(depth)[:, None] % 2 == 0, OR, AND) * jnp.ones((1, width), jnp.int32)


def n_circuit_words(n_inputs: int, width: int, depth: int) -> int:
    """Random words used by `alternating_circuit_from_words`: 2 d w + n."""
    return 2 * depth * width + n_inputs


def alternating_circuit_from_words(words: Array, n_inputs: int, width: int, depth: int,
                                   input_density: float = 0.5) -> tuple[LayeredCircuit, Array]:
    """(circuit, inputs) from `n_circuit_words` random words: layered alternating circuit
    (`alternating_types`), uniform wiring, inputs (n,) i.i.d. Bernoulli(input_density)."""
    size = depth * width
    in_a, in_b = random_wiring(words[:2 * size], n_inputs, width, depth)
    inputs = bernoulli(words[2 * size:], input_density)
    circuit = LayeredCircuit(gate_types=alternating_types(width, depth), in_a=in_a, in_b=in_b,
                             n_inputs=n_inputs)
    return circuit, inputs


def depth_of_one(values: Array) -> Array:
    """d_1 = max{l + 1 : layer l of the gate values (d, w) holds a 1}, 0 if none (int32 scalar). Valid
    for layered circuits, where every gate of layer l has depth l + 1."""
    depths = jnp.arange(1, values.shape[0] + 1, dtype=jnp.int32)
    return jnp.max(jnp.where(jnp.any(values == 1, axis=1), depths, 0))


def optimal_values(values: Array, chain_length: Array) -> tuple[Array, Array]:
    """(V*(s_g) for every gate (d, w), V*(s_chain)) after the first action of the DO1 environment:
    d_1 times the gate's value, and the chain length (module docstring)."""
    return depth_of_one(values) * values, jnp.asarray(chain_length, jnp.int32)


def n_chain_exponents(n_gates: int) -> int:
    """m + 1 with m = ceil(log2 |C|), i.e. 2^{m-1} < |C| <= 2^m (m = 0 for |C| = 1)."""
    return math.ceil(math.log2(n_gates)) + 1


def switchover_estimate(chain_preferred: Array, n_gates: int) -> Array:
    """d' = 2^{l*}, l* = the smallest l with chain_preferred[..., l] (environments l = 0..m), or
    n_gates if the chain is never preferred; int32 (...)."""
    chain_preferred = jnp.asarray(chain_preferred, bool)
    first = jnp.argmax(chain_preferred, axis=-1).astype(jnp.int32)
    return jnp.where(jnp.any(chain_preferred, axis=-1), 2 ** first, n_gates).astype(jnp.int32)


@static_dataclass
class Do1Task(SerialTask):
    """Predict d_1 of a random layered alternating circuit; see the module docstring."""

    n_inputs: int
    width: int
    depth: int
    input_density: float = 0.5
    with_cot: bool = True

    def __post_init__(self):
        check_circuit_shape(self.n_inputs, self.width, self.depth)
        _check_density(self.input_density)

    @property
    def depth_offset(self) -> int:
        """Token id of d_1 = 0 (d_1 = j is depth_offset + j)."""
        return circuit_vocab_size(self.n_inputs, self.width)

    @property
    def vocab_size(self) -> int:
        return self.depth_offset + self.depth + 1

    @property
    def prompt_len(self) -> int:
        return self.n_inputs + 3 * self.depth * self.width

    @property
    def answer_len(self) -> int:
        return 1

    @property
    def cot_len(self) -> int:
        return self.depth * self.width if self.with_cot else 0

    def sample_one(self, key: Array) -> Example:
        """A random alternating circuit and input; answer the depth token of d_1; cot all gate values."""
        words = random_words(key, n_circuit_words(self.n_inputs, self.width, self.depth))
        circuit, inputs = alternating_circuit_from_words(words, self.n_inputs, self.width, self.depth,
                                                         self.input_density)
        values = layer_values(circuit, inputs)
        return Example(prompt=encode_circuit(circuit, inputs), answer=(self.depth_offset + depth_of_one(values))[None],
                       cot=values.reshape(-1) if self.with_cot else None)

    def solve(self, prompt: Array) -> Array:
        """(1,) depth token of d_1 of the decoded circuit."""
        circuit, inputs = decode_circuit(prompt, self.n_inputs, self.width, self.depth)
        return (self.depth_offset + depth_of_one(layer_values(circuit, inputs)))[None]


@static_dataclass
class Do1ForcedChoiceTask(SerialTask):
    """The optimal first choice (circuit or chain of length 2^l) of the DO1 environment; see the module
    docstring for the environment, the values and the token layout."""

    n_inputs: int
    width: int
    depth: int
    input_density: float = 0.5
    with_cot: bool = True

    def __post_init__(self):
        check_circuit_shape(self.n_inputs, self.width, self.depth)
        _check_density(self.input_density)

    @property
    def n_gates(self) -> int:
        return self.depth * self.width

    @property
    def n_exponents(self) -> int:
        """m + 1: the chain lengths 2^0 .. 2^m."""
        return n_chain_exponents(self.n_gates)

    @property
    def exponent_offset(self) -> int:
        """Token id of l = 0 (chain length 2^l is exponent_offset + l)."""
        return circuit_vocab_size(self.n_inputs, self.width)

    @property
    def circuit_token(self) -> int:
        """Answer token: choose the circuit C."""
        return self.exponent_offset + self.n_exponents

    @property
    def chain_token(self) -> int:
        """Answer token: choose the chain."""
        return self.circuit_token + 1

    @property
    def vocab_size(self) -> int:
        return self.chain_token + 1

    @property
    def prompt_len(self) -> int:
        return self.n_inputs + 3 * self.n_gates + 1

    @property
    def answer_len(self) -> int:
        return 1

    @property
    def cot_len(self) -> int:
        return self.n_gates if self.with_cot else 0

    def environment_prompts(self, circuit_prompt: Array) -> Array:
        """(m + 1, prompt_len): the prompts of environments E_0 .. E_m for one circuit prompt
        (n + 3 d w,), chain length 2^l in row l; feed them to an agent, then `switchover_estimate`."""
        exponents = self.exponent_offset + jnp.arange(self.n_exponents, dtype=jnp.int32)
        rows = jnp.broadcast_to(jnp.asarray(circuit_prompt, jnp.int32), (self.n_exponents, self.prompt_len - 1))
        return jnp.concatenate([rows, exponents[:, None]], axis=1)

    def values(self, prompt: Array) -> tuple[Array, Array]:
        """(V*(s_g) (d, w), V*(s_chain)) of one prompt (`optimal_values`)."""
        circuit, inputs = decode_circuit(prompt[:-1], self.n_inputs, self.width, self.depth)
        exponent = jnp.clip(prompt[-1] - self.exponent_offset, 0, self.n_exponents - 1)
        return optimal_values(layer_values(circuit, inputs), 2 ** exponent)

    def sample_one(self, key: Array) -> Example:
        """A random alternating circuit and input, l uniform on 0..m; answer the canonical optimal action."""
        words = random_words(key, n_circuit_words(self.n_inputs, self.width, self.depth) + 1)
        circuit, inputs = alternating_circuit_from_words(words[:-1], self.n_inputs, self.width, self.depth,
                                                         self.input_density)
        exponent = below(words[-1], self.n_exponents)
        prompt = jnp.concatenate([encode_circuit(circuit, inputs), (self.exponent_offset + exponent)[None]])
        cot = layer_values(circuit, inputs).reshape(-1) if self.with_cot else None
        return Example(prompt=prompt, answer=self.solve(prompt), cot=cot)

    def solve(self, prompt: Array) -> Array:
        """(1,) CHAIN if V*(s_chain) >= max_g V*(s_g) (ties go to the chain), else CIRCUIT."""
        gate_values, chain_value = self.values(prompt)
        return jnp.where(chain_value >= jnp.max(gate_values), self.chain_token, self.circuit_token)[None]

    def check(self, prompt, answer) -> Array:
        """bool (B,): the answer is an optimal first action (CIRCUIT iff d_1 >= 2^l, CHAIN iff 2^l >= d_1)."""
        prompt, answer = self.validate_batch(prompt, answer)
        return _check_forced_choice(self, prompt, answer[:, 0])


@functools.partial(jax.jit, static_argnums=0)
def _check_forced_choice(task: Do1ForcedChoiceTask, prompt: Array, action: Array) -> Array:
    def optimal_actions(one_prompt):
        gate_values, chain_value = task.values(one_prompt)
        circuit_value = jnp.max(gate_values)
        return circuit_value >= chain_value, chain_value >= circuit_value

    circuit_ok, chain_ok = jax.vmap(optimal_actions)(prompt)
    return ((action == task.circuit_token) & circuit_ok) | ((action == task.chain_token) & chain_ok)


def _check_density(input_density) -> None:
    if not isinstance(input_density, (int, float)) or isinstance(input_density, bool) or not 0 <= input_density <= 1:
        raise ValueError(f"input_density must be a float in [0, 1]; got {input_density!r}")
