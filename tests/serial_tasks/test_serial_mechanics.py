"""Lattice mechanics and its free-flight control: prompts parsed here by the documented token layout and
replayed by an independent event-driven simulator (exact rational event times, pairwise velocity
exchanges, wall flips), conservation laws, the integrability identity, the sampling law, determinism over
batch sizes and devices, the checker, the registry, the training layout and bad arguments."""

import functools
from fractions import Fraction

import jax
import ml_collections
import numpy as np
import pytest
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from diffserial.serial_tasks import make_task
from diffserial.serial_tasks.mechanics import MechanicsTask, free_flight_task
from diffserial.training.tasks import serial_layout

KEY = jax.random.key(5)
BATCH = 16
CONFIGS = {  # name -> (steps, n_particles, cells)
    "default": (9, 4, 16),
    "crowded": (13, 5, 6),
    "full": (7, 4, 4),
    "two_cells": (5, 2, 2),
    "one_step": (1, 3, 8),
    "long": (40, 3, 7),
}


def task_of(name, collisions):
    steps, n, g = CONFIGS[name]
    return MechanicsTask(steps, n_particles=n, cells=g, collisions=collisions)


@functools.lru_cache(maxsize=None)
def examples(name, collisions):
    return jax.device_get(task_of(name, collisions).sample(KEY, BATCH))


def parse(prompt, g):
    """(x, v) lists from the layout: pairs (x_i, g + 1 + v_i)."""
    pairs = np.asarray(prompt).reshape(-1, 2)
    return [int(p) for p in pairs[:, 0]], [int(t) - (g + 1) for t in pairs[:, 1]]


def reference(x0, v0, g, steps, collisions):
    """Event-driven simulation, [(x list, v list)] in label order at ticks 1..steps; each tick records the
    state before the events at that instant. Particles are kept in left-to-right order when colliding."""
    n = len(x0)
    order = sorted(range(n), key=lambda i: x0[i]) if collisions else list(range(n))
    xs = [Fraction(x0[i]) for i in order]
    vs = [v0[i] for i in order]

    def resolve():
        changed = True
        while changed:
            changed = False
            for k in range(n):
                if (xs[k] == 0 and vs[k] < 0) or (xs[k] == g - 1 and vs[k] > 0):
                    vs[k] = -vs[k]
                    changed = True
            if collisions:
                for k in range(n - 1):
                    if xs[k] == xs[k + 1] and vs[k] > vs[k + 1]:
                        vs[k], vs[k + 1] = vs[k + 1], vs[k]
                        changed = True

    def next_event():
        times = []
        for k in range(n):
            if vs[k] < 0:
                times.append(xs[k] / -vs[k])
            elif vs[k] > 0:
                times.append((g - 1 - xs[k]) / vs[k])
        if collisions:
            for k in range(n - 1):
                if vs[k] > vs[k + 1]:
                    times.append((xs[k + 1] - xs[k]) / (vs[k] - vs[k + 1]))
        times = [t for t in times if t > 0]
        return min(times) if times else None

    def advance(dt):
        for k in range(n):
            xs[k] += vs[k] * dt

    now, states = Fraction(0), []
    resolve()
    for tick in range(1, steps + 1):
        while True:
            dt = next_event()
            if dt is None or now + dt >= tick:
                advance(tick - now)
                now = Fraction(tick)
                break
            advance(dt)
            now += dt
            resolve()
        assert all(x.denominator == 1 and 0 <= x <= g - 1 for x in xs)
        x_lab, v_lab = [0] * n, [0] * n
        for k, i in enumerate(order):
            x_lab[i], v_lab[i] = int(xs[k]), vs[k]
        states.append((x_lab, v_lab))
        resolve()
    return states


@pytest.mark.parametrize("collisions", [True, False])
@pytest.mark.parametrize("name", list(CONFIGS))
def test_matches_event_driven_reference(name, collisions):
    task = task_of(name, collisions)
    steps, n, g = CONFIGS[name]
    ex = examples(name, collisions)
    assert ex.prompt.shape == (BATCH, 2 * n) and ex.answer.shape == (BATCH, n)
    assert (ex.cot is None) == (steps == 1)
    assert task.vocab_size == g + 3 and ex.prompt.max() < task.vocab_size and ex.answer.max() < g
    for b in range(BATCH):
        x0, v0 = parse(ex.prompt[b], g)
        states = reference(x0, v0, g, steps, collisions)
        np.testing.assert_array_equal(ex.answer[b], states[-1][0])
        if steps > 1:
            cot = [tok for x, v in states[:-1] for i in range(n) for tok in (x[i], g + 1 + v[i])]
            np.testing.assert_array_equal(ex.cot[b], cot)


def test_reference_hand_cases():
    """The conventions on small hand-worked cases (G = 6: walls at 0 and 5)."""
    # head-on in a cell at tick 1 (pre: larger velocity on the left), bounce back by tick 2
    assert reference([1, 3], [1, -1], 6, 2, True) == [([2, 2], [1, -1]), ([1, 3], [-1, 1])]
    # crossing between cells bounces back; free flight passes through
    assert reference([2, 3], [1, -1], 6, 1, True) == [([2, 3], [-1, 1])]
    assert reference([2, 3], [1, -1], 6, 1, False) == [([3, 2], [1, -1])]
    # a moving particle stops, the resting one moves on (Newton's cradle), labels in prompt order
    assert reference([3, 2], [0, 1], 6, 3, True) == [([3, 3], [0, 1]), ([4, 3], [1, 0]), ([5, 3], [1, 0])]
    # wall: arriving at 5 with +1 (recorded before the reflection), then back
    assert reference([4], [1], 6, 3, False) == [([5], [1]), ([4], [-1]), ([3], [-1])]


def test_task_on_hand_cases():
    task = MechanicsTask(3, n_particles=2, cells=6)
    prompt = np.array([[3, 7, 2, 8]])  # x = (3, 2), v = (0, +1)
    assert np.asarray(jax.vmap(task.solve)(prompt)).tolist() == [[5, 3]]
    assert np.asarray(jax.vmap(free_flight_task(3, n_particles=2, cells=6).solve)(prompt)).tolist() == [[3, 5]]


@pytest.mark.parametrize("name", ["default", "crowded", "long"])
def test_conservation_and_integrability(name):
    """With collisions: count, multiset of speeds (so the energy) and label order are conserved, the
    (position, velocity) multiset is the free-flight one at every tick, and the answer is the sorted
    free-flight answer permuted by the initial ranks."""
    steps, n, g = CONFIGS[name]
    col, free = examples(name, True), examples(name, False)
    np.testing.assert_array_equal(col.prompt, free.prompt)
    for b in range(BATCH):
        x0, v0 = parse(col.prompt[b], g)
        rank = np.argsort(np.argsort(x0))
        cot_c = np.asarray(col.cot[b]).reshape(steps - 1, n, 2)
        cot_f = np.asarray(free.cot[b]).reshape(steps - 1, n, 2)
        for t in range(steps - 1):
            xs, vs = cot_c[t, :, 0], cot_c[t, :, 1] - (g + 1)
            assert sorted(np.abs(vs).tolist()) == sorted(np.abs(v0).tolist())
            assert np.all(np.diff(xs[np.argsort(rank)]) >= 0)
            assert sorted(map(tuple, cot_c[t].tolist())) == sorted(map(tuple, cot_f[t].tolist()))
        np.testing.assert_array_equal(col.answer[b], np.sort(free.answer[b])[rank])


def test_sampling_law():
    steps, n, g = CONFIGS["default"]
    ex = examples("default", True)
    big = jax.device_get(task_of("default", True).sample(jax.random.key(1), 512))
    pairs = np.asarray(big.prompt).reshape(512, n, 2)
    assert all(len(set(row.tolist())) == n for row in pairs[..., 0])
    assert set(np.unique(pairs[..., 0]).tolist()) == set(range(g))
    assert set(np.unique(pairs[..., 1]).tolist()) == {g, g + 1, g + 2}
    assert len({tuple(r) for r in np.asarray(big.prompt).tolist()}) == 512
    assert ex.prompt.dtype == ex.answer.dtype == ex.cot.dtype == np.int32


@pytest.mark.parametrize("collisions", [True, False])
def test_same_key_same_data_across_batch_sizes_and_devices(collisions):
    task = task_of("default", collisions)
    full = examples("default", collisions)
    small = task.sample(KEY, 3)
    sharded = task.sample(KEY, BATCH, NamedSharding(Mesh(np.array(jax.devices()), ("data",)), PartitionSpec("data")))
    tail = task.sample_at(KEY, np.arange(13, 16))
    for field in ("prompt", "answer", "cot"):
        np.testing.assert_array_equal(getattr(small, field), getattr(full, field)[:3])
        np.testing.assert_array_equal(getattr(sharded, field), getattr(full, field))
        np.testing.assert_array_equal(getattr(tail, field), getattr(full, field)[13:])


@pytest.mark.parametrize("collisions", [True, False])
@pytest.mark.parametrize("name", ["default", "crowded"])
def test_checker_accepts_truth_rejects_perturbed(name, collisions):
    task = task_of(name, collisions)
    ex = examples(name, collisions)
    g = task.cells
    wrong = np.array(ex.answer)
    j = np.random.default_rng(0).integers(0, task.n_particles, BATCH)
    wrong[np.arange(BATCH), j] = (wrong[np.arange(BATCH), j] + 1) % g
    assert np.all(np.asarray(task.check(ex.prompt, ex.answer)))
    assert not np.any(np.asarray(task.check(ex.prompt, wrong)))


def test_registry_layout_and_no_cot():
    assert make_task("mechanics", 9) == MechanicsTask(9, 4, 16) == task_of("default", True)
    assert make_task("free_flight", 9) == task_of("default", False)
    no_cot = MechanicsTask(9, with_cot=False)
    ex = no_cot.sample(KEY, BATCH)
    assert ex.cot is None and no_cot.cot_len == 0
    np.testing.assert_array_equal(ex.answer, examples("default", True).answer)
    for name in ("mechanics", "free_flight"):
        config = ml_collections.ConfigDict({"serial_task": name, "task_args": {"steps": 6, "cells": 10}, "cot": True})
        layout = serial_layout(config)
        ex = layout.task.sample(jax.random.key(0), 4)
        assert (layout.prompt_len, layout.cot_len, layout.answer_len) == (8, 40, 4)
        assert ex.prompt.shape == (4, 8) and ex.cot.shape == (4, 40) and ex.answer.shape == (4, 4)
        assert layout.sequence(layout.task.sample_one(jax.random.key(1))).shape == (layout.length,)


def test_bad_arguments():
    with pytest.raises(ValueError, match="steps must be an int >= 1"):
        MechanicsTask(0)
    with pytest.raises(ValueError, match="cells must be an int in 2..61"):
        MechanicsTask(3, cells=1)
    with pytest.raises(ValueError, match="cells must be an int in 2..61"):
        MechanicsTask(3, cells=62)
    with pytest.raises(ValueError, match="n_particles must be an int in 1..5"):
        MechanicsTask(3, n_particles=6, cells=5)
    with pytest.raises(ValueError, match="n_particles must be an int in 1..16"):
        MechanicsTask(3, n_particles=0)
    with pytest.raises(ValueError, match="collisions must be a bool"):
        MechanicsTask(3, collisions=1)
    with pytest.raises(ValueError, match="steps must be an int"):
        free_flight_task(2.5)
