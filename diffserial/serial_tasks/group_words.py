"""Word problems of finite groups and the majority function: the TC0 controls and the NC1-complete tasks.

`WordProblemTask(n, group)`: the prompt is n uniform group elements g_1 .. g_n, the answer their product
h_n, the chain of thought the prefix products h_1 .. h_n (h_k = h_{k-1} g_k, h_0 = identity).

    group "z<m>" (m >= 2)   Z_m under addition: token k = the residue k; h_n = sum_i g_i mod m.
                            "z2" is PARITY of n bits. Abelian, solvable: in TC0.
    group "s5"              the symmetric group on {0..4}: token k = the k-th permutation in the
                            lexicographic order of itertools.permutations(range(5)) (token 0 = identity).
    group "a5"              the alternating group: token k = the k-th EVEN permutation in that order.
                            S5 and A5 are non-solvable: their word problems are NC1-complete (Barrington).

Product convention for permutations (arrays p with p[j] = image of j): the word g_1 g_2 .. g_n acts left
to right, g_1 first: (a b)[j] = b[a[j]], i.e. h_k = g_k[h_{k-1}] by index composition. Vocabulary: the
group elements, vocab_size = |G| (2, m, 120 or 60).

`MajorityTask(n)`: prompt n uniform bits, answer 1 iff more than half are 1 (sum > n / 2; ties give 0,
the paper's appendix D definition of a majority gate), chain of thought the prefix counts c_k = sum_{i<=k}
x_i. Tokens: bits 0/1 in the prompt and answer, counts 0..n in the chain of thought; vocab_size = n + 1
(at least 2; ids 0 and 1 mean both the bit and the count).

The prefix products are a `lax.scan` over the word with a |G| x |G| multiplication table.
"""

from __future__ import annotations

import functools
import itertools
import re

import jax
import jax.numpy as jnp
import numpy as np

from diffserial.pytrees import static_dataclass
from diffserial.serial_tasks.common import MAX_RANGE, Example, SerialTask, below, random_words, top_bit
from diffserial.validation import check_int

Array = jax.Array

PERMUTATION_GROUPS = ("s5", "a5")
_CYCLIC = re.compile(r"z([0-9]+)")


def permutation_elements(group: str) -> np.ndarray:
    """(|G|, 5) int32: the elements of S5 (all permutations of 0..4) or A5 (the even ones) in
    lexicographic order; row k is the permutation of token k (p[j] = image of j)."""
    if group not in PERMUTATION_GROUPS:
        raise ValueError(f"group must be one of {PERMUTATION_GROUPS}; got {group!r}")
    perms = np.array(list(itertools.permutations(range(5))), dtype=np.int32)
    if group == "a5":
        perms = perms[[_is_even(p) for p in perms]]
    return perms


def _is_even(perm: np.ndarray) -> bool:
    inversions = sum(int(perm[i] > perm[j]) for i in range(len(perm)) for j in range(i + 1, len(perm)))
    return inversions % 2 == 0


@functools.lru_cache(maxsize=None)
def multiplication_table(group: str) -> np.ndarray:
    """(|G|, |G|) int32 table T[a, b] = token of the product a b (a first, then b): (a + b) mod m for
    "z<m>", the index of b[a] (index composition) for "s5" / "a5". Raises ValueError on a bad name."""
    match = _CYCLIC.fullmatch(group) if isinstance(group, str) else None
    if match:
        m = int(match.group(1))
        if not 2 <= m <= MAX_RANGE:
            raise ValueError(f"cyclic group z<m> needs 2 <= m <= {MAX_RANGE}; got {group!r}")
        return np.add.outer(np.arange(m), np.arange(m)).astype(np.int32) % m
    if group not in PERMUTATION_GROUPS:
        raise ValueError(f"group must be 'z<m>' (m >= 2) or one of {PERMUTATION_GROUPS}; got {group!r}")
    perms = permutation_elements(group)
    index = {tuple(p): k for k, p in enumerate(perms.tolist())}
    return np.array([[index[tuple(b[a])] for b in perms] for a in perms], dtype=np.int32)


def prefix_products(table: Array, word: Array) -> Array:
    """(n,) prefix products h_k = T[h_{k-1}, g_k], h_0 = identity (token 0), by `lax.scan`."""
    def body(h, g):
        h = table[h, g]
        return h, h

    _, prefixes = jax.lax.scan(body, jnp.zeros((), jnp.int32), word)
    return prefixes


@static_dataclass
class WordProblemTask(SerialTask):
    """The word problem of `group` ("z<m>", "s5", "a5") on n elements; see the module docstring.
    prompt (n,) elements, answer (1,) their product, cot (n,) prefix products (None if not with_cot)."""

    n: int
    group: str = "s5"
    with_cot: bool = True

    def __post_init__(self):
        check_int("n", self.n, 1)
        multiplication_table(self.group)  # validates the name

    @property
    def vocab_size(self) -> int:
        return multiplication_table(self.group).shape[0]

    @property
    def prompt_len(self) -> int:
        return self.n

    @property
    def answer_len(self) -> int:
        return 1

    @property
    def cot_len(self) -> int:
        return self.n if self.with_cot else 0

    def sample_one(self, key: Array) -> Example:
        """Uniform word g_1..g_n; answer h_n; cot h_1..h_n."""
        word = below(random_words(key, self.n), self.vocab_size)
        prefixes = prefix_products(jnp.asarray(multiplication_table(self.group)), word)
        return Example(prompt=word, answer=prefixes[-1:], cot=prefixes if self.with_cot else None)

    def solve(self, prompt: Array) -> Array:
        """(1,) the product of the word."""
        return prefix_products(jnp.asarray(multiplication_table(self.group)), prompt)[-1:]


@static_dataclass
class MajorityTask(SerialTask):
    """Majority of n bits (1 iff sum > n / 2); cot = prefix counts (None if not with_cot)."""

    n: int
    with_cot: bool = True

    def __post_init__(self):
        check_int("n", self.n, 1)

    @property
    def vocab_size(self) -> int:
        return max(2, self.n + 1)

    @property
    def prompt_len(self) -> int:
        return self.n

    @property
    def answer_len(self) -> int:
        return 1

    @property
    def cot_len(self) -> int:
        return self.n if self.with_cot else 0

    def sample_one(self, key: Array) -> Example:
        """Uniform bits x; answer [sum x > n / 2]; cot the prefix counts."""
        bits = top_bit(random_words(key, self.n))
        counts = jnp.cumsum(bits, dtype=jnp.int32)
        return Example(prompt=bits, answer=self.solve(bits), cot=counts if self.with_cot else None)

    def solve(self, prompt: Array) -> Array:
        """(1,) 1 iff 2 sum(x) > n."""
        return (2 * jnp.sum(prompt, dtype=jnp.int32) > self.n).astype(jnp.int32)[None]


def parity_task(n: int, with_cot: bool = True) -> WordProblemTask:
    """PARITY of n bits: the word problem of Z_2."""
    return WordProblemTask(n, "z2", with_cot)


def sum_mod_task(n: int, m: int = 5, with_cot: bool = True) -> WordProblemTask:
    """Sum of n residues mod m: the word problem of Z_m."""
    check_int("m", m, 2)
    return WordProblemTask(n, f"z{m}", with_cot)


def s5_task(n: int, with_cot: bool = True) -> WordProblemTask:
    """Product of n permutations in S5 (NC1-complete)."""
    return WordProblemTask(n, "s5", with_cot)


def a5_task(n: int, with_cot: bool = True) -> WordProblemTask:
    """Product of n permutations in A5 (NC1-complete)."""
    return WordProblemTask(n, "a5", with_cot)
