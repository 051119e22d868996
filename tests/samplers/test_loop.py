"""The scan driver: seed contract, sharding, snapshots, caching, input validation."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from diffserial.processes.gaussian import VEGeometric, VPLinear
from diffserial.samplers import (
    compiled_programs, continuous_grid, continuous_sampler, sample_continuous, sample_continuous_with_snapshots, seed_mesh)

PROCESS = VPLinear()


def _score(x, t):
    """Exact score of p_t for p_0 = N(1, 0.25 I) under PROCESS, with a nonlinearity to exercise XLA."""
    m, s = PROCESS.marginal(t)
    var = 0.25 * m**2 + s**2
    return -(x - m) / var + 0.0 * jnp.tanh(x)


def _sample(name, n, mesh=None, steps=12):
    ts = continuous_grid("uniform", PROCESS, steps)
    return sample_continuous(_score, PROCESS, continuous_sampler(name), ts,
                         key=jax.random.key(3), n_seeds=n, shape=(3,), mesh=mesh)


@pytest.mark.parametrize("name", ["euler_maruyama", "pc_langevin", "dpm_solver_pp_2m"])
def test_seed_results_are_bitwise_independent_of_batch_size(name):
    big = np.asarray(_sample(name, 3000))  # three blocks of the default 1024
    for n in (1, 7, 1024):
        np.testing.assert_array_equal(np.asarray(_sample(name, n)), big[:n])


@pytest.mark.parametrize("name", ["ancestral", "pf_heun"])
def test_sharded_over_8_devices_equals_single_device(name):
    assert jax.device_count() == 8, "tests/conftest.py should simulate 8 CPU devices"
    mesh = seed_mesh()
    single = seed_mesh(jax.devices()[:1])
    n = 1003  # not a multiple of 8: exercises padding
    sharded = _sample(name, n, mesh=mesh)
    assert len(sharded.sharding.device_set) == 8
    np.testing.assert_array_equal(np.asarray(sharded), np.asarray(_sample(name, n, mesh=single)))
    np.testing.assert_array_equal(np.asarray(sharded), np.asarray(_sample(name, n)))


def test_snapshots_are_the_states_after_the_chosen_steps():
    ts = continuous_grid("uniform", PROCESS, 10)
    rule = continuous_sampler("ancestral")
    kw = dict(key=jax.random.key(0), n_seeds=5, shape=(3,))
    final, snaps = sample_continuous_with_snapshots(_score, PROCESS, rule, ts, snapshot_steps=(4, 10), **kw)
    assert snaps.shape == (5, 2, 3)
    np.testing.assert_array_equal(np.asarray(snaps[:, 1]), np.asarray(final))
    # Step 4 of the 10-step run only depends on the first 5 grid points... but the step keys and
    # times of steps 0..3 are the same in a 4-step run over ts[:5].
    short = sample_continuous(_score, PROCESS, rule, ts[:5], **kw)
    np.testing.assert_array_equal(np.asarray(snaps[:, 0]), np.asarray(short))


def test_compiled_once_per_configuration():
    ts = continuous_grid("uniform", PROCESS, 7)
    rule = continuous_sampler("euler_maruyama")
    kw = dict(n_seeds=16, shape=(2,))

    def score_a(x, t, scale):
        return -scale * x

    before = compiled_programs()
    for i, scale in enumerate((1.0, 2.0, 3.0)):
        fn = jax.tree_util.Partial(score_a, scale=jnp.float32(scale))
        sample_continuous(fn, PROCESS, rule, ts, key=jax.random.key(i), **kw)
    assert compiled_programs() == before + 1
    sample_continuous(_score, PROCESS, rule, continuous_grid("uniform", PROCESS, 8), key=jax.random.key(0), **kw)
    assert compiled_programs() == before + 2  # new grid length: one more program


def test_padded_grid_gives_the_same_bits_and_one_program_for_all_step_counts():
    rule = continuous_sampler("pc_langevin")
    kw = dict(key=jax.random.key(1), n_seeds=100, shape=(3,))
    before = compiled_programs()
    for steps in (1, 5, 16):
        ts = continuous_grid("uniform", PROCESS, steps)
        padded = sample_continuous(_score, PROCESS, rule, ts, pad_to=16, **kw)
        np.testing.assert_array_equal(np.asarray(padded), np.asarray(sample_continuous(_score, PROCESS, rule, ts, **kw)))
    assert compiled_programs() == before + 3  # one padded program + the unpadded T = 1 and T = 5


def test_bad_inputs_raise_before_compiling():
    ts = continuous_grid("uniform", PROCESS, 4)
    rule = continuous_sampler("euler_maruyama")
    kw = dict(key=jax.random.key(0), n_seeds=4, shape=(3,))
    with pytest.raises(ValueError, match="valid samplers: ancestral, dpm_solver_pp_2m"):
        continuous_sampler("euler")
    with pytest.raises(ValueError, match="valid grids: karras, logsnr, quadratic, uniform"):
        continuous_grid("linear", PROCESS, 4)
    with pytest.raises(ValueError, match="steps must be an int >= 1; got 0"):
        continuous_grid("uniform", PROCESS, 0)
    for eps in (0.0, 1.0, -0.1, 1.5):
        with pytest.raises(ValueError, match=r"eps .* must lie in \(0, 1\)"):
            continuous_grid("uniform", PROCESS, 4, eps=eps)
    with pytest.raises(ValueError, match=r"function \(x, t\) returns shape \(2,\) for x of shape \(3,\); expected \(3,\)"):
        sample_continuous(lambda x, t: x[:2], PROCESS, rule, ts, **kw)
    with pytest.raises(ValueError, match="at least 2 points"):
        sample_continuous(_score, PROCESS, rule, ts[:1], **kw)
    with pytest.raises(ValueError, match="decrease strictly"):
        sample_continuous(_score, PROCESS, rule, ts[::-1], **kw)
    with pytest.raises(ValueError, match="n_seeds must be an int >= 1"):
        sample_continuous(_score, PROCESS, rule, ts, key=jax.random.key(0), n_seeds=0, shape=(3,))
    with pytest.raises(ValueError, match="variance-preserving"):
        sample_continuous(_score, VEGeometric(), continuous_sampler("li_yan_sde"), ts, **kw)
    with pytest.raises(ValueError, match="pad_to must be an integer >= the number of steps 4"):
        sample_continuous(_score, PROCESS, rule, ts, pad_to=3, **kw)
    with pytest.raises(ValueError, match="block_size must be an int >= 1"):
        sample_continuous(_score, PROCESS, rule, ts, block_size=0, **kw)
    with pytest.raises(ValueError, match=r"snapshot step 5 outside \[1, 4\]"):
        sample_continuous_with_snapshots(_score, PROCESS, rule, ts, snapshot_steps=(5,), **kw)


def test_non_finite_samples_are_counted_not_averaged():
    """A score that blows up for some seeds: their samples are NaN/inf, fall in no cell, and count
    as TV mass outside every cell (n_invalid), never silently dropped."""
    from diffserial.metrics.tv import tv_report
    from diffserial.targets.quantize import GridCells

    def score(x, t):
        return jnp.where(x[0] > 2.0, jnp.nan, -x)

    ts = continuous_grid("uniform", PROCESS, 4)
    x = sample_continuous(score, PROCESS, continuous_sampler("euler_maruyama"), ts,
                      key=jax.random.key(0), n_seeds=2000, shape=(1,), block_size=256)
    bad = int(np.sum(~np.isfinite(np.asarray(x))))
    assert bad > 0
    cells = GridCells.uniform(1, -3.0, 3.0, 6)
    report = tv_report(cells.cell_index(x), cells.n_cells, np.full(6, 1 / 6))
    assert report["n_invalid"] == bad and report["n_seeds"] == 2000
    assert report["tv"] >= 0.5 * bad / 2000
