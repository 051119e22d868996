"""The compiled force field: lattice-point drift against a plain-Python walk table, the diagonal's closed
form, the deterministic flow against the interpreter, the noisy run at large L, smoothness, the seeds."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from diffserial.pinball import counter_machine as cm
from diffserial.pinball import force_field as ff
from diffserial.pinball import programs

PARAMS = ff.PinballParams(cell=4.0)
WORDS = ("", "ab", "aab", "abb", "ba")


def reference_move(machine, cells, lanes, regs, head, pc, lane, phase):
    """The unit move D(Q) of the module docstring's walk table at lattice point Q, in plain Python."""
    k = machine.n_registers
    move = np.zeros(k + 4)
    ins = machine.instructions[pc]
    if phase == 0:
        if isinstance(ins, cm.Halt):
            rule_lane = 0
        else:
            r = cm.fire(ins, cells[head], [v == 0 for v in regs])
            rule_lane = lanes.index((r.goto, r.delta + (r.move,))) + 1
        if lane < rule_lane:
            move[k + 2] = 1
        elif lane > rule_lane:
            move[k + 2] = -1
        elif lane > 0:
            move[k + 3] = 1  # the diagonal starts flat in the counters: ds/dphase = 0 at phase 0
    elif lane == 0:
        move[k + 3] = -1
    elif phase == 2:
        move[k + 2] = -1
    else:
        target = lanes[lane - 1][0]
        if pc == target:
            move[k + 3] = 1
        else:
            move[k + 1] = np.sign(target - pc)
    return move


@pytest.mark.parametrize("name, word", [("anbn", "ab"), ("compare", "ab"), ("multiply", "ba")])
def test_drift_at_every_lattice_point_is_the_walk_table(name, word):
    machine = programs.PROGRAMS[name]()
    compiled = ff.compile_machine(machine, word, PARAMS)
    cells = cm.tape(machine, word)
    k, n_lanes = machine.n_registers, len(compiled.lanes) + 1
    grid = list(itertools.product(*([range(3)] * k), range(len(cells)), range(len(machine.instructions)),
                                  range(n_lanes), range(3)))
    points = np.array(grid, np.float32) * PARAMS.cell
    drift = np.asarray(jax.jit(jax.vmap(ff.groove_drift, (None, 0)))(compiled.field, points))
    expected = np.array([reference_move(machine, cells, list(compiled.lanes), q[:k], *q[k:]) for q in grid])
    np.testing.assert_allclose(drift, PARAMS.speed * expected, atol=2e-3)


def test_diagonal_leg_follows_the_curve_c_plus_delta_s_of_phase():
    machine = programs.anbn()
    compiled = ff.compile_machine(machine, "ab", PARAMS)
    lane = list(compiled.lanes).index((0, (1, 1))) + 1        # count an 'a': r0 += 1, head += 1, stay at 0
    p = 0.25
    s = 6 * p**5 - 15 * p**4 + 10 * p**3
    y = np.array([0 + s, 1 + s, 0, lane, p], np.float32)      # on the curve, in the phase-0 cell
    drift = np.asarray(jax.jit(ff.groove_drift)(compiled.field, jnp.asarray(y * PARAMS.cell)))
    rate = 30 * p**2 * (1 - p) ** 2                          # ds/dphase
    np.testing.assert_allclose(drift, PARAMS.speed * np.array([rate, rate, 0, 0, 1]), atol=2e-3)


@pytest.mark.parametrize("name", sorted(programs.PROGRAMS))
def test_noiseless_flow_ends_in_the_interpreters_halting_state(name):
    machine = programs.PROGRAMS[name]()
    words = WORDS + (("aabb",) if name == "multiply" else ())
    sde = ff.PinballSDE(noise=0.0)
    runs = {w: cm.run(machine, w) for w in words}
    compiled = {w: ff.compile_machine(machine, w, PARAMS, tape_length=6) for w in words}
    pad = max(ff.steps_needed(compiled[w], runs[w].trace, sde) for w in words)
    for w in words:
        x, _ = ff.simulate(compiled[w], ff.steps_needed(compiled[w], runs[w].trace, sde), key=jax.random.key(0),
                           n_seeds=1, sde=sde, block_size=1, pad_to=pad)
        dec = ff.decode(compiled[w], x)
        final = runs[w].final
        assert dec.halted[0] and dec.accepted[0] == runs[w].accepted, (w, dec)
        assert (dec.pc[0], tuple(dec.registers[0]), dec.head[0]) == (final.pc, final.registers, final.head), w
        np.testing.assert_allclose(np.asarray(x[0]) / PARAMS.cell, np.rint(np.asarray(x[0]) / PARAMS.cell),
                                   atol=0.05)


def test_noisy_run_with_large_cells_halts_correctly_in_99_percent_of_seeds():
    machine = programs.anbn()
    result = cm.run(machine, "ab")
    compiled = ff.compile_machine(machine, "ab", ff.PinballParams(cell=10.0))
    sde = ff.PinballSDE()
    x, _ = ff.simulate(compiled, ff.steps_needed(compiled, result.trace, sde), key=jax.random.key(0), n_seeds=512,
                       sde=sde, block_size=128)
    dec = ff.decode(compiled, x)
    correct = dec.halted & (dec.accepted == result.accepted)
    assert correct.mean() >= 0.99, correct.mean()


def test_field_is_finite_and_smooth_on_random_points():
    machine = programs.compare()
    compiled = ff.compile_machine(machine, "aab", PARAMS)
    rng = np.random.default_rng(0)
    hi = np.array([3, 3, 5, len(machine.instructions), len(compiled.lanes) + 1, 3])
    x = rng.uniform(-0.6, 1.0, (256, 6)) * hi * PARAMS.cell
    v = rng.normal(size=(256, 6))
    f = lambda p: ff.force(compiled.field, p)
    with jax.enable_x64(True):  # float64, so that a central difference can check the derivative tightly
        jac = np.asarray(jax.jit(jax.vmap(jax.jacfwd(f)))(x))
        field = jax.jit(jax.vmap(f))
        values = np.asarray(field(x))
        eps = 1e-5
        fd = (np.asarray(field(x + eps * v)) - np.asarray(field(x - eps * v))) / (2 * eps)
        far = x * 10
        f_far = np.asarray(field(far))
    assert values.dtype == np.float64
    assert np.all(np.isfinite(jac)) and np.all(np.isfinite(values))
    np.testing.assert_allclose(np.einsum("nij,nj->ni", jac, v), fd, atol=1e-5)
    # the -x/2 term: f + x/2 stays bounded however far out x is (|drive| <= speed, |C| <= kappa L / 2 pi,
    # counters: max ds/dphase = 15/8 times the phase's drift, plus their own confinement)
    c_max = PARAMS.kappa * PARAMS.cell / (2 * np.pi)
    assert np.all(np.abs(f_far + far / 2) <= 15 / 8 * (PARAMS.speed + c_max) + c_max + 1e-6)


def test_seed_i_does_not_depend_on_the_number_of_seeds():
    machine = programs.increment()
    compiled = ff.compile_machine(machine, "a", PARAMS)
    run = lambda n: np.asarray(ff.simulate(compiled, 300, key=jax.random.key(5), n_seeds=n, block_size=4)[0])
    np.testing.assert_array_equal(run(3), run(11)[:3])


def test_start_and_decode():
    compiled = ff.compile_machine(programs.anbn(), "ab", PARAMS)
    dec = ff.decode(compiled, compiled.start()[None])
    assert dec.pc[0] == 0 and dec.head[0] == 1 and tuple(dec.registers[0]) == (0,) and not dec.halted[0]


@pytest.mark.parametrize("params, match", [
    (ff.PinballParams(cell=0.5), "cell side L"), (ff.PinballParams(blend=0.5), "blend"),
    (ff.PinballParams(kappa=-1.0), "kappa"), (ff.PinballParams(speed=float("nan")), "speed"),
])
def test_bad_parameters(params, match):
    with pytest.raises(ValueError, match=match):
        ff.compile_machine(programs.anbn(), "ab", params)


def test_tape_too_short():
    with pytest.raises(ValueError, match="tape_length"):
        ff.compile_machine(programs.anbn(), "aabb", PARAMS, tape_length=3)
