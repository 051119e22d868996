"""Sudoku: generated puzzles lie in their givens bucket, agree with a valid solution and have exactly one
solution according to a separate backtracking counter written here; the library's counter agrees with it
on puzzles with many solutions; search depth 0 means 'solved by singles' (checked by a plain singles
solver); the JAX checker accepts any solution and rejects broken grids; keyed determinism."""

import functools

import jax
import numpy as np
import pytest
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from diffserial.serial_tasks import make_task
from diffserial.serial_tasks.sudoku import BUCKETS, SudokuTask, analyze, count_solutions, solve

KEY = jax.random.key(2)
UNITS = ([[(r, c) for c in range(9)] for r in range(9)] + [[(r, c) for r in range(9)] for c in range(9)]
         + [[(3 * br + r, 3 * bc + c) for r in range(3) for c in range(3)] for br in range(3) for bc in range(3)])


def valid_solution(grid):
    grid = np.asarray(grid).reshape(9, 9)
    return all(sorted(int(grid[r, c]) for r, c in unit) == list(range(1, 10)) for unit in UNITS)


def candidates(grid, r, c):
    used = set(grid[r].tolist()) | set(grid[:, c].tolist())
    used |= set(grid[3 * (r // 3):3 * (r // 3) + 3, 3 * (c // 3):3 * (c // 3) + 3].ravel().tolist())
    return [d for d in range(1, 10) if d not in used]


def brute_force_count(puzzle, limit):
    """Solutions up to `limit`: plain backtracking on the blank with the fewest candidates (sets, no
    propagation). A grid whose givens already clash has 0 solutions."""
    grid = np.asarray(puzzle).reshape(9, 9).copy()
    for r, c in zip(*np.nonzero(grid)):
        d, grid[r, c] = grid[r, c], 0
        clash = d not in candidates(grid, r, c)
        grid[r, c] = d
        if clash:
            return 0

    def count():
        blanks = [(len(candidates(grid, r, c)), r, c) for r, c in zip(*np.nonzero(grid == 0))]
        if not blanks:
            return 1
        _, r, c = min(blanks)
        total = 0
        for d in candidates(grid, r, c):
            grid[r, c] = d
            total += count()
            grid[r, c] = 0
            if total >= limit:
                break
        return total

    return min(count(), limit)


def singles_solve(puzzle):
    """Fill naked singles (one candidate) and hidden singles (a digit with one place in a unit) until
    nothing changes; returns the grid reached."""
    grid = np.asarray(puzzle).reshape(9, 9).copy()
    changed = True
    while changed:
        changed = False
        for r, c in zip(*np.nonzero(grid == 0)):
            cands = candidates(grid, r, c)
            if len(cands) == 1:
                grid[r, c], changed = cands[0], True
        for unit in UNITS:
            for d in range(1, 10):
                places = [(r, c) for r, c in unit if grid[r, c] == 0 and d in candidates(grid, r, c)]
                if len(places) == 1 and d not in [grid[r, c] for r, c in unit]:
                    grid[places[0]], changed = d, True
    return grid.ravel()


@functools.lru_cache(maxsize=None)
def puzzles(difficulty, batch, **kwargs):
    return jax.device_get(SudokuTask(difficulty, **kwargs).sample(KEY, batch))


@pytest.mark.parametrize("difficulty", list(BUCKETS))
def test_puzzles_are_unique_and_in_their_bucket(difficulty):
    ex = puzzles(difficulty, 2)
    low, high = BUCKETS[difficulty]
    assert ex.prompt.shape == ex.answer.shape == (2, 81) and ex.cot is None
    for puzzle, solution in zip(ex.prompt, ex.answer):
        assert low <= np.count_nonzero(puzzle) <= high
        assert valid_solution(solution)
        given = puzzle != 0
        np.testing.assert_array_equal(puzzle[given], solution[given])
        assert brute_force_count(puzzle, 2) == 1
        assert count_solutions(puzzle) == 1
        np.testing.assert_array_equal(solve(puzzle), solution)


def test_solution_counter_agrees_with_brute_force():
    """Puzzles with several solutions: a hard puzzle with 0, 4, 8 more givens blanked, counted up to 30."""
    puzzle = puzzles("hard", 2).prompt[0]
    rng = np.random.default_rng(0)
    counts = []
    for extra in (0, 4, 8):
        blanked = puzzle.copy()
        blanked[rng.choice(np.flatnonzero(puzzle), extra, replace=False)] = 0
        counts.append(brute_force_count(blanked, 30))
        assert count_solutions(blanked, limit=30) == counts[-1]
        assert count_solutions(blanked) == min(counts[-1], 2)
    assert counts[0] == 1 and max(counts) > 2
    clash = puzzle.copy()
    clash[:2] = 5  # two 5s in row 0
    assert brute_force_count(clash, 2) == count_solutions(clash) == 0


def test_search_depth_zero_iff_singles_solve_it():
    deep = puzzles("hard", 1, min_search_depth=1)
    for puzzle in np.concatenate([puzzles(d, 2).prompt for d in BUCKETS] + [deep.prompt]):
        stats = analyze(puzzle)
        solved = singles_solve(puzzle)
        assert (stats.search_depth == 0) == bool(np.all(solved != 0))
        assert (stats.search_depth == 0) == (stats.search_nodes == 1)
    assert analyze(deep.prompt[0]).search_depth >= 1


def test_checker_accepts_any_solution_and_rejects_broken_grids():
    task = SudokuTask("hard")
    ex = puzzles("hard", 2)
    puzzle, solution = ex.prompt[0], ex.answer[0]
    free = np.flatnonzero(puzzle == 0)
    row_swap = solution.copy()  # swap two blanks of one row: rows stay valid, columns break
    row = free[0] // 9
    a, b = [i for i in free if i // 9 == row][:2]
    row_swap[[a, b]] = row_swap[[b, a]]
    changed_given = solution.copy()
    given = np.flatnonzero(puzzle)[0]
    changed_given[given] = solution[given] % 9 + 1
    zero = solution.copy()
    zero[free[0]] = 0
    # a puzzle with two solutions: both are accepted
    two = puzzle.copy()
    rng = np.random.default_rng(1)
    while count_solutions(two) < 2:
        two[rng.choice(np.flatnonzero(two))] = 0
    other = solve_excluding(two, solution)
    assert other is not None and not np.array_equal(other, solution)
    prompts = np.stack([puzzle] * 4 + [two, two])
    answers = np.stack([solution, row_swap, changed_given, zero, solution, other])
    np.testing.assert_array_equal(task.check(prompts, answers), [True, False, False, False, True, True])
    with pytest.raises(ValueError, match="answer must have shape"):
        task.check(prompts, answers[:, :80])


def solve_excluding(puzzle, solution):
    """A solution of `puzzle` different from `solution` (brute force over the first differing blank)."""
    for cell in np.flatnonzero(puzzle == 0):
        for digit in range(1, 10):
            if digit != solution[cell]:
                trial = puzzle.copy()
                trial[cell] = digit
                if brute_force_count(trial, 1) == 1:
                    return solve(trial)
    return None


def test_keyed_determinism_and_devices():
    task = SudokuTask("easy")
    full = puzzles("easy", 2)
    single = task.sample_at(KEY, [1])
    np.testing.assert_array_equal(single.prompt[0], full.prompt[1])
    sharded = task.sample(KEY, 8, NamedSharding(Mesh(np.array(jax.devices()), ("data",)), PartitionSpec("data")))
    assert len(sharded.prompt.sharding.device_set) == 8
    np.testing.assert_array_equal(sharded.prompt[:2], full.prompt)
    np.testing.assert_array_equal(sharded.answer[:2], full.answer)
    assert not np.array_equal(task.sample(jax.random.key(3), 1).prompt[0], full.prompt[0])


def test_bad_arguments():
    assert make_task("sudoku", "medium") == SudokuTask("medium")
    with pytest.raises(ValueError, match="difficulty must be one of"):
        SudokuTask("expert")
    with pytest.raises(ValueError, match="min_givens must be an int in 17..81"):
        SudokuTask("hard", min_givens=10)
    with pytest.raises(ValueError, match="shape"):
        analyze(np.zeros(80, int))
    with pytest.raises(ValueError, match="entries must be integers"):
        analyze(np.full(81, 10))
    with pytest.raises(RuntimeError, match="no puzzle"):
        SudokuTask("easy", min_search_depth=5, max_tries=1).sample(KEY, 1)
