"""Sudoku: exact accuracy vs tokens decoded per step, per decoding order, on easy / medium / hard puzzles
(issue 5, study 4), with a hand-built FIXED-DEPTH denoiser.

Denoiser. `diffserial.constructions.sudoku_propagation.SudokuPropagation(r)`: r rounds of constraint
propagation (naked singles, and hidden singles if config.hidden_singles), the uniform law on each cell's
remaining candidates. It is not a trained model: a 2-core CPU cannot train a good Sudoku model in the time
budget, and the training loop does not take Sudoku (its generator is host-side, so `training.tasks`
rejects it), so there is no `config.checkpoint`. What it keeps of a trained fixed-depth network is the
point of the study: its depth (r rounds) does not grow with the number of sampler steps.

Puzzles. For each bucket of config.buckets (`sudoku.BUCKETS`, by givens: easy 54..80, medium 27..53, hard
17..26), config.n_puzzles unique-solution puzzles from `SudokuTask(bucket).generate_at(key_b, i)` (host-side,
puzzle i depends only on (key_b, i)); key_b = fold_in(fold_in(key(seed), 11), index of the bucket in BUCKETS).

Decoding. Seed i (i < n_seeds = n_puzzles samples_per_puzzle) decodes puzzle i mod n_puzzles: its given
cells are the prompt (fixed, never masked), its blanks start masked (`PuzzleOfSeed`). For every rounds r
in config.rounds, sampler and tokens per step k in config.tokens_per_step, the chain runs through the
driver (one `lax.scan` over steps, vmapped over seeds, sharded over the mesh) for

    T = ceil(B_max / k) steps,   B_max = 81 - (fewest givens of the bucket) (27, 54, 64),

so k = 81 decodes every blank in one step and k = 1 one blank per step. The top-k rules (topk_confidence =
adaptive, most probable sampled token first; topk_margin, topk_entropy; topk_random = random order) are
built with k: they reveal exactly k masked cells per step (the rest at the last step; steps after the
puzzle is complete do nothing). `ancestral` (MDLM, linear schedule, uniform grid) has no k: it reveals
each masked cell with probability 1 / (steps left), about blanks / T <= k cells per step, in a random order.
The key of a (bucket) is shared by all rounds, samplers and k: the comparisons are paired.

Scoring. The decoded grid is checked by `SudokuTask.check` (every row, column and box holds 1..9 once and the
givens are kept; exact). accuracy = fraction of seeds solved with a 95% Clopper-Pearson interval (with
samples_per_puzzle = 1 an interval over puzzles; with more, seeds of one puzzle are not independent and the
interval is conditional on the puzzle set). Also per row: the accuracy on puzzles that `sudoku.analyze`
solves without a guess (search depth 0) and on the others, and `solved_by_rounds`, the fraction of puzzles
that r rounds of propagation from the givens alone determine completely (all-at-once decoding solves
those and, by lucky guesses, rarely more).

Published pattern (Wewer et al. 2025, "Spatial Reasoning with Denoising Models", ICML; numbers as quoted in
issue 5): parallel decoding solves 99.4 / 53.6 / 0.8 % of easy / medium / hard puzzles, and sequential
confidence-ordered decoding is much better on hard. Their model is a trained denoising network on
MNIST-image Sudoku, not this propagation denoiser: only the pattern is comparable, not the numbers.
"""

from __future__ import annotations

import dataclasses
import math
import os
import time
from typing import Iterator

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from diffserial.constructions import sudoku_propagation as prop
from diffserial.metrics.intervals import clopper_pearson
from diffserial.processes.masked import SCHEDULES, make_schedule
from diffserial.samplers import MaskedRule, masked_grid, masked_sampler, sample_masked, seed_mesh
from diffserial.serial_tasks import sudoku
from diffserial.studies import report
from diffserial.validation import check_ints

STUDY = "sudoku_decoding"
POSTFIX_KEYS = ("bucket", "rounds", "sampler", "tokens_per_step")
POINT_KEYS = ("bucket", "rounds", "sampler", "tokens_per_step")  # a row's point (the tuples of points())
TOPK_SAMPLERS = ("topk_confidence", "topk_margin", "topk_entropy", "topk_random")
SAMPLERS = TOPK_SAMPLERS + ("ancestral",)
PUBLISHED = {
    "source": "Wewer et al. 2025, Spatial Reasoning with Denoising Models (ICML), as quoted in issue 5",
    "model": "a trained denoising network on MNIST-image Sudoku (not this study's propagation denoiser)",
    "parallel_accuracy": {"easy": 0.994, "medium": 0.536, "hard": 0.008},
    "sequential_adaptive": "confidence-ordered sequential decoding much better on hard",
}


@dataclasses.dataclass(frozen=True)
class PuzzleSet:
    """The puzzles of one bucket: puzzles / solutions (P, 81) int32 Sudoku grids (0 = blank), search_depth (P,)
    from `sudoku.analyze`, and the seconds their generation took."""

    bucket: str
    puzzles: np.ndarray
    solutions: np.ndarray
    search_depth: np.ndarray
    seconds: float


def validate(config: ml_collections.ConfigDict) -> None:
    """Raise ValueError for a config that cannot run, before anything is generated or compiled."""
    for field in ("buckets", "samplers", "tokens_per_step", "rounds"):
        if not isinstance(config[field], tuple) or not config[field]:
            raise ValueError(f"config.{field} must be a non-empty tuple; got {config[field]!r}")
        if len(set(config[field])) != len(config[field]):
            raise ValueError(f"config.{field} has duplicates: {config[field]}")
    for bucket in config.buckets:
        if bucket not in sudoku.BUCKETS:
            raise ValueError(f"unknown bucket {bucket!r} in config.buckets; valid: {', '.join(sudoku.BUCKETS)}")
    for name in config.samplers:
        if name not in SAMPLERS:
            raise ValueError(f"sampler {name!r} has no tokens-per-step control; valid: {', '.join(SAMPLERS)}")
    check_ints("config.tokens_per_step", config.tokens_per_step, 1, prop.N_CELLS)
    check_ints("config.rounds", config.rounds, 1, prop.N_CELLS)
    for field in ("n_puzzles", "samples_per_puzzle", "block_size"):
        check_ints(f"config.{field}", config[field], 1)
    check_ints("config.seed", config.seed, 0)
    if not isinstance(config.hidden_singles, bool):
        raise ValueError(f"config.hidden_singles must be a bool; got {config.hidden_singles!r}")
    if config.schedule not in SCHEDULES:
        raise ValueError(f"unknown schedule {config.schedule!r}; valid: {', '.join(sorted(SCHEDULES))}")


def max_blanks(bucket: str) -> int:
    """B_max = 81 - the fewest givens of the bucket: the most blanks a puzzle of it can have."""
    return prop.N_CELLS - sudoku.BUCKETS[bucket][0]


def steps_for(bucket: str, tokens_per_step: int) -> int:
    """T = ceil(B_max / k): steps that decode every blank of any puzzle of the bucket at k per step."""
    return math.ceil(max_blanks(bucket) / tokens_per_step)


def points(config: ml_collections.ConfigDict) -> list[tuple[str, int, str, int]]:
    """(bucket, rounds, sampler, tokens_per_step) in the order they are measured."""
    return [(b, r, s, k) for b in config.buckets for r in config.rounds for s in config.samplers
            for k in config.tokens_per_step]


def generate_puzzles(bucket: str, n_puzzles: int, key: jax.Array) -> PuzzleSet:
    """`n_puzzles` puzzles of `bucket`; puzzle i = SudokuTask(bucket).generate_at(key, i) (host-side)."""
    task = sudoku.SudokuTask(bucket)
    start = time.perf_counter()
    made = [task.generate_at(key, i) for i in range(n_puzzles)]
    return PuzzleSet(bucket, np.stack([m[0] for m in made]), np.stack([m[1] for m in made]),
                     np.array([m[2].search_depth for m in made], np.int32), time.perf_counter() - start)


def init_key_table(key: jax.Array, n_seeds: int) -> np.ndarray:
    """(n_seeds, k) uint32: the key data of fold_in(fold_in(key, i), 0), the key the driver hands seed i's
    init_fn (its seed contract), for i < n_seeds. RuntimeError if two rows coincide."""
    table = np.asarray(jax.vmap(lambda i: jax.random.key_data(
        jax.random.fold_in(jax.random.fold_in(key, i), 0)).reshape(-1))(jnp.arange(n_seeds, dtype=jnp.uint32)))
    if len(np.unique(table, axis=0)) != n_seeds:
        raise RuntimeError("two seeds share an init key: cannot map seeds to puzzles")
    return table


def puzzle_of_seed(init_keys: jax.Array, prompts: jax.Array, key: jax.Array) -> jax.Array:
    """init_fn body: the row of `prompts` (n_seeds, 81) whose `init_keys` row equals key_data(key), i.e.
    seed i's starting tokens (givens, MASK on blanks). Seeds past the table (block padding) get row 0."""
    hit = jnp.all(init_keys == jax.random.key_data(key).reshape(-1), axis=-1)
    return jnp.asarray(prompts)[jnp.argmax(hit)]


def seed_prompts(puzzles: PuzzleSet, n_seeds: int) -> np.ndarray:
    """(n_seeds, 81) starting tokens: seed i decodes puzzle i mod n_puzzles."""
    return np.asarray(prop.to_tokens(puzzles.puzzles[np.arange(n_seeds) % len(puzzles.puzzles)]))


def make_rule(sampler: str, tokens_per_step: int) -> MaskedRule:
    """The masked rule bound to MASK = 9: a top-k rule revealing exactly k cells per step, or ancestral."""
    kwargs = {"k": tokens_per_step} if sampler in TOPK_SAMPLERS else {}
    return masked_sampler(sampler, **kwargs).bind(prop.VOCAB_SIZE)


def sample(config, init_fn, sampler: str, tokens_per_step: int, steps: int, rounds: int, key, mesh,
           pad_to: int) -> np.ndarray:
    """Final tokens (n_seeds, 81) of `sampler` at k tokens per step for `steps` steps with the r-round
    propagation denoiser, from `init_fn` (a Partial of `puzzle_of_seed`)."""
    tokens = sample_masked(
        prop.SudokuPropagation(rounds, config.hidden_singles), make_schedule(config.schedule),
        make_rule(sampler, tokens_per_step), masked_grid(steps), key=key,
        n_seeds=config.n_puzzles * config.samples_per_puzzle, length=prop.N_CELLS, vocab_size=prop.VOCAB_SIZE,
        init_fn=init_fn, mesh=mesh, block_size=config.block_size, pad_to=pad_to)
    return np.asarray(tokens)


_propagate_batch = jax.jit(jax.vmap(prop.propagate, in_axes=(0, None, None)), static_argnums=(1, 2))


def solved_by_rounds(puzzles: PuzzleSet, rounds: int, hidden_singles: bool) -> float:
    """Fraction of puzzles whose candidates after `rounds` rounds from the givens are exactly the solution."""
    cand = np.asarray(_propagate_batch(prop.to_tokens(puzzles.puzzles), rounds, hidden_singles))
    truth = np.eye(prop.VOCAB_SIZE, dtype=bool)[puzzles.solutions - 1]
    return float(np.mean(np.all(cand == truth, axis=(1, 2))))


def _rate(correct: np.ndarray) -> float | None:
    return float(correct.mean()) if correct.size else None


def measure(puzzles: PuzzleSet, tokens: np.ndarray) -> dict:
    """Exact accuracy of the decoded grids (seed i = puzzle i mod P) with its 95% Clopper-Pearson interval, and
    the accuracy on the puzzles of search depth 0 (no guess needed) and on the others."""
    index = np.arange(len(tokens)) % len(puzzles.puzzles)
    correct = np.asarray(sudoku.SudokuTask(puzzles.bucket).check(puzzles.puzzles[index],
                                                                  np.asarray(prop.to_grid(tokens))))
    no_guess = puzzles.search_depth[index] == 0
    k, n = int(correct.sum()), len(correct)
    lo, hi = clopper_pearson(k, n)
    return {"n_seeds": n, "n_correct": k, "accuracy": k / n, "acc_lo": lo, "acc_hi": hi,
            "accuracy_depth0": _rate(correct[no_guess]), "accuracy_guess": _rate(correct[~no_guess])}


def run(config: ml_collections.ConfigDict, mesh=None, workdir: str | None = None,
        done=frozenset()) -> Iterator[dict]:
    """Yield one row per (bucket, rounds, sampler, tokens_per_step) not in `done` (puzzles are generated
    only for a bucket with points left); see the module docstring."""
    del workdir
    mesh = mesh if mesh is not None else seed_mesh(jax.local_devices())
    root = jax.random.key(config.seed)
    n_seeds = config.n_puzzles * config.samples_per_puzzle
    pad_to = max(steps_for(b, k) for b in config.buckets for k in config.tokens_per_step)
    left = [p for p in points(config) if p not in done]
    for bucket in config.buckets:
        if not any(p[0] == bucket for p in left):
            continue
        bucket_id = tuple(sudoku.BUCKETS).index(bucket)
        puzzles = generate_puzzles(bucket, config.n_puzzles, jax.random.fold_in(jax.random.fold_in(root, 11),
                                                                                bucket_id))
        key = jax.random.fold_in(jax.random.fold_in(root, 12), bucket_id)
        init_fn = jax.tree_util.Partial(puzzle_of_seed, jnp.asarray(init_key_table(key, n_seeds)),
                                        jnp.asarray(seed_prompts(puzzles, n_seeds)))
        blanks = np.sum(puzzles.puzzles == 0, axis=1)
        common = {"study": STUDY, "bucket": bucket, "denoiser": "propagation", "hidden_singles": config.hidden_singles,
                  "n_puzzles": config.n_puzzles, "samples_per_puzzle": config.samples_per_puzzle,
                  "schedule": config.schedule, "mean_blanks": float(blanks.mean()), "max_blanks": int(blanks.max()),
                  "frac_depth0": float(np.mean(puzzles.search_depth == 0)),
                  "generation_seconds": puzzles.seconds}
        for rounds in config.rounds:
            if not any(p[:2] == (bucket, rounds) for p in left):
                continue
            solved = solved_by_rounds(puzzles, rounds, config.hidden_singles)
            for sampler in config.samplers:
                for k in config.tokens_per_step:
                    if (bucket, rounds, sampler, k) in done:
                        continue
                    start = time.perf_counter()
                    steps = steps_for(bucket, k)
                    tokens = sample(config, init_fn, sampler, k, steps, rounds, key, mesh, pad_to)
                    yield {**common, "rounds": rounds, "sampler": sampler, "tokens_per_step": k, "steps": steps,
                           "solved_by_rounds": solved, **measure(puzzles, tokens),
                           "seconds": time.perf_counter() - start}


def _grouped(rows: list[dict]) -> dict:
    """{(rounds, bucket, sampler): {tokens_per_step: row}}, ordered by rounds, bucket (easy, medium, hard) and
    sampler (as in the rows)."""
    samplers = list(dict.fromkeys(r["sampler"] for r in rows))
    order = lambda key: (key[0], tuple(sudoku.BUCKETS).index(key[1]), samplers.index(key[2]))
    groups = report.group_by(rows, "rounds", "bucket", "sampler")
    return {key: {r["tokens_per_step"]: r for r in groups[key]} for key in sorted(groups, key=order)}


def summarize(rows: list[dict]) -> dict:
    """Accuracy by k per (rounds, bucket, sampler), and per (rounds, bucket) the all-at-once (largest k) and
    one-per-step (k = 1) accuracy of every sampler beside the published parallel accuracy."""
    accuracy, comparison = {}, {}
    for (rounds, bucket, sampler), by_k in _grouped(rows).items():
        accuracy.setdefault(f"r={rounds}", {}).setdefault(bucket, {})[sampler] = {
            str(k): by_k[k]["accuracy"] for k in sorted(by_k, reverse=True)}
        first = next(iter(by_k.values()))
        entry = comparison.setdefault(f"r={rounds}", {}).setdefault(bucket, {
            "published_parallel": PUBLISHED["parallel_accuracy"][bucket], "solved_by_rounds": first["solved_by_rounds"],
            "frac_depth0": first["frac_depth0"], "all_at_once": {}, "one_per_step": {}})
        entry["all_at_once"][sampler] = by_k[max(by_k)]["accuracy"]
        if 1 in by_k:
            entry["one_per_step"][sampler] = by_k[1]["accuracy"]
    return {"study": STUDY, "denoiser": "propagation (fixed depth: r rounds of naked/hidden singles)",
            "published": PUBLISHED, "accuracy": accuracy, "comparison": comparison}


def plot(rows: list[dict], workdir: str) -> list[str]:
    """accuracy_vs_tokens_per_step.png: a panel per bucket, accuracy vs k (log axis, all at once on the left),
    colour = sampler, line style = rounds r, 95% intervals; the published parallel accuracy as a star at k = 81."""
    import matplotlib.pyplot as plt

    buckets = list(dict.fromkeys(r["bucket"] for r in rows))
    samplers = list(dict.fromkeys(r["sampler"] for r in rows))
    rounds = sorted({r["rounds"] for r in rows})
    color = {s: plt.cm.tab10(i % 10) for i, s in enumerate(samplers)}
    style = {r: ("-", "--", ":", "-.")[i % 4] for i, r in enumerate(rounds)}
    fig, axes = plt.subplots(1, len(buckets), figsize=(4.3 * len(buckets), 4), squeeze=False, sharey=True)
    for ax, bucket in zip(axes[0], buckets):
        for (r, b, sampler), by_k in _grouped(rows).items():
            if b != bucket:
                continue
            curve = [by_k[k] for k in sorted(by_k)]
            ax.errorbar([c["tokens_per_step"] for c in curve], [c["accuracy"] for c in curve], marker="o", ms=3,
                        color=color[sampler], ls=style[r], label=f"{sampler}, r={r}",
                        yerr=[[c["accuracy"] - c["acc_lo"] for c in curve], [c["acc_hi"] - c["accuracy"] for c in curve]])
        ax.plot([prop.N_CELLS], [PUBLISHED["parallel_accuracy"][bucket]], "k*", ms=11,
                label="Wewer et al. 2025, parallel (trained model)")
        ks = sorted({r["tokens_per_step"] for r in rows})
        ax.set_xscale("log")
        ax.set_xticks(ks, [str(k) for k in ks])
        ax.minorticks_off()
        ax.invert_xaxis()
        ax.set_ylim(-0.02, 1.02)
        ax.set_title(f"{bucket} ({sudoku.BUCKETS[bucket][0]}..{sudoku.BUCKETS[bucket][1]} givens)")
        ax.set_xlabel("tokens decoded per step (81 = all at once)")
        ax.grid(True, alpha=0.3)
    axes[0][0].set_ylabel("exact accuracy (puzzle solved)")
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=min(4, len(labels)), fontsize=7)
    fig.tight_layout(rect=(0, 0.06 + 0.035 * math.ceil(len(labels) / 4), 1, 1))
    name = "accuracy_vs_tokens_per_step.png"
    fig.savefig(os.path.join(workdir, name), dpi=110)
    plt.close(fig)
    return [name]


def table(rows: list[dict], summary: dict) -> str:
    """One line per (rounds, bucket, sampler): accuracy at each k, the fraction r rounds solve from the givens
    and the fraction needing no guess; then per (rounds, bucket) ours beside the published parallel accuracy."""
    ks = sorted({r["tokens_per_step"] for r in rows}, reverse=True)
    lines = []
    for (rounds, bucket, sampler), by_k in _grouped(rows).items():
        first = next(iter(by_k.values()))
        line = {"r": rounds, "bucket": bucket, "sampler": sampler, "solved_by_r": first["solved_by_rounds"],
                "depth0": first["frac_depth0"]}
        line.update({f"k={k}": by_k[k]["accuracy"] if k in by_k else None for k in ks})
        lines.append(line)
    cols = ["r", "bucket", "sampler"] + [f"k={k}" for k in ks] + ["solved_by_r", "depth0"]
    out = ["exact accuracy vs tokens per step k (r = propagation rounds of the fixed-depth denoiser; solved_by_r = "
           "fraction r rounds determine from the givens; depth0 = fraction solvable without a guess):",
           report.format_table(lines, cols), "",
           f"published: {PUBLISHED['source']} -- {PUBLISHED['model']}:"]
    for r, by_bucket in summary["comparison"].items():
        for bucket, e in by_bucket.items():
            fmt = lambda d: ", ".join(f"{s} {v:.3f}" for s, v in d.items()) or "-"
            out.append(f"  {r} {bucket}: published parallel {e['published_parallel']:.3f} | ours all at once: "
                       f"{fmt(e['all_at_once'])} | ours one per step: {fmt(e['one_per_step'])}")
    return "\n".join(out)


__all__ = ["POINT_KEYS", "POSTFIX_KEYS", "PUBLISHED", "PuzzleSet", "SAMPLERS", "STUDY", "TOPK_SAMPLERS", "generate_puzzles",
           "init_key_table", "make_rule", "max_blanks", "measure", "plot", "points", "puzzle_of_seed", "run",
           "sample", "seed_prompts", "solved_by_rounds", "steps_for", "summarize", "table", "validate"]
