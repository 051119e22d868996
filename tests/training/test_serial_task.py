"""The "serial" training task: sequence layout, the prompt is never masked or scored, the per-example-noise
contract (a split batch gives the whole batch's losses), the model per family, and bad configs."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import serial_train
from diffserial.training import loop, tasks


def _config(model="transformer", task="parity", cot=True, **task_args):
    c = serial_train.get_config(f"{model},{task}")
    c.cot = cot
    for k, v in task_args.items():
        c.task_args[k] = v
    c.model.width = 16
    c.batch_size = 16
    return c


@pytest.mark.parametrize("cot", [True, False])
def test_parity_sequence_matches_numpy_prefix_parities(cot):
    n = 6
    task = tasks.make_task(_config(cot=cot, n=n))
    length = 2 * n if cot else n + 1  # cot: the prefix parities h_1 .. h_{n-1}; the answer is h_n
    assert task.example_shape == (length,)
    rows = np.asarray(jax.vmap(task.example)(jax.random.split(jax.random.key(0), 64)))
    assert rows.shape == (64, length)
    bits = rows[:, :n]
    assert set(np.unique(bits)) == {0, 1}
    np.testing.assert_array_equal(rows[:, -1], bits.sum(1) % 2)
    if cot:
        np.testing.assert_array_equal(rows[:, n:2 * n - 1], np.cumsum(bits, 1)[:, :-1] % 2)


def test_layout_positions_and_model_output_shape():
    c = _config(task="s5", cot=True, n=4)
    layout = tasks.serial_layout(c)
    lengths = (layout.prompt_len, layout.cot_len, layout.answer_len, layout.length, layout.generated_len)
    assert lengths == (4, 3, 1, 8, 4)
    np.testing.assert_array_equal(np.asarray(layout.prompt_mask()), [1, 1, 1, 1, 0, 0, 0, 0])
    task = tasks.make_task(c)
    params = jax.jit(task.init)(jax.random.key(0))
    x = jnp.full((8,), 120, jnp.int32)
    assert jax.jit(lambda p, x, t: task.sampling_fn(p)(x, t))(params, x, jnp.float32(0.5)).shape == (8, 120)


def test_prompt_never_masked_nor_scored_against_a_numpy_nelbo():
    n = 5
    c = _config(cot=True, n=n)
    task = tasks.make_task(c)
    params = jax.jit(task.init)(jax.random.key(1))
    batch = tasks.jitted_batch_rows(task, 0, c.batch_size)(jax.random.key(2), 0)
    loss, aux = jax.jit(task.loss_fn)(params, batch, jax.random.key(3))
    x0, x_t, t = np.asarray(batch["x"]), np.asarray(aux["x_t"]), np.asarray(aux["t"])
    np.testing.assert_array_equal(x_t[:, :n], x0[:, :n])  # never masked
    assert (x_t[:, n:] == 2).sum() > 0  # generated positions are masked (MASK = vocab 2)
    # Reference: linear schedule, w(t) = 1/t; sum over masked generated positions of -log p(x0).
    logits = np.asarray(jax.jit(task.model.apply)({"params": params}, jnp.asarray(x_t), jnp.asarray(t)), np.float64)
    logp = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    nll = -np.take_along_axis(logp, x0[..., None], -1)[..., 0]
    scored = (x_t == 2)
    scored[:, :n] = False
    reference = (nll * scored).sum(1) / t
    np.testing.assert_allclose(np.asarray(aux["per_example"]), reference, rtol=2e-4, atol=1e-5)
    assert float(loss) == pytest.approx(reference.mean(), rel=2e-4)
    # per-token accuracy on the scored positions of the chain of thought (n..2n-2) and the answer (2n-1)
    right = logits.argmax(-1) == x0
    for name, cols in (("cot", slice(n, 2 * n - 1)), ("answer", slice(2 * n - 1, 2 * n))):
        expected = right[:, cols][scored[:, cols]].mean()
        assert float(aux["metrics"][f"{name}_token_accuracy"]) == pytest.approx(expected)


def test_training_logs_the_per_token_accuracy(tmp_path):
    c = _config(cot=True, n=3)
    c.total_steps, c.log_every, c.optimizer.warmup_steps = 2, 1, 1
    loop.train(c, str(tmp_path))
    rows = [json.loads(line) for line in open(tmp_path / "metrics.jsonl")]
    assert [r["step"] for r in rows] == [1, 2]
    assert all(0.0 <= r[k] <= 1.0 for r in rows for k in ("answer_token_accuracy", "cot_token_accuracy"))


def test_split_batch_equals_whole_batch():
    c = _config(task="s5", cot=True, n=3)
    task = tasks.make_task(c)
    params = jax.jit(task.init)(jax.random.key(0))
    loss_fn = jax.jit(task.loss_fn)
    key, data_key = jax.random.key(5), jax.random.key(6)
    _, aux = loss_fn(params, tasks.jitted_batch_rows(task, 0, c.batch_size)(data_key, 3), key)
    halves = [loss_fn(params, tasks.jitted_batch_rows(task, a, b)(data_key, 3), key)[1]
              for a, b in ((0, 5), (5, c.batch_size))]
    for name in ("per_example", "t", "x_t"):
        np.testing.assert_allclose(np.concatenate([np.asarray(h[name]) for h in halves]), np.asarray(aux[name]),
                                   rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("model", ["transformer", "looped", "recurrent"])
def test_every_family_validates(model):
    task = loop.validate(_config(model=model, task="circuit_value", cot=True))
    assert task.name == "serial" and task.example_shape == (4 + 3 * 4 * 3 + 2 * 4 + 1,)


@pytest.mark.parametrize("change, message", [
    (lambda c: setattr(c, "serial_task", "nope"), "valid serial tasks"),
    (lambda c: setattr(c, "serial_task", "sudoku"), "host-side"),
    (lambda c: c.task_args.__setitem__("n", 0), "n must be an int >= 1"),
    (lambda c: setattr(c, "task_args", type(c.task_args)({"n": 4, "width": 3})), "do not fit"),
    (lambda c: setattr(c, "task_args", type(c.task_args)({"n": 4, "with_cot": True})), "use config.cot"),
])
def test_bad_configs(change, message):
    c = _config(task="parity", n=4)
    change(c)
    with pytest.raises(ValueError, match=message):
        loop.validate(c)


def test_cot_on_a_task_without_chain_of_thought():
    c = _config(task="circuit_value", cot=True)
    c.task_args.depth = 1  # one layer: no intermediate values
    with pytest.raises(ValueError, match="no chain of thought"):
        loop.validate(c)


def test_serial_train_config_arguments():
    assert serial_train.get_config("recurrent,s5").model.name == "recurrent"
    with pytest.raises(ValueError, match="unknown serial task"):
        serial_train.get_config("transformer,nope")
    with pytest.raises(ValueError, match="unknown model"):
        serial_train.get_config("mlp")
