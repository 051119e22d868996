"""Learning tests (issue 11): each masked family learns a small serial task from the NELBO in a stated budget.

These check that the training pipeline can learn at all -- the failure they guard against is a model that
stays at chance on a rule it can represent (the GRU on 4-bit parity with a small token embedding; the
transformers on two steps of Rule 110 with only a weak absolute position table). Each trains the task's
own loss (`training.tasks`, the MD4/MDLM NELBO with the prompt given) with Adam for a few hundred steps in
one jitted `lax.scan`, then predicts every generated position from the prompt alone (all of them masked,
the state a sampler starts from) and scores the argmax: per-token and exact accuracy on 512 fresh examples.
Chance is 1/2 per token; a model that learned nothing gets about 2^-16 of width-16 rows exactly right.
"""

import jax
import jax.numpy as jnp
import ml_collections
import optax
import pytest

from configs import serial_train
from diffserial.training import tasks as training_tasks


def _train_and_score(model: str, task: str, task_args: dict, *, cot: bool = False, steps: int, lr: float,
                     batch: int = 64, model_fields: dict | None = None) -> tuple[float, float]:
    """(per-token accuracy, exact accuracy) of the generated positions after `steps` Adam steps."""
    config = serial_train.get_config(f"{model},{task}")
    config.task_args = ml_collections.ConfigDict(task_args)
    config.cot, config.batch_size = cot, batch
    for name, value in (model_fields or {}).items():
        config.model[name] = value
    task_obj = training_tasks.make_task(config)
    layout = training_tasks.serial_layout(config)
    schedule = optax.warmup_cosine_decay_schedule(0.0, lr, steps // 10, steps)
    optimizer = optax.chain(optax.clip_by_global_norm(1.0), optax.adam(schedule))
    data_key, noise_key = jax.random.key(1), jax.random.key(2)

    @jax.jit
    def train(params):
        def body(carry, s):
            params, opt_state = carry
            batch_s = training_tasks.batch_rows(task_obj, data_key, s, 0, batch)
            grads = jax.grad(lambda p: task_obj.loss_fn(p, batch_s, jax.random.fold_in(noise_key, s))[0])(params)
            updates, opt_state = optimizer.update(grads, opt_state, params)
            return (optax.apply_updates(params, updates), opt_state), None

        (params, _), _ = jax.lax.scan(body, (params, optimizer.init(params)), jnp.arange(steps))
        return params

    params = train(task_obj.init(jax.random.key(0)))
    x = training_tasks.batch_rows(task_obj, jax.random.key(99), 0, 0, 512)["x"]
    masked = jnp.where(layout.prompt_mask(), x, layout.task.vocab_size)
    logits = task_obj.model.apply({"params": params}, masked, jnp.ones(x.shape[0]))
    right = (jnp.argmax(logits, -1) == x)[:, layout.prompt_len:]
    return float(right.mean()), float(right.all(-1).mean())


@pytest.mark.slow
def test_gru_learns_4_bit_parity():
    """Bidirectional GRU (width 32), 300 steps: the answer bit right on >= 95% of prompts (chance 1/2)."""
    token, exact = _train_and_score("recurrent", "parity", {"n": 4}, steps=300, lr=3e-3,
                                    model_fields={"width": 32})
    assert exact >= 0.95, exact


SMALL = {"width": 64, "heads": 4, "mlp_ratio": 2}


@pytest.mark.slow
@pytest.mark.parametrize("model, cot, fields, steps, lr", [
    ("transformer", False, {**SMALL, "depth": 2}, 500, 2e-3),
    ("looped", False, {**SMALL, "loops": 2}, 800, 1e-3),
    ("transformer", True, {**SMALL, "depth": 2}, 500, 2e-3),
], ids=["transformer", "looped", "cot"])
def test_family_learns_two_steps_of_rule110(model, cot, fields, steps, lr):
    """Width-16 rows, 2 steps, batch 64; 500 Adam steps at lr 2e-3 (800 at 1e-3 for the looped model, whose
    shared block learns slower): >= 95% of generated tokens and >= 30% of whole rows right from the prompt
    alone (a model that learned nothing: 50% and ~2^-16). Measured with these keys: transformer 0.977 / 0.723,
    looped 1.000 / 0.998, cot 0.996 / 0.869; over 3 (transformer) and 2 (cot) other key sets they stayed
    >= 0.977 / >= 0.41, while the looped model at 500 steps fell to 0.89 / 0.15 on one. Batch 32 is cheaper
    but fragile: the looped model got 0.58 or 0.43 of the rows at lr 2e-3 depending on the device count."""
    token, exact = _train_and_score(model, "rule110", {"width": 16, "steps": 2}, cot=cot, steps=steps, lr=lr,
                                    batch=64, model_fields=fields)
    assert token >= 0.95 and exact >= 0.3, (token, exact)


@pytest.mark.slow
def test_gru_learns_part_of_two_steps_of_rule110():
    """The bidirectional GRU (width 64, one layer) on the same task, 800 steps of batch 64 at lr 3e-3: >= 60% of
    the generated tokens right from the prompt alone (chance 50%). Measured with these keys 0.658 (0.696 and
    0.657 with two other key sets); whole rows stay near 0 (0.004): each answer cell's inputs sit 14-18
    positions back, a delay line the recurrence learns slowly (2400 steps: 0.775 of the tokens, 0.023 of the
    rows; README "Why the models did not learn"), so this pins that it learns, not that it solves the task."""
    token, _ = _train_and_score("recurrent", "rule110", {"width": 16, "steps": 2}, steps=800, lr=3e-3, batch=64,
                                model_fields={"width": 64})
    assert token >= 0.6, token
