"""The fixed-depth Sudoku propagation denoiser: candidate sets equal a plain-Python reference on random
partial grids, the solution is never excluded from a consistent grid, the logits follow the documented
law, and r rounds determine exactly the puzzles that r rounds of propagation reach (every search-depth-0
puzzle for r large, not for r = 1)."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from diffserial.constructions import sudoku_propagation as sp
from diffserial.constructions.common import NEG_LOGIT
from diffserial.serial_tasks.sudoku import SudokuTask, analyze, random_solution

ROW, COL = np.divmod(np.arange(81), 9)
UNITS = ([[c for c in range(81) if ROW[c] == i] for i in range(9)] + [[c for c in range(81) if COL[c] == i] for i in range(9)]
         + [[c for c in range(81) if (ROW[c] // 3, COL[c] // 3) == divmod(i, 3)] for i in range(9)])
PEERS = [{p for u in UNITS if c in u for p in u} - {c} for c in range(81)]


def reference_candidates(grid, rounds, hidden_singles):
    """Plain-Python rounds on a Sudoku grid (0 = blank): list of 81 digit sets (1..9)."""
    known = {c: int(v) for c, v in enumerate(grid) if v}
    for _ in range(rounds):
        cand = [{known[c]} if c in known else set(range(1, 10)) - {known[p] for p in PEERS[c] if p in known}
                for c in range(81)]
        if hidden_singles:
            forced = [set() for _ in range(81)]
            for unit in UNITS:
                for d in range(1, 10):
                    places = [c for c in unit if d in cand[c]]
                    if len(places) == 1:
                        forced[places[0]].add(d)
            cand = [f if f else s for f, s in zip(forced, cand)]
        known = {c: next(iter(s)) for c, s in enumerate(cand) if len(s) == 1}
    return cand


@functools.lru_cache(maxsize=None)
def _batched(rounds, hidden_singles):
    return jax.jit(jax.vmap(lambda x: sp.propagate(x, rounds, hidden_singles)))


def _random_grids(n_consistent=12, n_noise=12, seed=0):
    """Partial grids: blanked random solutions (consistent; returned with their solutions) and random digits."""
    rng = np.random.default_rng(seed)
    solutions = np.stack([random_solution(rng) for _ in range(n_consistent)])
    keep = rng.random(solutions.shape) < rng.uniform(0.25, 0.75, (n_consistent, 1))
    noise = np.where(rng.random((n_noise, 81)) < 0.3, rng.integers(1, 10, (n_noise, 81)), 0)
    return np.where(keep, solutions, 0), solutions, noise


@pytest.mark.parametrize("hidden_singles", [True, False])
def test_candidates_equal_the_python_reference_on_random_partial_grids(hidden_singles):
    consistent, solutions, noise = _random_grids()
    grids = np.concatenate([consistent, noise])
    for rounds in (1, 2, 3):
        cand = np.asarray(_batched(rounds, hidden_singles)(sp.to_tokens(grids)))
        for grid, got in zip(grids, cand):
            want = reference_candidates(grid, rounds, hidden_singles)
            assert [set(np.flatnonzero(row) + 1) for row in got] == want
        # sound on consistent grids: the solution's digit is never excluded
        truth = np.eye(9, dtype=bool)[solutions - 1]
        assert np.all(cand[:len(consistent)] | ~truth)
    assert any(len(s) > 1 for s in want)  # not trivially determined


def test_logits_are_uniform_on_candidates_one_hot_on_known_cells_and_uniform_when_contradictory():
    grid = np.zeros(81, np.int32)
    grid[:8] = np.arange(1, 9)  # row 0: 1..8, cell 8 blank -> only 9 ...
    grid[9 + 8] = 9  # ... but cell (1, 8) holds 9: cell 8 has no candidate
    grid[40] = 5
    logits = np.asarray(sp.SudokuPropagation(rounds=1, hidden_singles=False)(sp.to_tokens(grid), jnp.float32(0.5)))
    assert logits.shape == (81, 9)
    np.testing.assert_array_equal(logits[0], np.where(np.arange(9) == 0, 0.0, NEG_LOGIT))  # known: one-hot
    np.testing.assert_array_equal(logits[8], np.zeros(9))  # contradiction: uniform over all digits
    cand = reference_candidates(grid, 1, False)
    for cell in (20, 41, 80):  # masked cells: 0 on the candidates, NEG_LOGIT elsewhere
        np.testing.assert_array_equal(logits[cell], [0.0 if d + 1 in cand[cell] else NEG_LOGIT for d in range(9)])
    probs = np.asarray(jax.nn.softmax(logits[20]))
    np.testing.assert_allclose(probs[probs > 0], 1.0 / len(cand[20]), rtol=1e-6)


def test_token_conversion_round_trips():
    grid = np.arange(81) % 10
    tokens = np.asarray(sp.to_tokens(grid))
    assert tokens.min() == 0 and tokens.max() == sp.MASK == 9
    np.testing.assert_array_equal(tokens[grid == 0], sp.MASK)
    np.testing.assert_array_equal(np.asarray(sp.to_grid(tokens)), grid)


def test_enough_rounds_determine_every_no_guess_puzzle_and_one_round_does_not():
    key = jax.random.key(3)
    made = [SudokuTask("medium", max_search_depth=0).generate_at(key, i) for i in range(8)]
    puzzles, solutions = np.stack([m[0] for m in made]), np.stack([m[1] for m in made])
    assert all(analyze(p).search_depth == 0 for p in puzzles)
    truth = np.eye(9, dtype=bool)[solutions - 1]
    solved = lambda r: np.all(np.asarray(_batched(r, True)(sp.to_tokens(puzzles))) == truth, axis=(1, 2))
    assert solved(81).all()
    assert not solved(1).all()
    guess = SudokuTask("hard", min_search_depth=1).generate_at(key, 0)[0]  # needs a guess: never determined
    assert not np.all(np.asarray(_batched(81, True)(sp.to_tokens(guess[None]))).sum(-1) == 1)


@pytest.mark.parametrize("rounds", [0, 82, 1.5, True])
def test_bad_rounds_raise(rounds):
    with pytest.raises(ValueError, match="rounds"):
        sp.SudokuPropagation(rounds=rounds)


def test_bad_shape_raises():
    with pytest.raises(ValueError, match="81"):
        sp.SudokuPropagation()(jnp.zeros((80,), jnp.int32), 0.5)
