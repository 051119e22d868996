"""The DLMs of Thms 3.1 and 3.2 of "Diffusion Language Models are Provably Optimal Parallel Samplers"
(ICLR 2026) that evaluate a layered Boolean circuit in as many rounds as the circuit is deep.

Circuits (`LayeredCircuit`, `evaluate`, `layer_values`, `random_layered_circuit`) live in
`diffserial.circuits`, shared with the circuit serial tasks; this module holds the two constructions.

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

import jax
import jax.numpy as jnp

from diffserial.circuits import LayeredCircuit, gate_values
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

DEFAULT_THRESHOLD = 0.999


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
    value = gate_values(types, jnp.where(ready, va, 0), jnp.where(ready, vb, 0))
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
