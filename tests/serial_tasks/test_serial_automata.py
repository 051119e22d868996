"""Rule 110 (and other elementary CAs) against a plain Python loop over an explicit neighbourhood table:
rows, middle cell, chain of thought, both boundaries; determinism over batch sizes and 8 devices; the
checker accepts the truth and rejects any flipped bit."""

import functools

import jax
import numpy as np
import pytest
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from diffserial.serial_tasks import make_task
from diffserial.serial_tasks.automata import ElementaryCATask

KEY = jax.random.key(3)
BATCH = 16
# Rule 110 written out neighbourhood by neighbourhood (left, centre, right) -> new centre.
RULE110 = {(1, 1, 1): 0, (1, 1, 0): 1, (1, 0, 1): 1, (1, 0, 0): 0, (0, 1, 1): 1, (0, 1, 0): 1, (0, 0, 1): 1,
           (0, 0, 0): 0}
TASKS_UNDER_TEST = {
    "row_periodic": ElementaryCATask(9, 6),
    "cell_zero": ElementaryCATask(13, 6, readout="cell", boundary="zero"),
    "rule30_row": ElementaryCATask(8, 5, rule=30, with_cot=False),
}


def python_ca(row, steps, table, boundary):
    """Rows 1..steps by a plain loop: cell i looks up (row[i-1], row[i], row[i+1]) in `table`."""
    rows, row, w = [], list(row), len(row)
    for _ in range(steps):
        if boundary == "periodic":
            row = [table[(row[(i - 1) % w], row[i], row[(i + 1) % w])] for i in range(w)]
        else:
            padded = [0] + row + [0]
            row = [table[(padded[i], padded[i + 1], padded[i + 2])] for i in range(w)]
        rows.append(row)
    return np.array(rows)


def wolfram_table(rule):
    """Neighbourhood table of a Wolfram code from its binary expansion, written as a string."""
    bits = format(rule, "08b")  # bits[0] is the new state for neighbourhood 111
    return {tuple(int(c) for c in format(7 - k, "03b")): int(bits[k]) for k in range(8)}


@functools.lru_cache(maxsize=None)
def examples(name):
    return TASKS_UNDER_TEST[name].sample(KEY, BATCH)


def test_wolfram_table_of_110_is_rule110():
    assert wolfram_table(110) == RULE110


@pytest.mark.parametrize("name", list(TASKS_UNDER_TEST))
def test_matches_python_loop(name):
    task = TASKS_UNDER_TEST[name]
    ex = jax.device_get(examples(name))
    table = RULE110 if task.rule == 110 else wolfram_table(task.rule)
    assert ex.prompt.shape == (BATCH, task.width) and ex.answer.shape == (BATCH, task.answer_len)
    for row0, answer, cot in zip(ex.prompt, ex.answer, ex.cot if task.with_cot else [None] * BATCH):
        rows = python_ca(row0.tolist(), task.steps, table, task.boundary)
        expected = rows[-1] if task.readout == "row" else rows[-1][task.width // 2: task.width // 2 + 1]
        np.testing.assert_array_equal(answer, expected)
        if cot is not None:
            last = rows[-1][:task.width // 2] if task.readout == "cell" else rows[-1][:0]
            np.testing.assert_array_equal(cot, np.concatenate([rows[:-1].reshape(-1), last]))
    assert (ex.cot is None) == (not task.with_cot)
    assert 0 < ex.answer.mean() < 1


@pytest.mark.parametrize("name", list(TASKS_UNDER_TEST))
def test_checker_accepts_truth_rejects_flipped_bit(name):
    task = TASKS_UNDER_TEST[name]
    ex = examples(name)
    flip_at = np.random.default_rng(0).integers(0, task.answer_len, BATCH)
    wrong = np.array(ex.answer)
    wrong[np.arange(BATCH), flip_at] ^= 1
    assert np.all(np.asarray(task.check(ex.prompt, ex.answer)))
    assert not np.any(np.asarray(task.check(ex.prompt, wrong)))


def test_same_key_same_data_across_batch_sizes_and_devices():
    task = TASKS_UNDER_TEST["row_periodic"]
    full = examples("row_periodic")
    small = task.sample(KEY, 3)
    sharded = task.sample(KEY, BATCH, NamedSharding(Mesh(np.array(jax.devices()), ("data",)), PartitionSpec("data")))
    tail = task.sample_at(KEY, np.arange(13, 16))  # 3 rows: the program compiled for batch 3
    for name in ("prompt", "answer", "cot"):
        np.testing.assert_array_equal(getattr(small, name), getattr(full, name)[:3])
        np.testing.assert_array_equal(getattr(sharded, name), getattr(full, name))
        np.testing.assert_array_equal(getattr(tail, name), getattr(full, name)[13:])


def test_registry_and_bad_arguments():
    assert make_task("rule110", 9, 6) == TASKS_UNDER_TEST["row_periodic"]
    for kwargs, match in [({"readout": "col"}, "readout must be one of"), ({"boundary": "open"}, "boundary"),
                          ({"rule": 256}, "rule must be an int in 0..255")]:
        with pytest.raises(ValueError, match=match):
            ElementaryCATask(9, 3, **kwargs)
    with pytest.raises(ValueError, match="steps"):
        ElementaryCATask(9, 0)
    one_step = ElementaryCATask(9, 1)
    assert one_step.cot_len == 0 and one_step.sample(KEY, 2).cot is None


@pytest.mark.parametrize("steps", [1, 3, 5])
def test_rule110_cell_is_the_light_cone_of_a_longer_row(steps):
    """rule110_cell(N): width 2N + 1, one answer bit = the middle cell after N steps, which depends on the 2N + 1
    cells it is given only: the same window placed in a row N cells longer on each side (the padding random)
    gives the same middle cell by the Python loop. Its cot is the N - 1 intermediate rows of the window and the
    first N cells of row N, so that in [prompt, cot, answer] every cell after row 0, the answer included, is
    Rule 110 of the three cells w + 1, w, w - 1 positions before it (the interior ones; w = 2N + 1)."""
    task = make_task("rule110_cell", steps)
    width = 2 * steps + 1
    cot_len = (steps - 1) * width + steps if steps > 1 else 0
    assert (task.width, task.answer_len, task.cot_len) == (width, 1, cot_len)
    ex = jax.device_get(task.sample(KEY, BATCH))
    seqs = np.concatenate([ex.prompt] + ([ex.cot] if cot_len else []) + [ex.answer], axis=1)
    assert seqs.shape[1] - 1 == (steps * width + steps if steps > 1 else width)  # the answer is cell (N, N)
    for seq in seqs:
        for i in range(width, len(seq)):
            if 0 < i % width < width - 1:
                assert seq[i] == RULE110[tuple(seq[i - width - 1:i - width + 2])], i
    pads = np.random.default_rng(steps).integers(0, 2, (BATCH, 2, steps))
    for prompt, answer, (left, right) in zip(ex.prompt, ex.answer, pads):
        row = np.concatenate([left, prompt, right])
        assert python_ca(row, steps, RULE110, "periodic")[-1][2 * steps] == answer[0]
