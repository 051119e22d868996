"""Layered Boolean circuits and the DLMs of Thms 3.1 and 3.2 of "Diffusion Language Models are Provably
Optimal Parallel Samplers" (ICLR 2026) that evaluate them in as many rounds as the circuit is deep.

Circuits. A `LayeredCircuit` has n inputs and d layers of exactly w two-input gates (any layered circuit
of width <= w is padded to this form). Gate i of layer l (0-indexed) computes

    g_{l,i} = G_{type[l,i]}(v_{l-1}[in_a[l,i]], v_{l-1}[in_b[l,i]]),      v_{-1} = inputs,

with G in {AND, OR, XOR, NAND} (NAND alone is universal; NOT v = NAND(v, v)); the outputs are the last
layer v_{d-1}. Depth d, width w, size N = d w. `evaluate` is a recursive numpy reference (Python bit
operators, no truth table, no JAX); `evaluate_jax` / `layer_values` evaluate layer by layer in JAX.

Thm 3.1, `circuit_cot`: DLM + chain of thought, L = n + N, d rounds. Positions 0..n-1 are the prompt
(inputs, never masked); gate (l, i) lives at position n + l w + i. The predictor is local (NC0): a
masked gate position whose two input positions are revealed predicts its gate value deterministically;
any other masked position is uniform; revealed positions predict themselves. The rule
`ConfidentUnmask` reveals exactly the masked positions predicted with confidence 1 (>= threshold), i.e.
those whose inputs are available. By induction round k reveals exactly layer k, with the circuit's
values; after d rounds the last w positions are the outputs, after d-1 they are still masked, and
further rounds change nothing. Serial steps = depth, not size (AR + CoT needs Theta(N) steps).

Thm 3.2, `circuit_remask`: DLM + CoT + remasking, memory O(w + log d) instead of N. The non-prompt part
is two buffers ("halves") h = 0, 1 of B + w positions, B = bit_length(d): a B-bit clock (layer index,
little endian) and w gate slots; L = n + 2 (B + w), independent of the size. Layer l (1-indexed) is
written with its index into half (l - 1) mod 2. Predictor for half h, other half o:
    if the clock of o is revealed with value c:  compute layer l = c + 1 from the slots of o;
    elif h = 0:                                  compute layer 1 from the prompt;
    provided 1 <= l <= d and (l - 1) mod 2 = h, every slot predicts its gate (looked up in the wiring
    tables at row l - 1, an O(1)-depth multiplexer over d rows) and the clock predicts l; otherwise the
    masked positions of h are uniform. Revealed positions predict themselves.
The rule `PingPongRemask` reveals the confident masked positions and, in the same step, remasks every
revealed position of a half whose partner half receives new tokens (layer l only feeds layer l + 1).
Round k therefore writes layer k and erases layer k - 1: rounds = d (no separate remask round), after
every round at most w + B non-prompt positions are revealed (c = 1 plus the clock; <= 2w whenever
w >= B), and a step reads one half while writing the other, 2 (w + B) positions in all.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from diffserial.constructions.common import (
    MASK,
    Construction,
    confidence,
    deterministic_logits,
    sample_tokens,
    uniform_logits,
)
from diffserial.pytrees import static_dataclass

Array = jax.Array

AND, OR, XOR, NAND = 0, 1, 2, 3
GATE_NAMES = ("and", "or", "xor", "nand")
# TRUTH_TABLES[type, 2 a + b] = G_type(a, b), used by the JAX paths only.
TRUTH_TABLES = np.array([[0, 0, 0, 1], [0, 1, 1, 1], [0, 1, 1, 0], [1, 1, 1, 0]], dtype=np.int32)
DEFAULT_THRESHOLD = 0.999


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
        if isinstance(n_inputs, bool) or not isinstance(n_inputs, (int, np.integer)) or n_inputs < 1:
            raise ValueError(f"n_inputs must be an int >= 1; got {n_inputs!r}")
        n_inputs = int(n_inputs)
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
    if isinstance(key_or_seed, (int, np.integer)) and not isinstance(key_or_seed, bool):
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
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{name} must be an int >= 1; got {value!r}")
    ids = []
    for g in gate_types:
        if isinstance(g, str) and g.lower() in GATE_NAMES:
            ids.append(GATE_NAMES.index(g.lower()))
        elif isinstance(g, (int, np.integer)) and not isinstance(g, bool) and 0 <= g < len(GATE_NAMES):
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


def _gate(types: Array, a: Array, b: Array) -> Array:
    """G_type(a, b) by truth-table lookup (a, b in {0, 1})."""
    return jnp.asarray(TRUTH_TABLES)[types, 2 * a + b]


def layer_values(circuit: LayeredCircuit, inputs: Array) -> Array:
    """All gate values (d, w) int32, layer by layer in JAX (`lax.scan` over layers 1..d-1)."""
    inputs = jnp.asarray(inputs, jnp.int32)
    first = _gate(circuit.gate_types[0], inputs[circuit.in_a[0]], inputs[circuit.in_b[0]])

    def body(prev, layer):
        types, ia, ib = layer
        v = _gate(types, prev[ia], prev[ib])
        return v, v

    rest = (circuit.gate_types[1:], circuit.in_a[1:], circuit.in_b[1:])
    _, vs = jax.lax.scan(body, first, rest)
    return jnp.concatenate([first[None], vs], axis=0)


def evaluate_jax(circuit: LayeredCircuit, inputs: Array) -> Array:
    """Circuit output (w,) int32 in JAX: the last row of `layer_values`."""
    return layer_values(circuit, inputs)[-1]


def _confident(predictor, x: Array, t, threshold: float) -> tuple[Array, Array]:
    """(logits, reveal): the masked positions whose confidence max_v p_i(v | x) is >= threshold."""
    logits = predictor(x, t)
    return logits, (x == MASK) & (confidence(logits) >= threshold)


@static_dataclass
class ConfidentUnmask:
    """Reveal every masked position whose predicted confidence max_v p_i(v | x) is >= threshold, with a
    sample of its prediction; never touch revealed positions. State: rounds done (int32)."""

    threshold: float = DEFAULT_THRESHOLD

    def init_state(self, x: Array) -> Array:
        return jnp.zeros((), jnp.int32)

    def step(self, schedule, predictor, x, state, t, s, key):
        del schedule, s
        logits, reveal = _confident(predictor, x, t, self.threshold)
        return jnp.where(reveal, sample_tokens(key, logits), x).astype(jnp.int32), state + 1


@static_dataclass
class PingPongRemask:
    """`ConfidentUnmask` plus remasking G over two buffers: positions n_prompt + h * buffer_len + [0,
    buffer_len), h = 0, 1. In one step, reveal the confident masked positions and remask every revealed
    position of a buffer whose partner buffer receives at least one new token. G reads x and the
    predicted confidences only, never the sampled tokens. State: rounds done (int32)."""

    n_prompt: int
    buffer_len: int
    threshold: float = DEFAULT_THRESHOLD

    def init_state(self, x: Array) -> Array:
        return jnp.zeros((), jnp.int32)

    def step(self, schedule, predictor, x, state, t, s, key):
        del schedule, s
        logits, reveal = _confident(predictor, x, t, self.threshold)
        reveal = reveal.at[: self.n_prompt].set(False)
        receives = jnp.any(reveal[self.n_prompt:].reshape(2, self.buffer_len), axis=1)
        remask_half = receives[::-1]  # a half is erased when its partner is written
        remask = jnp.concatenate([jnp.zeros((self.n_prompt,), bool), jnp.repeat(remask_half, self.buffer_len)])
        remask = remask & (x != MASK)
        x_new = jnp.where(reveal, sample_tokens(key, logits), jnp.where(remask, MASK, x))
        return x_new.astype(jnp.int32), state + 1


def _check_circuit(circuit) -> LayeredCircuit:
    if not isinstance(circuit, LayeredCircuit):
        raise ValueError(f"circuit must be a LayeredCircuit; got {type(circuit).__name__}")
    return circuit


def _position_logits(x: Array, ready: Array, value: Array) -> Array:
    """Revealed: themselves; masked and ready: deterministic `value`; otherwise uniform."""
    masked = x == MASK
    det = deterministic_logits(jnp.where(masked, jnp.where(ready, value, 0), x))
    return jnp.where((~masked | ready)[..., None], det, uniform_logits(x.shape))


def _gate_from_sources(types: Array, va: Array, vb: Array) -> tuple[Array, Array]:
    """(ready, value): both sources revealed, and the gate on them (0 where not ready)."""
    ready = (va != MASK) & (vb != MASK)
    value = _gate(types, jnp.where(ready, va, 0), jnp.where(ready, vb, 0))
    return ready, value


# --- Thm 3.1: one layer per round ---------------------------------------------------------------------
def cot_predictor(circuit: LayeredCircuit, x: Array, t: Array) -> Array:
    """Logits (n + N, 2) of the chain-of-thought DLM (layout in the module docstring). Gate (l, i) reads
    only its two input positions. Time is ignored."""
    del t
    n, d, w = circuit.n_inputs, circuit.depth, circuit.width
    prompt, gates = x[:n], x[n:].reshape(d, w)
    va = jnp.concatenate([prompt[circuit.in_a[0]][None], jnp.take_along_axis(gates[:-1], circuit.in_a[1:], axis=1)])
    vb = jnp.concatenate([prompt[circuit.in_b[0]][None], jnp.take_along_axis(gates[:-1], circuit.in_b[1:], axis=1)])
    ready, value = _gate_from_sources(circuit.gate_types, va, vb)
    gate_logits = _position_logits(gates, ready, value).reshape(d * w, 2)
    prompt_logits = _position_logits(prompt, jnp.zeros((n,), bool), jnp.zeros((n,), jnp.int32))
    return jnp.concatenate([prompt_logits, gate_logits], axis=0)


def circuit_cot(circuit: LayeredCircuit, threshold: float = DEFAULT_THRESHOLD) -> Construction:
    """Thm 3.1: L = n + N, prompt = the inputs, n_rounds = depth; outputs by `cot_outputs`."""
    circuit = _check_circuit(circuit)
    _check_threshold(threshold)
    return Construction(predictor=jax.tree_util.Partial(cot_predictor, circuit), rule=ConfidentUnmask(threshold),
                        n_rounds=circuit.depth, seq_len=circuit.n_inputs + circuit.size, n_prompt=circuit.n_inputs)


def cot_outputs(circuit: LayeredCircuit, x: Array) -> Array:
    """The last layer's w positions of a `circuit_cot` sequence (MASK where not yet computed)."""
    start = circuit.n_inputs + (circuit.depth - 1) * circuit.width
    return x[..., start:start + circuit.width]


# --- Thm 3.2: two buffers and a clock -----------------------------------------------------------------
def clock_bits(depth: int) -> int:
    """B = bit_length(depth): bits of the layer clock (values 1..depth)."""
    return max(1, int(depth).bit_length())


def _halves(circuit: LayeredCircuit, x: Array):
    n, w, b = circuit.n_inputs, circuit.width, clock_bits(circuit.depth)
    halves = x[n:].reshape(2, b + w)
    clock, slots = halves[:, :b], halves[:, b:]
    clock_revealed = jnp.all(clock != MASK, axis=1)
    clock_value = jnp.sum(jnp.where(clock == MASK, 0, clock) << jnp.arange(b, dtype=jnp.int32), axis=1)
    return clock, slots, clock_revealed, clock_value


def remask_predictor(circuit: LayeredCircuit, x: Array, t: Array) -> Array:
    """Logits (n + 2 (B + w), 2) of the two-buffer DLM (module docstring). Time is ignored."""
    del t
    n, d, w, b = circuit.n_inputs, circuit.depth, circuit.width, clock_bits(circuit.depth)
    prompt = x[:n]
    clock, slots, clock_revealed, clock_value = _halves(circuit, x)
    halves_logits = []
    for h in (0, 1):
        o = 1 - h
        layer = jnp.where(clock_revealed[o], clock_value[o] + 1, 1 if h == 0 else 0)  # 1-indexed; 0: none
        valid = (layer >= 1) & (layer <= d) & ((layer - 1) % 2 == h)
        row = jnp.clip(layer - 1, 0, d - 1)
        types, ia, ib = circuit.gate_types[row], circuit.in_a[row], circuit.in_b[row]
        from_prompt = layer == 1
        va = jnp.where(from_prompt, prompt[jnp.clip(ia, 0, n - 1)], slots[o][jnp.clip(ia, 0, w - 1)])
        vb = jnp.where(from_prompt, prompt[jnp.clip(ib, 0, n - 1)], slots[o][jnp.clip(ib, 0, w - 1)])
        slot_ready, slot_value = _gate_from_sources(types, va, vb)
        ready = valid & jnp.all(slot_ready)
        clock_value_new = (layer >> jnp.arange(b, dtype=jnp.int32)) & 1
        halves_logits.append(_position_logits(clock[h], jnp.full((b,), ready), clock_value_new))
        halves_logits.append(_position_logits(slots[h], jnp.full((w,), ready), slot_value))
    prompt_logits = _position_logits(prompt, jnp.zeros((n,), bool), jnp.zeros((n,), jnp.int32))
    return jnp.concatenate([prompt_logits] + halves_logits, axis=0)


def circuit_remask(circuit: LayeredCircuit, threshold: float = DEFAULT_THRESHOLD) -> Construction:
    """Thm 3.2: L = n + 2 (B + w), prompt = the inputs, n_rounds = depth; outputs by `remask_outputs`."""
    circuit = _check_circuit(circuit)
    _check_threshold(threshold)
    buffer_len = clock_bits(circuit.depth) + circuit.width
    return Construction(predictor=jax.tree_util.Partial(remask_predictor, circuit),
                        rule=PingPongRemask(circuit.n_inputs, buffer_len, threshold), n_rounds=circuit.depth,
                        seq_len=circuit.n_inputs + 2 * buffer_len, n_prompt=circuit.n_inputs)


def remask_outputs(circuit: LayeredCircuit, x: Array) -> Array:
    """The slots of the half whose clock reads `depth` (the output layer) of one `circuit_remask`
    sequence; all MASK if no half holds the last layer yet."""
    _, slots, clock_revealed, clock_value = _halves(circuit, x)
    done = clock_revealed & (clock_value == circuit.depth)
    return jnp.where(done[0], slots[0], jnp.where(done[1], slots[1], MASK))


def _check_threshold(threshold) -> None:
    if not (isinstance(threshold, (int, float)) and 0.5 < threshold <= 1.0):
        raise ValueError(f"threshold must be a float in (1/2, 1] (a binary uniform prediction has "
                         f"confidence 1/2); got {threshold!r}")
