"""The "serial_continuous" task (continuous diffusion over the quantized answer, paper appendix F.1): the DSM
loss against numpy, the per-example noise contract, training with loop.train, and the prompt-conditioned
sampler: paired prompts, the seeds contract, and an exact point-mass oracle recovering the answers."""


import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import serial_train
from diffserial.models.continuous_answer import BinaryCode
from diffserial.processes.gaussian import VEGeometric, VPLinear
from diffserial.samplers import continuous_grid, continuous_sampler, sample_conditional
from diffserial.studies import serial_continuous
from diffserial.training import loop, tasks


def _config(task="parity", **task_args):
    c = serial_train.get_config(f"transformer,{task}")
    c.task = "serial_continuous"
    c.task_args = type(c.task_args)({"n": 4, **task_args})
    c.model.update(width=16, heads=2, mlp_ratio=2)
    c.batch_size = 16
    return c


def test_example_layout_and_model_shape():
    task = tasks.make_task(_config(task="s5"))  # V = 120: m = 7
    assert task.name == "serial_continuous" and task.example_shape == (5,)
    assert task.answer_shape == (1, 7) and task.prompt_len == 4
    params = jax.eval_shape(task.init, jax.random.key(0))
    model = task.sampling_fn(params)
    assert model.code.dim == 7 and model.layout.answer_len == 1 and model.t_min == 1e-3
    out = jax.eval_shape(lambda f, *args: f(*args), model.score_fn, jnp.zeros(4, jnp.int32), jnp.zeros((1, 7)),
                         jnp.float32(0.3))
    assert out.shape == (1, 7)


def _vp_marginal(t):
    """m_t, s_t of the VP SDE with beta(t) = 0.1 + 19.9 t, written out."""
    m = np.exp(-0.25 * t**2 * 19.9 - 0.5 * t * 0.1)
    return m, np.sqrt(1.0 - m**2)


def test_loss_matches_numpy():
    c = _config()
    task = tasks.make_task(c)
    params = jax.jit(task.init)(jax.random.key(1))
    batch = tasks.jitted_batch_rows(task, 0, c.batch_size)(jax.random.key(2), 0)
    key = jax.random.key(3)
    loss, aux = jax.jit(task.loss_fn)(params, batch, key)
    x = np.asarray(batch["x"])
    np.testing.assert_array_equal(x[:, 4], x[:, :4].sum(1) % 2)  # [prompt bits, parity]
    # The documented draw: example i's key fold_in(key, index_i), split into (t, z) keys.
    t = np.empty(c.batch_size)
    z = np.empty((c.batch_size, 1, 1))
    for i in range(c.batch_size):
        key_t, key_z = jax.random.split(jax.random.fold_in(key, i))
        t[i] = 1e-3 + (1 - 1e-3) * float(jax.random.uniform(key_t, (1,))[0])
        z[i] = np.asarray(jax.random.normal(key_z, (1, 1, 1)))[0]
    m, s = _vp_marginal(t)
    x0 = (2.0 * x[:, 4] - 1.0)[:, None, None]  # parity: V = 2, m = 1, codewords -1, +1
    y_t = m[:, None, None] * x0 + s[:, None, None] * z
    eps = np.asarray(jax.jit(task.model.apply)({"params": params}, jnp.asarray(x[:, :4]),
                                               jnp.asarray(y_t, jnp.float32), jnp.asarray(t, jnp.float32)))
    reference = ((eps - z) ** 2).sum((1, 2))
    np.testing.assert_allclose(np.asarray(aux["t"]), t, rtol=1e-6)
    np.testing.assert_allclose(np.asarray(aux["per_example"]), reference, rtol=2e-4, atol=1e-5)
    assert float(loss) == pytest.approx(reference.mean(), rel=2e-4)


def test_split_batch_equals_whole_batch():
    c = _config(n=3)
    task = tasks.make_task(c)
    params = jax.jit(task.init)(jax.random.key(0))
    key, data_key = jax.random.key(5), jax.random.key(6)
    loss_fn = jax.jit(task.loss_fn)
    _, whole = loss_fn(params, tasks.jitted_batch_rows(task, 0, c.batch_size)(data_key, 3), key)
    halves = [loss_fn(params, tasks.jitted_batch_rows(task, a, b)(data_key, 3), key)[1]
              for a, b in ((0, 8), (8, 16))]
    np.testing.assert_allclose(np.concatenate([h["per_example"] for h in halves]), whole["per_example"],
                               rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("change, message", [
    (lambda c: setattr(c, "cot", True), "cot must be False"),
    (lambda c: c.model.__setitem__("name", "looped"), "fixed-depth transformer"),
    (lambda c: setattr(c, "process", "nope"), "unknown process"),
])
def test_bad_configs(change, message):
    c = _config()
    change(c)
    with pytest.raises(ValueError, match=message):
        loop.validate(c)


def _parity_answer(prompt):
    return jnp.sum(prompt) % 2


def _point_mass_score(process, flip, prompt, y, t):
    """grad_y log N(y; m_t c, s_t^2 I) with c = +-1 the codeword of the true parity (of the wrong one if flip)."""
    c = 2.0 * jnp.abs(_parity_answer(prompt) - flip) - 1.0
    m, s = process.marginal(t)
    return -(y - m * c) / s**2


def _oracle_model(flip):
    process = VPLinear()
    layout = tasks.serial_layout(_config())
    score = jax.tree_util.Partial(_point_mass_score, process, jnp.int32(flip))
    return tasks.ContinuousAnswer(score, process, BinaryCode(2), layout, 1e-3)


# With the exact score of a point mass, Tweedie's x0 estimate is the codeword itself, so the ancestral and
# DPM-Solver++ steps land on it at any T; Euler-Maruyama needs a fine grid (0.86 correct at T = 8, 0.98 at 16).
@pytest.mark.parametrize("sampler,steps", [("ancestral", 2), ("dpm_solver_pp_2m", 2), ("euler_maruyama", 32)])
def test_point_mass_oracle_recovers_the_answers(sampler, steps):
    run = lambda flip: np.asarray(serial_continuous.sample_sequences(
        _oracle_model(flip), sampler, steps, key=jax.random.key(0), n_seeds=256, block_size=256, pad_to=32))
    check = _oracle_model(0).layout.task.check
    tokens = run(0)
    assert np.asarray(check(tokens[:, :4], tokens[:, 4:])).mean() >= 0.95
    assert 0.3 < tokens[:, 4].mean() < 0.7  # both answers occur: the prompts differ per seed
    wrong = run(1)  # the oracle of the other answer: the same check must then fail
    assert np.asarray(check(wrong[:, :4], wrong[:, 4:])).mean() <= 0.05


def test_prompts_are_the_masked_families_prompts_and_follow_the_seed_contract():
    model = _oracle_model(flip=0)
    key = jax.random.key(7)
    a = np.asarray(serial_continuous.sample_sequences(model, "ancestral", 4, key=key, n_seeds=30, block_size=16))
    b = np.asarray(serial_continuous.sample_sequences(model, "ancestral", 4, key=key, n_seeds=9, block_size=16))
    np.testing.assert_array_equal(a[:9], b)
    task = model.layout.task
    draw = jax.jit(lambda i: task.sample_one(jax.random.fold_in(jax.random.fold_in(key, i), 0)).prompt)
    expected = np.stack([draw(i) for i in range(30)])
    np.testing.assert_array_equal(a[:, :4], expected)  # = PromptThenMasks' draw for seed i


def test_sample_conditional_errors():
    process, ts = VPLinear(), continuous_grid("uniform", VPLinear(), 2, 1e-3)
    score = lambda prompt, y, t: -y
    kwargs = dict(key=jax.random.key(0), n_seeds=4, prompt_len=3, answer_shape=(1, 1), block_size=4)
    draw = serial_continuous.SerialPrompt(tasks.serial_layout(_config(n=3)).task)
    with pytest.raises(ValueError, match="variance-preserving"):
        sample_conditional(score, VEGeometric(), continuous_sampler("li_yan_sde"), ts,
                                       draw_prompt=draw, **kwargs)
    with pytest.raises(ValueError, match=r"draw_prompt must return \(3,\)"):
        sample_conditional(score, process, continuous_sampler("ancestral"), ts,
                                       draw_prompt=serial_continuous.SerialPrompt(tasks.serial_layout(_config()).task),
                                       **kwargs)
    with pytest.raises(ValueError, match="model function"):
        sample_conditional(lambda p, y, t: y[0], process, continuous_sampler("ancestral"), ts,
                                       draw_prompt=draw, **{**kwargs, "answer_shape": (2, 1)})


@pytest.mark.slow
def test_trains_with_loop_and_samples(tmp_path):
    c = _config()
    c.update(total_steps=20, log_every=10, checkpoint_every=20)
    c.optimizer.warmup_steps = 5
    loop.train(c, str(tmp_path))
    trained = loop.load_trained(str(tmp_path))
    assert trained.step == 20
    model = trained.sampling_fn()
    tokens = np.asarray(serial_continuous.sample_sequences(model, "dpm_solver_pp_2m", 4, key=jax.random.key(1),
                                                           n_seeds=64, block_size=64))
    assert tokens.shape == (64, 5) and set(np.unique(tokens[:, 4])) <= {0, 1}
    correct = np.asarray(model.layout.task.check(tokens[:, :4], tokens[:, 4:]))
    assert correct.shape == (64,)
