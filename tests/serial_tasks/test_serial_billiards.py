"""The billiard ball model cellular automaton and its free-flight control against a plain Python reference
(block by block, the 16 block patterns written out; free flight particle by particle): answers and chains
of thought from the documented token layout, hand-made collisions, particle-count conservation,
reversibility, determinism over batch sizes and devices, the checker, the registry and bad arguments."""

import functools
import math

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from diffserial.serial_tasks import make_task
from diffserial.serial_tasks import billiards
from diffserial.serial_tasks.billiards import BilliardBallTask, billiards_free_flight_task
from diffserial.training.tasks import serial_layout

# compiled once per shape (op-by-op dispatch of these costs about a second per call)
margolus_step = jax.jit(billiards.margolus_step, static_argnums=2)
bbmca_rows = jax.jit(billiards.bbmca_rows, static_argnums=(1, 2))
free_flight_grid = jax.jit(billiards.free_flight_grid)
KEY = jax.random.key(7)
BATCH = 16
CONFIGS = {  # name -> (steps, height, width, density)
    "default": (6, 4, 4, 0.25),
    "wide": (5, 4, 6, 0.5),
    "one_step": (1, 6, 2, 0.25),
}
# The BBMCA block rule, block (a, b, c, d) = (top-left, top-right, bottom-left, bottom-right) -> new block.
BBMCA = {
    (0, 0, 0, 0): (0, 0, 0, 0),
    # one particle: to the diagonally opposite corner
    (1, 0, 0, 0): (0, 0, 0, 1), (0, 1, 0, 0): (0, 0, 1, 0), (0, 0, 1, 0): (0, 1, 0, 0), (0, 0, 0, 1): (1, 0, 0, 0),
    # two on a diagonal (head-on): to the other diagonal
    (1, 0, 0, 1): (0, 1, 1, 0), (0, 1, 1, 0): (1, 0, 0, 1),
    # two adjacent, three, four: unchanged
    (1, 1, 0, 0): (1, 1, 0, 0), (0, 0, 1, 1): (0, 0, 1, 1), (1, 0, 1, 0): (1, 0, 1, 0), (0, 1, 0, 1): (0, 1, 0, 1),
    (0, 1, 1, 1): (0, 1, 1, 1), (1, 0, 1, 1): (1, 0, 1, 1), (1, 1, 0, 1): (1, 1, 0, 1), (1, 1, 1, 0): (1, 1, 1, 0),
    (1, 1, 1, 1): (1, 1, 1, 1),
}


def reference_step(grid, phase):
    """One BBMCA step by a loop over the blocks of `phase`: look each block up in the table."""
    h, w = grid.shape
    new = grid.copy()
    for r in range(phase, h + phase, 2):
        for c in range(phase, w + phase, 2):
            cells = [(r % h, c % w), (r % h, (c + 1) % w), ((r + 1) % h, c % w), ((r + 1) % h, (c + 1) % w)]
            for cell, bit in zip(cells, BBMCA[tuple(int(grid[cell]) for cell in cells)]):
                new[cell] = bit
    return new


def reference_free_step(grid, phase):
    """One free step particle by particle: each particle moves to the opposite corner of its block."""
    h, w = grid.shape
    new = np.zeros_like(grid)
    for r, c in zip(*np.nonzero(grid)):
        dr, dc = (r - phase) % 2, (c - phase) % 2  # its corner in the block of this phase
        target = ((r + 1 - 2 * dr) % h, (c + 1 - 2 * dc) % w)
        assert new[target] == 0
        new[target] = 1
    return new


def reference(grid0, steps, collisions):
    """(steps, H, W) grids after steps 1..steps, step s on phase s mod 2."""
    step = reference_step if collisions else reference_free_step
    grids, grid = [], np.array(grid0)
    for s in range(steps):
        grid = step(grid, s % 2)
        grids.append(grid)
    return np.array(grids)


def task_of(name, collisions):
    steps, h, w, density = CONFIGS[name]
    return BilliardBallTask(steps, height=h, width=w, density=density, collisions=collisions)


@functools.lru_cache(maxsize=None)
def examples(name, collisions):
    return jax.device_get(task_of(name, collisions).sample(KEY, BATCH))


def grid(h, w, *cells):
    g = np.zeros((h, w), np.int32)
    for cell in cells:
        g[cell] = 1
    return g


def test_reference_table_conserves_count_and_is_an_involution():
    assert len(BBMCA) == 16
    for block, new in BBMCA.items():
        assert sum(new) == sum(block) and BBMCA[new] == block


@pytest.mark.parametrize("collisions", [True, False])
@pytest.mark.parametrize("name", list(CONFIGS))
def test_matches_reference(name, collisions):
    task = task_of(name, collisions)
    steps, h, w, _ = CONFIGS[name]
    ex = examples(name, collisions)
    assert ex.prompt.shape == ex.answer.shape == (BATCH, h * w) and (ex.cot is None) == (steps == 1)
    for b in range(BATCH):
        grids = reference(ex.prompt[b].reshape(h, w), steps, collisions)
        np.testing.assert_array_equal(ex.answer[b], grids[-1].reshape(-1))
        if steps > 1:
            np.testing.assert_array_equal(ex.cot[b], grids[:-1].reshape(-1))
    assert task.vocab_size == 2 and ex.prompt.dtype == ex.answer.dtype == np.int32


def test_single_particle_flies_diagonally_and_head_on_pair_turns():
    starts = [(0, 0), (0, 1), (1, 0), (3, 5)]
    velocities = [(1, 1), (1, -1), (-1, 1), (-1, -1)]
    for collisions in (True, False):
        grids = np.asarray(bbmca_rows(np.stack([grid(6, 6, start) for start in starts]), 7, collisions))
        for k, (start, velocity) in enumerate(zip(starts, velocities)):
            for t in range(1, 8):
                at = ((start[0] + velocity[0] * t) % 6, (start[1] + velocity[1] * t) % 6)
                np.testing.assert_array_equal(grids[t - 1, k], grid(6, 6, at))
    # (+1, +1) from (0, 0) and (-1, -1) from (3, 3) meet head-on in the odd block at (1, 1) after one step
    # and leave along the other diagonal; free flight passes through
    head_on = grid(6, 6, (0, 0), (3, 3))
    turned = np.asarray(bbmca_rows(head_on, 3))
    np.testing.assert_array_equal(turned[1], grid(6, 6, (1, 2), (2, 1)))
    np.testing.assert_array_equal(turned[2], grid(6, 6, (0, 3), (3, 0)))
    np.testing.assert_array_equal(free_flight_grid(head_on, 3), grid(6, 6, (3, 3), (0, 0)))
    # two adjacent particles in a block stay (they bounce back); without collisions they pass
    pair = grid(4, 4, (0, 0), (0, 1))
    np.testing.assert_array_equal(margolus_step(pair, 0), pair)
    np.testing.assert_array_equal(margolus_step(pair, 0, False), grid(4, 4, (1, 0), (1, 1)))


def test_block_rule_on_every_pattern_of_both_phases():
    """On a 2 x 2 torus the grid is one block of either partition (the odd one wrapped around)."""
    for block, new in BBMCA.items():
        even = np.array(block).reshape(2, 2)
        np.testing.assert_array_equal(margolus_step(even, 0), np.array(new).reshape(2, 2))
        odd = even[::-1, ::-1]  # the odd block at top-left (1, 1) holds (1,1), (1,0), (0,1), (0,0)
        np.testing.assert_array_equal(margolus_step(odd, 1), np.array(new).reshape(2, 2)[::-1, ::-1])


@pytest.mark.parametrize("collisions", [True, False])
def test_count_conserved_and_reversible(collisions):
    """The step is an involution, so running the phases backwards from the answer recovers the prompt."""
    steps, h, w, _ = CONFIGS["default"]
    ex = examples("default", collisions)
    counts = ex.prompt.sum(1)
    np.testing.assert_array_equal(ex.answer.sum(1), counts)
    np.testing.assert_array_equal(ex.cot.reshape(BATCH, steps - 1, -1).sum(2), np.repeat(counts[:, None], steps - 1, 1))
    back = jnp.asarray(ex.answer.reshape(BATCH, h, w))
    for s in reversed(range(steps)):
        back = margolus_step(back, s, collisions)  # batched grids
    np.testing.assert_array_equal(back.reshape(BATCH, -1), ex.prompt)


def test_free_flight_closed_form_equals_iterated_rotation_and_has_period_lcm():
    g0 = np.asarray(examples("wide", False).prompt[0]).reshape(4, 6)
    iterated = np.asarray(bbmca_rows(g0, 13, False))
    closed = np.asarray(jax.vmap(free_flight_grid, in_axes=(None, 0))(g0, jnp.arange(1, 14)))
    np.testing.assert_array_equal(closed, iterated)
    np.testing.assert_array_equal(closed[math.lcm(4, 6) - 1], g0)


@pytest.mark.parametrize("collisions", [True, False])
def test_same_key_same_data_across_batch_sizes_and_devices(collisions):
    """Row i is sample_one(fold_in(key, i)) whatever the batch; sharded over 8 devices once (the sharded
    path is shared by every task, each program costs a compile)."""
    task = task_of("default", collisions)
    full = examples("default", collisions)
    batches = [(task.sample(KEY, 3), slice(0, 3)), (task.sample_at(KEY, np.arange(13, 16)), slice(13, 16))]
    if collisions:
        mesh = Mesh(np.array(jax.devices()), ("data",))
        batches.append((task.sample(KEY, BATCH, NamedSharding(mesh, PartitionSpec("data"))), slice(None)))
    for part, rows in batches:
        for field in ("prompt", "answer", "cot"):
            np.testing.assert_array_equal(getattr(part, field), getattr(full, field)[rows])


@pytest.mark.parametrize("collisions", [True, False])
def test_checker_accepts_truth_rejects_flipped_bit(collisions):
    task = task_of("default", collisions)
    ex = examples("default", collisions)
    wrong = np.array(ex.answer)
    wrong[np.arange(BATCH), np.random.default_rng(0).integers(0, task.answer_len, BATCH)] ^= 1
    assert np.all(np.asarray(task.check(ex.prompt, ex.answer)))
    assert not np.any(np.asarray(task.check(ex.prompt, wrong)))


def test_sampling_law_and_prompt_space():
    """Cells i.i.d. Bernoulli(0.25): the occupied fraction, the particle-count variance 16 p (1 - p) = 3, and
    the number of distinct prompts among n against its exact mean sum_g 1 - (1 - P(g))^n (within 4 sd, the
    sd bounded by that of independent indicators)."""
    n, p = 1024, 0.25
    big = jax.device_get(task_of("default", True).sample(jax.random.key(1), n))
    assert abs(big.prompt.mean() - p) < 0.015 and abs(big.prompt.sum(1).var() - 3.0) < 0.4
    miss = [(1 - p ** k * (1 - p) ** (16 - k)) ** n for k in range(17)]
    mean = sum(math.comb(16, k) * (1 - miss[k]) for k in range(17))
    var = sum(math.comb(16, k) * miss[k] * (1 - miss[k]) for k in range(17))
    assert abs(len({tuple(row) for row in big.prompt.tolist()}) - mean) < 4 * math.sqrt(var)
    assert 2 ** BilliardBallTask(6).prompt_len >= 2 ** 16


def test_registry_layout_and_no_cot():
    assert make_task("billiards", 6) == BilliardBallTask(6, 4, 4, 0.25) == task_of("default", True)
    assert make_task("billiards_free_flight", 6) == billiards_free_flight_task(6) == task_of("default", False)
    no_cot = BilliardBallTask(6, with_cot=False)
    ex = no_cot.sample(KEY, BATCH)
    assert ex.cot is None and no_cot.cot_len == 0
    np.testing.assert_array_equal(ex.answer, examples("default", True).answer)
    config = ml_collections.ConfigDict({"serial_task": "billiards", "task_args": {"steps": 3}, "cot": True})
    layout = serial_layout(config)
    assert (layout.prompt_len, layout.cot_len, layout.answer_len) == (16, 32, 16)


def test_bad_arguments():
    for kwargs, match in [({"height": 5}, "height must be even"), ({"width": 3}, "width must be even"),
                          ({"height": 0}, "height must be an int >= 2"), ({"width": 4.0}, "width must be an int"),
                          ({"density": 0.0}, "density must be a float in"), ({"density": 1}, "density must be"),
                          ({"collisions": 1}, "collisions must be a bool")]:
        with pytest.raises(ValueError, match=match):
            BilliardBallTask(3, **kwargs)
    for steps in (0, -1, 2.0):
        with pytest.raises(ValueError, match="steps must be an int >= 1"):
            BilliardBallTask(steps)
    with pytest.raises(ValueError, match="steps must be an int >= 1"):
        billiards_free_flight_task(0)
    with pytest.raises(ValueError, match="grid width must be even"):
        billiards.margolus_step(jnp.zeros((4, 5), jnp.int32), 0)
