"""Word problems (Z_m, S5, A5, and S5 / A5 over two generators) and majority against plain numpy references:
permutation products by index composition over an enumeration built here, sums mod m, bit counts;
determinism over batch sizes and 8 devices; the checker accepts the truth and rejects every corrupted answer."""

import functools
import itertools

import jax
import numpy as np
import pytest
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from diffserial.serial_tasks import TASKS, make_task
from diffserial.serial_tasks.group_words import MajorityTask, WordProblemTask, multiplication_table

KEY = jax.random.key(7)
BATCH = 16


def reference_permutations(group):
    """Permutations of 0..4 in lexicographic order (all for S5, the even ones for A5), via itertools and
    a cycle-count parity (sign = (-1)^(5 - #cycles)), independent of the library's inversion count."""
    def cycles(p):
        seen, count = set(), 0
        for start in range(5):
            if start not in seen:
                count += 1
                j = start
                while j not in seen:
                    seen.add(j)
                    j = p[j]
        return count

    perms = [np.array(p) for p in itertools.permutations(range(5))]
    return perms if group == "s5" else [p for p in perms if (5 - cycles(p)) % 2 == 0]


def reference_prefixes(word, group):
    """Prefix products of a word, g_1 acting first: h_k = g_k[h_{k-1}] (numpy index composition)."""
    if group.startswith("z"):
        return np.cumsum(word) % int(group[1:])
    perms = reference_permutations(group)
    index = {tuple(p): k for k, p in enumerate(perms)}
    h, out = np.arange(5), []
    for g in word:
        h = perms[g][h]
        out.append(index[tuple(h)])
    return np.array(out)


# the generators written as cycles, turned into arrays here (p[j] = image of j)
GENERATOR_CYCLES = {"s5": ((0, 1), (0, 1, 2, 3, 4)), "a5": ((0, 1, 2), (0, 1, 2, 3, 4))}


def cycle_permutation(cycle):
    p = list(range(5))
    for a, b in zip(cycle, cycle[1:] + cycle[:1]):
        p[a] = b
    return np.array(p)


def reference_generator_word(letters, group):
    """The element indices (in reference_permutations order) of a word of generator letters 0 / 1."""
    index = {tuple(p): k for k, p in enumerate(reference_permutations(group))}
    return np.array([index[tuple(cycle_permutation(GENERATOR_CYCLES[group][b]))] for b in letters])


GROUP_SIZES = {"s5": 120, "a5": 60, "z2": 2, "z7": 7}
# One configuration per family, shared by every test below so that each compiles once.
TASKS_UNDER_TEST = {**{g: WordProblemTask(9, g) for g in GROUP_SIZES}, "majority": MajorityTask(6),
                    **{f"{g}_gen": make_task(f"{g}_gen", 9) for g in ("s5", "a5")}}


@functools.lru_cache(maxsize=None)
def examples(name):
    return TASKS_UNDER_TEST[name].sample(KEY, BATCH)


@pytest.mark.parametrize("group", list(GROUP_SIZES))
def test_word_problem_matches_numpy_reference(group):
    task = TASKS_UNDER_TEST[group]
    ex = jax.device_get(examples(group))
    assert task.vocab_size == GROUP_SIZES[group]
    assert ex.prompt.shape == (BATCH, 9) and ex.answer.shape == (BATCH, 1) and ex.cot.shape == (BATCH, 8)
    assert ex.prompt.min() >= 0 and ex.prompt.max() < task.vocab_size
    for word, answer, cot in zip(ex.prompt, ex.answer, ex.cot):
        prefixes = reference_prefixes(word, group)
        np.testing.assert_array_equal(cot, prefixes[:-1])  # the answer is the chain's next step, not a copy
        assert answer[0] == prefixes[-1]
    assert len(set(ex.answer[:, 0].tolist())) > 1


@pytest.mark.parametrize("group", ["s5", "a5"])
def test_generator_words_match_numpy_reference(group):
    """Letters are tokens |G| and |G| + 1 (not elements); the product is that of the cycles (0 1) or (0 1 2)
    and (0 1 2 3 4), composed over the reference enumeration; both letters occur; the words reach more than
    half of the group over a few hundred prompts (they generate it)."""
    task = TASKS_UNDER_TEST[f"{group}_gen"]
    order = GROUP_SIZES[group]
    ex = jax.device_get(examples(f"{group}_gen"))
    assert task.vocab_size == order + 2 and ex.cot.shape == (BATCH, 8)
    assert set(np.unique(ex.prompt).tolist()) == {order, order + 1}
    for word, answer, cot in zip(ex.prompt, ex.answer, ex.cot):
        prefixes = reference_prefixes(reference_generator_word(word - order, group), group)
        np.testing.assert_array_equal(cot, prefixes[:-1])
        assert answer[0] == prefixes[-1]
    many = jax.device_get(make_task(f"{group}_gen", 16, with_cot=False).sample(KEY, 512))
    assert many.cot is None and len(set(many.answer[:, 0].tolist())) > order // 2


@pytest.mark.parametrize("group", ["s5", "a5"])
def test_multiplication_table_is_the_group(group):
    """Table entries agree with index composition and the group axioms hold (identity 0, inverses,
    associativity on all triples of a random sample); A5 is closed and has 60 elements."""
    table = multiplication_table(group)
    perms = reference_permutations(group)
    index = {tuple(p): k for k, p in enumerate(perms)}
    for a in range(len(perms)):
        for b in range(0, len(perms), 7):
            assert table[a, b] == index[tuple(perms[b][perms[a]])]
    assert np.all(table[0] == np.arange(len(perms))) and np.all(table[:, 0] == np.arange(len(perms)))
    assert np.all(np.sort(table, axis=1) == np.arange(len(perms)))  # Latin square: inverses exist
    rng = np.random.default_rng(0)
    a, b, c = rng.integers(0, len(perms), (3, 500))
    np.testing.assert_array_equal(table[table[a, b], c], table[a, table[b, c]])


def test_s5_word_problem_is_non_abelian_in_data():
    """The order matters: reversing a word changes its product for some sampled words (unlike Z_m)."""
    ex = jax.device_get(examples("s5"))
    assert any(reference_prefixes(w[::-1], "s5")[-1] != a[0] for w, a in zip(ex.prompt, ex.answer))


def test_majority_matches_count():
    task = TASKS_UNDER_TEST["majority"]
    ex = jax.device_get(examples("majority"))
    assert task.vocab_size == 7
    for bits, answer, cot in zip(ex.prompt, ex.answer, ex.cot):
        assert set(bits.tolist()) <= {0, 1}
        assert answer[0] == int(sum(bits.tolist()) > 3)
        np.testing.assert_array_equal(cot, [sum(bits[:k + 1].tolist()) for k in range(6)])
    ties = np.tile([[1, 0, 1, 0, 1, 0], [1, 1, 1, 1, 0, 0]], (BATCH // 2, 1))  # 3 of 6 -> 0, 4 of 6 -> 1
    assert np.asarray(task.check(ties, np.tile([[0], [1]], (BATCH // 2, 1)))).all()
    assert MajorityTask(1).vocab_size == 2


@pytest.mark.parametrize("name", list(TASKS_UNDER_TEST))
def test_checker_accepts_truth_rejects_every_wrong_answer(name):
    task = TASKS_UNDER_TEST[name]
    ex = examples(name)
    shift = 1 + np.random.default_rng(1).integers(0, task.vocab_size - 1, ex.answer.shape)
    if name == "majority":
        wrong = 1 - ex.answer
    elif name.endswith("_gen"):  # a wrong answer is another element, not a letter token
        order = task.vocab_size - 2
        wrong = (ex.answer + shift % (order - 1) + 1) % order
    else:
        wrong = (ex.answer + shift) % task.vocab_size
    assert np.all(np.asarray(task.check(ex.prompt, ex.answer)))
    assert not np.any(np.asarray(task.check(ex.prompt, wrong)))


def test_same_key_same_data_across_batch_sizes_and_devices():
    task = TASKS_UNDER_TEST["s5"]
    full = examples("s5")
    small = task.sample(KEY, 3)
    mesh = Mesh(np.array(jax.devices()), ("data",))
    sharded = task.sample(KEY, BATCH, NamedSharding(mesh, PartitionSpec("data")))
    assert len(jax.devices()) == 8 and len(sharded.prompt.sharding.device_set) == 8
    tail = task.sample_at(KEY, np.arange(13, 16))  # 3 rows: the program compiled for batch 3
    for name in ("prompt", "answer", "cot"):
        np.testing.assert_array_equal(getattr(small, name), getattr(full, name)[:3])
        np.testing.assert_array_equal(getattr(sharded, name), getattr(full, name))
        np.testing.assert_array_equal(getattr(tail, name), getattr(full, name)[13:])
    other = task.sample(jax.random.key(8), 3)
    assert not np.array_equal(other.prompt, small.prompt)


def test_without_cot_and_bad_arguments():
    ex = WordProblemTask(4, "a5", with_cot=False).sample(KEY, 2)
    assert ex.cot is None
    assert WordProblemTask(1, "s5").cot_len == 0 and WordProblemTask(1, "s5").sample(KEY, 2).cot is None
    with pytest.raises(ValueError, match="letters must be one of"):
        WordProblemTask(4, "s5", letters="gens")
    with pytest.raises(ValueError, match="letters='generators' needs a group in"):
        WordProblemTask(4, "z5", letters="generators")
    with pytest.raises(ValueError, match="z<m>"):
        WordProblemTask(4, "s4")
    with pytest.raises(ValueError, match="2 <= m <= 32768"):
        WordProblemTask(4, "z1")
    with pytest.raises(ValueError, match="n must be an int >= 1"):
        MajorityTask(0)
    with pytest.raises(ValueError, match="valid serial tasks: .*parity"):
        make_task("parityy", 3)
    with pytest.raises(ValueError, match="prompt must have shape"):
        WordProblemTask(4, "s5").check(np.zeros((2, 5), int), np.zeros((2, 1), int))
    with pytest.raises(ValueError, match="batch must be an int"):
        WordProblemTask(4, "s5").sample(KEY, 0)
    assert make_task("sum_mod", 4, 3) == WordProblemTask(4, "z3") and make_task("parity", 4).vocab_size == 2
    assert set(TASKS) >= {"parity", "majority", "sum_mod", "s5", "a5", "s5_gen", "a5_gen"}
