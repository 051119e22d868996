"""Word problems of finite groups and the majority function: the TC0 controls and the NC1-complete tasks.

`WordProblemTask(n, group, letters=...)`: the prompt is a word of n uniform letters g_1 .. g_n, the answer its
product h_n, the chain of thought the prefix products h_1 .. h_{n-1} (h_k = h_{k-1} g_k, h_0 = identity), so
that the answer is the chain's next step: every generated token h_k reads the token 1 back (h_{k-1}; for
k = 1 the last letter g_n, standing in for h_0 = identity, which a model can tell from an element only when
the letters have tokens of their own, "generators") and the letter n back (g_k), the answer included.

    group "z<m>" (m >= 2)   Z_m under addition: token k = the residue k; h_n = sum_i g_i mod m.
                            "z2" is PARITY of n bits. Abelian, solvable: in TC0.
    group "s5"              the symmetric group on {0..4}: token k = the k-th permutation in the
                            lexicographic order of itertools.permutations(range(5)) (token 0 = identity).
    group "a5"              the alternating group: token k = the k-th EVEN permutation in that order.
                            S5 and A5 are non-solvable: their word problems are NC1-complete (Barrington).

Letters: "elements" (default) draws every letter from the whole group, token k = element k, so the model
has to learn the |G| x |G| table; "generators" (s5, a5 only) draws each letter from two generators,
S5 = <(0 1), (0 1 2 3 4)> and A5 = <(0 1 2), (0 1 2 3 4)>, written as tokens |G| and |G| + 1 of their own
(letters, not elements: vocab_size = |G| + 2), so the table to learn is |G| x 2 and there are 2^n prompts.
The word problem over a fixed generating set is still NC1-complete (Barrington's programs map each input bit
to one of two fixed group elements, each a fixed word in the generators). Task names "s5_gen", "a5_gen".

Product convention for permutations (arrays p with p[j] = image of j): the word g_1 g_2 .. g_n acts left
to right, g_1 first: (a b)[j] = b[a[j]], i.e. h_k = g_k[h_{k-1}] by index composition. Vocabulary: the
group elements, vocab_size = |G| (2, m, 120 or 60), and the two letters with "generators".

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
from diffserial.validation import check_choice, check_int

Array = jax.Array

PERMUTATION_GROUPS = ("s5", "a5")
LETTERS = ("elements", "generators")
# the two generators of each group as permutations (p[j] = image of j): a transposition or 3-cycle and a 5-cycle
GENERATORS = {"s5": ((1, 0, 2, 3, 4), (1, 2, 3, 4, 0)), "a5": ((1, 2, 0, 3, 4), (1, 2, 3, 4, 0))}
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


@functools.lru_cache(maxsize=None)
def generator_tokens(group: str) -> np.ndarray:
    """(2,) int32: the element tokens of GENERATORS[group] ("s5" or "a5")."""
    if group not in PERMUTATION_GROUPS:
        raise ValueError(f"letters='generators' needs a group in {PERMUTATION_GROUPS}; got {group!r}")
    index = {tuple(p): k for k, p in enumerate(permutation_elements(group).tolist())}
    return np.array([index[g] for g in GENERATORS[group]], dtype=np.int32)


def prefix_products(table: Array, word: Array) -> Array:
    """(n,) prefix products h_k = T[h_{k-1}, g_k], h_0 = identity (token 0), by `lax.scan`."""
    def body(h, g):
        h = table[h, g]
        return h, h

    _, prefixes = jax.lax.scan(body, jnp.zeros((), jnp.int32), word)
    return prefixes


@static_dataclass
class WordProblemTask(SerialTask):
    """The word problem of `group` ("z<m>", "s5", "a5") on n letters ("elements" or "generators"); see the
    module docstring. prompt (n,) letters, answer (1,) their product, cot (n-1,) prefix products h_1..h_{n-1}
    (None if not with_cot or n = 1)."""

    n: int
    group: str = "s5"
    with_cot: bool = True
    letters: str = "elements"

    def __post_init__(self):
        check_int("n", self.n, 1)
        multiplication_table(self.group)  # validates the name
        check_choice("letters", self.letters, LETTERS)
        if self.letters == "generators":
            generator_tokens(self.group)

    @property
    def group_order(self) -> int:
        """|G|; the element tokens are 0 .. |G| - 1 (and the generator letters |G|, |G| + 1)."""
        return multiplication_table(self.group).shape[0]

    @property
    def vocab_size(self) -> int:
        return self.group_order + (2 if self.letters == "generators" else 0)

    @property
    def prompt_len(self) -> int:
        return self.n

    @property
    def answer_len(self) -> int:
        return 1

    @property
    def cot_len(self) -> int:
        return self.n - 1 if self.with_cot else 0

    def elements(self, prompt: Array) -> Array:
        """The group elements (element tokens) of a word of letter tokens."""
        if self.letters == "elements":
            return prompt
        return jnp.asarray(generator_tokens(self.group))[prompt - self.group_order]

    def sample_one(self, key: Array) -> Example:
        """Uniform letters g_1..g_n; answer h_n; cot h_1..h_{n-1}."""
        if self.letters == "elements":
            word = below(random_words(key, self.n), self.group_order)
        else:
            word = below(random_words(key, self.n), 2) + self.group_order
        prefixes = prefix_products(jnp.asarray(multiplication_table(self.group)), self.elements(word))
        return Example(prompt=word, answer=prefixes[-1:], cot=prefixes[:-1] if self.cot_len else None)

    def solve(self, prompt: Array) -> Array:
        """(1,) the product of the word."""
        return prefix_products(jnp.asarray(multiplication_table(self.group)), self.elements(prompt))[-1:]


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


def s5_generators_task(n: int, with_cot: bool = True) -> WordProblemTask:
    """Product of a word of n letters over the generators (0 1), (0 1 2 3 4) of S5 (NC1-complete)."""
    return WordProblemTask(n, "s5", with_cot, "generators")


def a5_generators_task(n: int, with_cot: bool = True) -> WordProblemTask:
    """Product of a word of n letters over the generators (0 1 2), (0 1 2 3 4) of A5 (NC1-complete)."""
    return WordProblemTask(n, "a5", with_cot, "generators")
