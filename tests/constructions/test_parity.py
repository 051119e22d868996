"""Parity by revision (Thm 4.1) and remasking (Thm 4.2): even parity always, exact uniformity by
enumerating the constructions' randomness, a sampled TV at the multinomial floor, O(1) rounds."""

import functools
import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from diffserial.constructions.common import MASK, run_rounds
from diffserial.constructions.parity import parity_remask, parity_revision

CONSTRUCTIONS = {"revision": parity_revision, "remask": parity_remask}
# Tests check exact integer outputs; XLA's backend optimizations only cost compile time here.
fast_jit = functools.partial(jax.jit, compiler_options={"xla_backend_optimization_level": 0})


EVEN_RUNS = {16: 4096, 64: 4096, 65: 4096, 1001: 256}  # n -> seeds
TV_N, TV_SAMPLES = 8, 2 ** 16
ROUNDS_N, ROUNDS_SEEDS = 32, 1024


@functools.lru_cache(maxsize=None)
def samples(name):
    """Every sampled run of this file for one construction, in one compiled program:
    ("even", n) -> outputs for EVEN_RUNS; ("tv",) -> TV_SAMPLES outputs for n = TV_N; ("rounds", r) ->
    outputs after r rounds for r = n_rounds - 1, n_rounds, n_rounds + 3 (n = ROUNDS_N, the same keys);
    ("even", 1) -> 64 outputs for n = 1 (revision only)."""
    make = CONSTRUCTIONS[name]
    n_rounds = make(ROUNDS_N).n_rounds
    runs = {("even", n): (make(n), seeds, n_rounds, n) for n, seeds in EVEN_RUNS.items()}
    runs["tv",] = (make(TV_N), TV_SAMPLES, n_rounds, 7)
    for r in (n_rounds - 1, n_rounds, n_rounds + 3):
        runs["rounds", r] = (make(ROUNDS_N), ROUNDS_SEEDS, r, 1)
    if name == "revision":
        runs["even", 1] = (make(1), 64, n_rounds, 1)

    def one(construction, n_seeds, rounds, seed):
        x0 = construction.initial_sequence()
        keys = jax.random.split(jax.random.key(seed), n_seeds)
        return jax.vmap(lambda k: run_rounds(construction.rule, construction.predictor, x0, k, rounds))(keys)

    labels = list(runs)
    out = fast_jit(lambda: [one(*runs[label]) for label in labels])()
    return {label: np.asarray(x) for label, x in zip(labels, out)}


@pytest.mark.parametrize("name", sorted(CONSTRUCTIONS))
@pytest.mark.parametrize("n", sorted(EVEN_RUNS))
def test_every_sample_has_even_parity(name, n):
    xs, n_seeds = samples(name)["even", n], EVEN_RUNS[n]
    assert xs.shape == (n_seeds, n)
    assert np.isin(xs, [0, 1]).all()  # fully revealed, binary
    assert (xs.sum(axis=1) % 2 == 0).all()  # odd rate exactly 0
    # and not degenerate: distinct strings, every position a fair coin
    assert len({row.tobytes() for row in xs}) > 0.9 * n_seeds
    assert np.abs(xs.mean(axis=0) - 0.5).max() < 6 * 0.5 / np.sqrt(n_seeds)


@pytest.mark.parametrize("name,n_rounds", [("revision", 2), ("remask", 3)])
def test_rounds_are_constant_in_n_and_extra_rounds_are_no_ops(name, n_rounds):
    for n in (2, 5, 64, 1000, 4096):
        assert CONSTRUCTIONS[name](n).n_rounds == n_rounds
    runs = samples(name)
    exact, longer, short = (runs["rounds", r] for r in (n_rounds, n_rounds + 3, n_rounds - 1))  # same keys
    assert (exact.sum(axis=1) % 2 == 0).all()
    np.testing.assert_array_equal(exact, longer)  # extra rounds change nothing
    # One round short: not a valid sample (masked positions, or odd parity).
    invalid = (short == MASK).any(axis=1) | (np.where(short == MASK, 0, short).sum(axis=1) % 2 == 1)
    assert invalid.mean() > 0.4


def enumerate_outputs(construction, n):
    """(logits on the all-MASK sequence, round-1 output, outputs for every first-round draw u in {0,1}^n
    with rounds 2.. run from x = u and state 1 under key 0, the same under key 1)."""
    us = jnp.asarray(list(itertools.product([0, 1], repeat=n)), jnp.int32)
    rule, predictor, x0 = construction.rule, construction.predictor, construction.initial_sequence()

    def finish(u, key):
        state = rule.init_state(u) + 1
        x = u
        for k in range(1, construction.n_rounds):
            x, state = rule.step(None, predictor, x, state, 1.0, 0.0, jax.random.fold_in(key, k))
        return x

    @fast_jit
    def everything(us):
        first, _ = rule.step(None, predictor, x0, rule.init_state(x0), 1.0, 0.5, jax.random.key(3))
        run = jax.vmap(finish, in_axes=(0, None))
        return predictor(x0, 1.0), first, run(us, jax.random.key(0)), run(us, jax.random.key(1))

    return tuple(np.asarray(a) for a in everything(us))


@pytest.mark.parametrize("name", sorted(CONSTRUCTIONS))
@pytest.mark.parametrize("n", [2, 3, 4, 7, 10])
def test_exactly_uniform_on_even_strings_by_enumeration(name, n):
    logits, first, out, out_other_key = enumerate_outputs(CONSTRUCTIONS[name](n), n)
    # Round 1 is an independent fair bit at every position: the predictor is uniform on the all-MASK
    # sequence and the rule reveals everything.
    np.testing.assert_array_equal(logits, np.zeros((n, 2)))
    assert np.isin(first, [0, 1]).all()
    # Later rounds are deterministic functions of u, and the map u -> x is 2-to-1 onto the even set.
    np.testing.assert_array_equal(out, out_other_key)
    assert np.isin(out, [0, 1]).all()
    counts = {}
    for row in out:
        counts[row.tobytes()] = counts.get(row.tobytes(), 0) + 1
    evens = [np.array(s, dtype=out.dtype) for s in itertools.product([0, 1], repeat=n) if sum(s) % 2 == 0]
    assert len(counts) == len(evens) == 2 ** (n - 1)
    assert all(counts.get(s.tobytes(), 0) == 2 for s in evens)


def test_revision_n1_is_the_point_mass_and_remask_rejects_it():
    np.testing.assert_array_equal(samples("revision")["even", 1], np.zeros((64, 1)))
    for bad in (0, 1, -3, 2.0, True, "4"):
        with pytest.raises(ValueError, match="n must be an int >= 2"):
            parity_remask(bad)
    with pytest.raises(ValueError, match="n must be an int >= 1"):
        parity_revision(0)


@pytest.mark.parametrize("name", sorted(CONSTRUCTIONS))
def test_sampled_tv_is_at_the_multinomial_floor(name):
    n, n_samples = TV_N, TV_SAMPLES
    xs = samples(name)["tv",]
    assert np.isin(xs, [0, 1]).all() and (xs.sum(axis=1) % 2 == 0).all()
    cells = xs @ (1 << np.arange(n))
    pmf = np.where(np.array([bin(k).count("1") % 2 == 0 for k in range(2 ** n)]), 2.0 ** (1 - n), 0.0)
    tv = 0.5 * np.abs(np.bincount(cells, minlength=2 ** n) / n_samples - pmf).sum()
    draws = np.random.default_rng(0).multinomial(n_samples, pmf, size=200) / n_samples
    floor = 0.5 * np.abs(draws - pmf).sum(axis=1)
    assert tv <= floor.mean() + 4 * floor.std(), (tv, floor.mean(), floor.std())
