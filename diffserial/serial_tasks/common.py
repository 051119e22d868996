"""The interface shared by every serial task: an `Example` of token arrays and the `SerialTask` base.

A task is a frozen, hashable dataclass holding its size parameters (n, ...). It defines

    vocab_size, prompt_len, answer_len, cot_len    (cot_len = 0: the task has no chain of thought)
    sample_one(key) -> Example                     one example (unbatched arrays), pure JAX
    solve(prompt) -> answer                        the exact answer of one prompt, pure JAX

and inherits

    sample(key, batch, sharding=None) -> Example   prompt (B, Lp), answer (B, La), cot (B, Lc) or None
    sample_at(key, indices) -> Example             the examples with these global indices
    check(prompt, answer) -> bool (B,)             exact checker: answer == solve(prompt) on every token

Determinism: example i of a batch is `sample_one(fold_in(key, i))`, so it depends only on (key, i): batch
3 is the first 3 rows of batch 16, and a batch sharded over devices (or split over processes with
`sample_at`) holds the same values as one generated on a single device. `sample` and `check` are
compiled once per task configuration (the task is a static argument).

Randomness: each example draws ONE array of 32-bit words, `jax.random.bits(key, (k,))`, and maps words to
integers below m by the multiply-high `below(words, m)` = floor(word m / 2^32) (Lemire 2019, without
rejection: each value has probability within m / 2^32 of 1 / m) and to bits by their top bit. One draw
instead of a split and a `randint` per field compiles several times faster (threefry is inlined per
call site), which matters because every task configuration is compiled.

Tokens are int32 ids 0..vocab_size-1; prompt, answer and chain of thought share one vocabulary (the
meaning of each id is documented per task). No id equals vocab_size, so it is free for a MASK token
(the masked samplers' convention, MASK = V).
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp

from diffserial.validation import check_positive_int

Array = jax.Array


@functools.partial(jax.tree_util.register_dataclass, data_fields=["prompt", "answer", "cot"], meta_fields=[])
@dataclasses.dataclass(frozen=True)
class Example:
    """Token arrays of one example (Lp,), (La,), (Lc,) or a batch (B, Lp), (B, La), (B, Lc); int32.
    `cot` (chain-of-thought tokens) is None for tasks or configurations without one."""

    prompt: Array
    answer: Array
    cot: Array | None = None


class SerialTask:
    """Base of the frozen task dataclasses (see the module docstring); subclasses define `vocab_size`,
    `prompt_len`, `answer_len`, `cot_len`, `sample_one` and `solve`."""

    vocab_size: int
    prompt_len: int
    answer_len: int
    cot_len: int

    def sample_one(self, key: Array) -> Example:
        raise NotImplementedError

    def solve(self, prompt: Array) -> Array:
        raise NotImplementedError

    def sample_at(self, key: Array, indices) -> Example:
        """The examples with global indices `indices` (B,): row j is `sample_one(fold_in(key, indices[j]))`.
        A process holding rows [a, b) of a global batch calls this with arange(a, b)."""
        return _sample_at(self, check_key(key), jnp.asarray(indices, jnp.int32))

    def sample(self, key: Array, batch: int, sharding: jax.sharding.Sharding | None = None) -> Example:
        """A batch of `batch` examples, example i = `sample_one(fold_in(key, i))`; with `sharding` (e.g. a
        NamedSharding over a 'data' mesh axis) the arrays are produced already sharded on dim 0."""
        check_positive_int("batch", batch)
        key = check_key(key)
        if sharding is None:
            return _sample_at(self, key, jnp.arange(batch, dtype=jnp.int32))
        return _sample_sharded(self, key, batch, sharding)

    def check(self, prompt, answer) -> Array:
        """Exact checker, bool (B,): row b is True iff answer[b] equals solve(prompt[b]) on every token."""
        prompt, answer = self.validate_batch(prompt, answer)
        return _check_by_solving(self, prompt, answer)

    def validate_batch(self, prompt, answer) -> tuple[Array, Array]:
        """(prompt, answer) as int32 arrays after checking their shapes (B, prompt_len), (B, answer_len)."""
        prompt, answer = jnp.asarray(prompt), jnp.asarray(answer)
        if prompt.ndim != 2 or prompt.shape[1] != self.prompt_len:
            raise ValueError(f"prompt must have shape (B, prompt_len) = (B, {self.prompt_len}); got {prompt.shape}")
        if answer.shape != (prompt.shape[0], self.answer_len):
            raise ValueError(f"answer must have shape (B, answer_len) = ({prompt.shape[0]}, {self.answer_len}); "
                             f"got {answer.shape}")
        return prompt.astype(jnp.int32), answer.astype(jnp.int32)


class LayeredCircuitLayout:
    """Sequence lengths of a layered-circuit task with fields n_inputs, width, depth, n_outputs, with_cot:
    prompt = the inputs and one (type, wire a, wire b) triple per gate, n + 3 d w tokens; answer = the first
    n_outputs gates of the last layer; cot = the values of layers 0 .. d-2, (d - 1) w tokens."""

    @property
    def prompt_len(self) -> int:
        return self.n_inputs + 3 * self.depth * self.width

    @property
    def answer_len(self) -> int:
        return self.n_outputs

    @property
    def cot_len(self) -> int:
        return (self.depth - 1) * self.width if self.with_cot else 0


def check_key(key) -> Array:
    """`key` if it is a JAX PRNG key (typed, or a raw uint32 (2,)); ValueError otherwise."""
    if not isinstance(key, jax.Array) or not (jnp.issubdtype(key.dtype, jax.dtypes.prng_key) or
                                              (key.dtype == jnp.uint32 and key.shape == (2,))):
        raise ValueError(f"key must be a JAX PRNG key (jax.random.key(seed)); got {key!r}")
    return key


def _sample_indices(task: SerialTask, key: Array, indices: Array) -> Example:
    return jax.vmap(lambda i: task.sample_one(jax.random.fold_in(key, i)))(indices)


_sample_at = jax.jit(_sample_indices, static_argnums=0)


@functools.partial(jax.jit, static_argnums=(0, 2, 3))
def _sample_sharded(task: SerialTask, key: Array, batch: int, sharding) -> Example:
    indices = jax.lax.with_sharding_constraint(jnp.arange(batch, dtype=jnp.int32), sharding)
    example = _sample_indices(task, key, indices)
    return jax.tree.map(lambda a: jax.lax.with_sharding_constraint(a, sharding), example)


@functools.partial(jax.jit, static_argnums=0)
def _check_by_solving(task: SerialTask, prompt: Array, answer: Array) -> Array:
    return jnp.all(jax.vmap(task.solve)(prompt) == answer, axis=-1)


MAX_RANGE = 1 << 15  # largest maxval of `below` (its uint32 products must not overflow)


def random_words(key: Array, n: int) -> Array:
    """(n,) uint32 random words from one threefry draw."""
    return jax.random.bits(key, (n,), jnp.uint32)


def below(words: Array, maxval) -> Array:
    """floor(words * maxval / 2^32) as int32: integers in [0, maxval), maxval in 1..MAX_RANGE (broadcasts).
    Computed exactly in uint32 as (hi maxval + floor(lo maxval / 2^16)) / 2^16, hi / lo = the word's
    upper / lower 16 bits."""
    words = jnp.asarray(words, jnp.uint32)
    maxval = jnp.asarray(maxval, jnp.uint32)
    high, low = words >> 16, words & 0xFFFF
    return ((high * maxval + ((low * maxval) >> 16)) >> 16).astype(jnp.int32)


def top_bit(words: Array) -> Array:
    """The most significant bit of each word, int32 0/1 (a fair coin per word)."""
    return (jnp.asarray(words, jnp.uint32) >> 31).astype(jnp.int32)


def bernoulli(words: Array, p: float) -> Array:
    """int32 1 with probability p (to 2^-24): the word's top 24 bits, read as u in [0, 1), below p."""
    u = (jnp.asarray(words, jnp.uint32) >> 8).astype(jnp.float32) * (2.0 ** -24)
    return (u < p).astype(jnp.int32)
