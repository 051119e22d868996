"""Training losses: denoising score matching (Gaussian SDEs) and the masked-diffusion NELBO.

Both losses take a model as `apply_fn(params, x, t)` evaluated on a whole batch, e.g.
`lambda p, x, t: model.apply({"params": p}, x, t)` for `ScoreMLP` (x (B, d), t (B,) -> (B, d)) or
`MaskedTransformer` (tokens (B, L), t (B,) -> logits (B, L, V)). They are pure functions of
(apply_fn, params, process/schedule, data, key), differentiable in `params` and usable under `jax.jit`
with the non-array arguments static. Each returns `(loss, aux)`: a scalar and a dict of per-example
diagnostics.

Denoising score matching (Vincent 2011; Song et al. 2021, "Score-Based Generative Modeling through
SDEs", eq. 7). For x_t = m_t x_0 + s_t z, z ~ N(0, I), the conditional score is
grad log q(x_t | x_0) = -z / s_t, and

    L_DSM = E_{t ~ U(t_min, 1)} E_{x_0} E_z [ lambda(t) || score_theta(x_t, t) + z / s_t ||^2 ],

summed over dimensions and averaged over the batch (score_sde's `reduce_mean=False`). Sampling rule
(documented so that tests can reproduce it): `key_t, key_z = jax.random.split(key)`,
`t = t_min + (1 - t_min) * jax.random.uniform(key_t, (B,))`, `z = jax.random.normal(key_z, x0.shape)`.

The weighting lambda(t) is always defined in *score space*, for both parameterizations:
  "sigma2"     lambda = s_t^2   (score_sde's default; Ho et al. 2020's "simple" loss for eps-models),
  "likelihood" lambda = g(t)^2  (Song et al. 2021b, "Maximum Likelihood Training of Score-Based
                                 Diffusion Models": the weighted loss bounds the NLL up to constants),
  "uniform"    lambda = 1.
With parameterization "score" the network output is score_theta. With "eps" the network predicts the
noise z and score_theta = -eps_theta / s_t (`eps_to_score`), so the per-example loss is

    lambda(t) || -eps_theta / s_t + z / s_t ||^2 = (lambda(t) / s_t^2) || eps_theta - z ||^2,

which for "sigma2" is exactly || eps_theta(x_t, t) - z ||^2.

Masked diffusion NELBO (Shi et al. 2024, MD4, eq. 5/10; Sahoo et al. 2024, MDLM, eq. 11): with
w(t) = alpha'_t / (1 - alpha_t) <= 0 (`processes.masked.nelbo_weight`),

    L = E_{t ~ U(t_min, 1)} w(t) E_{x_t ~ q(. | x_0)} [ sum_{i: x_t^i = MASK, i not prompt} log p_theta(x_0^i | x_t) ]

(>= 0, an upper bound on -log p(x_0 | prompt) for t_min -> 0), estimated per sequence with one t and one
x_t and averaged over the batch. Times are antithetic / low-discrepancy as in VDM (Kingma et al. 2021)
and MD4: `key_t, key_m = jax.random.split(key)`, u = jax.random.uniform(key_t, ()),
t_i = t_min + (1 - t_min) * ((u + i / B) mod 1), so exactly one t_i falls in each bin of width
(1 - t_min) / B; with antithetic=False, t_i = t_min + (1 - t_min) * jax.random.uniform(fold_in(key_t, i), ()).
Masks: x_t^(i) = corrupt(fold_in(key_m, i), x0^(i), t_i, schedule, mask_id, prompt_mask^(i)).
Here i is the example's index in the GLOBAL batch and B the global batch size (by default the local
batch is the whole batch: i = 0..B-1); passing `index` and `global_batch` makes each example's draw
independent of how a data-parallel step splits the batch over devices.
"""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from diffserial.processes.gaussian import LinearGaussianSDE
from diffserial.processes.masked import MaskingSchedule, corrupt, nelbo_weight
from diffserial.validation import check_int, check_positive_int

Array = jax.Array
ApplyFn = Callable[[Any, Array, Array], Array]

PARAMETERIZATIONS = ("eps", "score")
WEIGHTINGS = ("likelihood", "uniform", "sigma2")


def _check_t_min(t_min) -> float:
    if isinstance(t_min, bool) or not isinstance(t_min, (int, float, np.floating)) or not (0.0 < float(t_min) < 1.0):
        raise ValueError(f"t_min must be a real number in (0, 1); got {t_min!r}")
    return float(t_min)


def _per_example(v: Array, batch_ndim: int) -> Array:
    """Broadcastable view of a (B,) (or scalar) array against an array of ndim `batch_ndim`."""
    v = jnp.asarray(v)
    return v.reshape(v.shape + (1,) * (batch_ndim - v.ndim))


# --------------------------------------------------------------------------------------------------
# Gaussian: denoising score matching
# --------------------------------------------------------------------------------------------------
def eps_to_score(eps_pred: Array, process: LinearGaussianSDE, t: Array) -> Array:
    """score = -eps / s_t, with t scalar or (B,) (broadcast over eps_pred's trailing axes)."""
    eps_pred = jnp.asarray(eps_pred)
    _, s = process.marginal(jnp.asarray(t, jnp.float32))
    return -eps_pred / _per_example(s, eps_pred.ndim)


def _eps_score(eps_fn, process, x, t):
    return eps_to_score(eps_fn(x, t), process, t)


def score_fn_from_eps(eps_fn: Callable[[Array, Array], Array], process: LinearGaussianSDE) -> jax.tree_util.Partial:
    """(x, t) -> -eps_fn(x, t) / s_t as a `Partial` (pass e.g. `models.mlp.score_fn_from(model, params)`
    of an eps-trained model; its leaves stay traced, so the sampling driver does not recompile)."""
    return jax.tree_util.Partial(_eps_score, eps_fn, process)


def dsm_noise(key: Array, shape: tuple[int, ...], t_min: float = 1e-3, dtype=jnp.float32) -> tuple[Array, Array]:
    """The DSM loss's draw for a batch of `shape` (B, ...): `key_t, key_z = split(key)`,
    t = t_min + (1 - t_min) U(key_t, (B,)),  z = N(key_z, shape)."""
    key_t, key_z = jax.random.split(key)
    t = t_min + (1.0 - t_min) * jax.random.uniform(key_t, (shape[0],))
    return t, jax.random.normal(key_z, shape, dtype)


def dsm_objective(
    apply_fn: ApplyFn,
    params: Any,
    process: LinearGaussianSDE,
    x0: Array,
    t: Array,
    z: Array,
    *,
    parameterization: str = "eps",
    weighting: str = "sigma2",
) -> tuple[Array, dict]:
    """The DSM loss for given times t (B,) and noise z (shape of x0), one network call on the batch:

        x_t = m_t x0 + s_t z,   loss_i = lambda(t_i) || score_theta(x_t, t_i) + z_i / s_{t_i} ||^2

    (for "eps", (lambda / s^2) || eps_theta - z ||^2). Returns (mean_i loss_i, {"per_example", "t"}).
    Arguments are checked by `dsm_loss`, which draws (t, z) with `dsm_noise` and calls this.
    """
    m, s = process.marginal(t)
    x_t = _per_example(m, x0.ndim) * x0 + _per_example(s, x0.ndim) * z
    out = apply_fn(params, x_t, t)
    if out.shape != x0.shape:
        raise ValueError(f"apply_fn output shape {out.shape} must equal x0_batch's shape {x0.shape}")

    axes = tuple(range(1, x0.ndim))
    if weighting == "sigma2":
        lam = s**2
    elif weighting == "likelihood":
        lam = process.diffusion(t) ** 2
    else:
        lam = jnp.ones_like(t)

    if parameterization == "eps":
        # lambda || (z - eps) / s ||^2 = (lambda / s^2) || eps - z ||^2
        coeff = jnp.ones_like(t) if weighting == "sigma2" else lam / s**2
        per_example = coeff * jnp.sum((out - z) ** 2, axis=axes)
    else:
        target = -z / _per_example(s, x0.ndim)
        per_example = lam * jnp.sum((out - target) ** 2, axis=axes)
    return jnp.mean(per_example), {"per_example": per_example, "t": t}


def check_dsm_args(process, x0_batch, parameterization: str, weighting: str, t_min) -> tuple[Array, float]:
    """Validate dsm_loss's arguments (ValueError naming the argument); returns (x0 as an array, t_min)."""
    if parameterization not in PARAMETERIZATIONS:
        raise ValueError(f"unknown parameterization {parameterization!r}; valid: {', '.join(PARAMETERIZATIONS)}")
    if weighting not in WEIGHTINGS:
        raise ValueError(f"unknown weighting {weighting!r}; valid: {', '.join(WEIGHTINGS)}")
    t_min = _check_t_min(t_min)
    if not isinstance(process, LinearGaussianSDE):
        raise ValueError(f"process must be a LinearGaussianSDE; got {process!r}")
    x0 = jnp.asarray(x0_batch)
    if x0.ndim < 2 or not jnp.issubdtype(x0.dtype, jnp.floating):
        raise ValueError(f"x0_batch must be a floating array of shape (B, ...); got {x0.dtype} {x0.shape}")
    return x0, t_min


def dsm_loss(
    apply_fn: ApplyFn,
    params: Any,
    process: LinearGaussianSDE,
    x0_batch: Array,
    key: Array,
    *,
    parameterization: str = "eps",
    weighting: str = "sigma2",
    t_min: float = 1e-3,
) -> tuple[Array, dict]:
    """Denoising score matching loss (see the module docstring for the equations and sampling rule).

    apply_fn(params, x_t (B, ...), t (B,)) -> (B, ...): the noise eps (parameterization "eps") or the
    score (parameterization "score"). weighting: "sigma2" (default; with "eps" the loss is
    ||eps_theta - z||^2), "likelihood" (g(t)^2) or "uniform" (1), always in score space.
    Per-example loss summed over dimensions, then averaged over the batch.

    Returns (loss, aux) with aux = {"per_example": (B,), "t": (B,)}.
    """
    x0, t_min = check_dsm_args(process, x0_batch, parameterization, weighting, t_min)
    t, z = dsm_noise(key, x0.shape, t_min, x0.dtype)
    return dsm_objective(apply_fn, params, process, x0, t, z, parameterization=parameterization, weighting=weighting)


# --------------------------------------------------------------------------------------------------
# Masked diffusion: continuous-time NELBO
# --------------------------------------------------------------------------------------------------
def dsm_batch_loss(apply_fn, process, *, per_example_noise: bool = False, parameterization: str = "eps",
                   weighting: str = "sigma2", t_min: float = 1e-3) -> Callable[[Any, dict, Array], tuple[Array, dict]]:
    """`dsm_loss` as a training-step loss (`training.step.train_step`'s loss_fn) `(params, batch, key) -> (loss, aux)`, batch = {"x": (B, ...),
    optionally "index": (B,) global example indices}.

    per_example_noise=False: dsm_loss(apply_fn, params, process, batch["x"], key, ...).
    per_example_noise=True (use with train_step's noise="example"): example i's (t_i, z_i) are
    `dsm_noise` drawn for the single example with key fold_in(key, batch["index"][i]) (the draw
    dsm_loss would make for a batch of one), then the network runs once on the whole batch
    (`dsm_objective`); the loss is the mean of the per-example losses, so it depends on the
    batch split only through float reduction order.
    """
    kwargs = dict(parameterization=parameterization, weighting=weighting)
    if not per_example_noise:
        return lambda params, batch, key: dsm_loss(apply_fn, params, process, batch["x"], key, t_min=t_min, **kwargs)

    def loss_fn(params, batch, key):
        x0, t_min_ = check_dsm_args(process, batch["x"], parameterization, weighting, t_min)
        keys = jax.vmap(jax.random.fold_in, in_axes=(None, 0))(key, batch["index"])
        t, z = jax.vmap(lambda k: dsm_noise(k, (1,) + x0.shape[1:], t_min_, x0.dtype))(keys)
        return dsm_objective(apply_fn, params, process, x0, t[:, 0], z[:, 0], **kwargs)

    return loss_fn


def antithetic_times(key: Array, index: Array, global_batch: int, t_min: float) -> Array:
    """t_i = t_min + (1 - t_min) ((u + index_i / global_batch) mod 1), u ~ U[0, 1) from `key`: over the
    global batch index = 0..global_batch-1, exactly one time falls in each stratum."""
    u = jax.random.uniform(key, ())
    return t_min + (1.0 - t_min) * jnp.mod(u + jnp.asarray(index) / global_batch, 1.0)


def masked_nelbo(
    apply_fn: ApplyFn,
    params: Any,
    schedule: MaskingSchedule,
    x0_batch: Array,
    key: Array,
    *,
    mask_id: int,
    prompt_mask: Array | None = None,
    antithetic: bool = True,
    t_min: float = 1e-4,
    index: Array | None = None,
    global_batch: int | None = None,
) -> tuple[Array, dict]:
    """MD4 / MDLM continuous-time NELBO, one (t, x_t) draw per sequence (see the module docstring).

    apply_fn(params, x_t (B, L) int32 with MASK = mask_id, t (B,)) -> logits (B, L, V), V = mask_id
    (log-softmax is taken here). x0_batch: (B, L) integer tokens in [0, mask_id). prompt_mask: optional
    bool (L,) or (B, L); prompt positions are never masked and never scored. index: (B,) global example
    indices (default arange(B)) and global_batch: the global batch size (default B), see the module
    docstring: example i's (t_i, x_t^(i)) depend only on (key, index[i], global_batch).

        loss_i = w(t_i) sum_{j masked, not prompt} log p_theta(x0_ij | x_t^(i)) >= 0,   loss = mean_i loss_i.

    Returns (loss, aux) with aux = {"per_example": (B,), "t": (B,), "x_t": (B, L), "n_masked": (B,),
    "per_token": sum_i loss_i / (number of non-prompt positions in the batch), "scored": (B, L) the
    positions scored (masked, not prompt), "correct": (B, L) argmax_v logits == x0} -- per_token is the
    NELBO in nats per scored token (MDLM's reported normalisation).
    """
    t_min = _check_t_min(t_min)
    check_positive_int("mask_id", mask_id, note=" (the vocabulary size V)")
    x0 = jnp.asarray(x0_batch)
    if x0.ndim != 2 or not jnp.issubdtype(x0.dtype, jnp.integer):
        raise ValueError(f"x0_batch must be an integer array of shape (B, L); got {x0.dtype} {x0.shape}")
    if not isinstance(x0, jax.core.Tracer):
        x0_np = np.asarray(x0)
        if x0_np.size and (x0_np.min() < 0 or x0_np.max() >= mask_id):
            raise ValueError(f"x0 tokens must lie in [0, mask_id) = [0, {mask_id})")
    batch, length = x0.shape
    if prompt_mask is None:
        prompt = jnp.zeros((batch, length), bool)
    else:
        prompt = jnp.asarray(prompt_mask)
        if prompt.dtype != jnp.bool_:
            raise ValueError(f"prompt_mask must be a bool array; got dtype {prompt.dtype}")
        if prompt.shape not in ((length,), (batch, length)):
            raise ValueError(f"prompt_mask must have shape (L,) or (B, L) = {(batch, length)}; got {prompt.shape}")
        prompt = jnp.broadcast_to(prompt, (batch, length))

    index = jnp.arange(batch) if index is None else jnp.asarray(index)
    if index.shape != (batch,) or not jnp.issubdtype(index.dtype, jnp.integer):
        raise ValueError(f"index must be an integer array of shape ({batch},); got {index.dtype} {index.shape}")
    global_batch = batch if global_batch is None else global_batch
    check_int("global_batch", global_batch, batch, note=f" (the local batch {batch})")

    key_t, key_m = jax.random.split(key)
    if antithetic:
        t = antithetic_times(key_t, index, global_batch, t_min)
    else:
        t = t_min + (1.0 - t_min) * jax.vmap(lambda i: jax.random.uniform(jax.random.fold_in(key_t, i), ()))(index)
    keys = jax.vmap(jax.random.fold_in, in_axes=(None, 0))(key_m, index)
    x_t = jax.vmap(lambda k, x, ti, p: corrupt(k, x, ti, schedule, mask_id, p))(keys, x0, t, prompt)

    logits = apply_fn(params, x_t, t)
    if logits.shape != (batch, length, mask_id):
        raise ValueError(f"apply_fn must return logits of shape {(batch, length, mask_id)}; got {logits.shape}")
    logp = jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1)
    logp_x0 = jnp.take_along_axis(logp, x0[..., None].astype(jnp.int32), axis=-1)[..., 0]
    scored = (x_t == mask_id) & ~prompt
    sum_logp = jnp.sum(jnp.where(scored, logp_x0, 0.0), axis=-1)
    per_example = nelbo_weight(schedule, t) * sum_logp
    n_tokens = jnp.sum(~prompt)
    aux = {
        "per_example": per_example,
        "t": t,
        "x_t": x_t,
        "n_masked": jnp.sum(scored, axis=-1),
        "per_token": jnp.sum(per_example) / jnp.maximum(n_tokens, 1),
        "scored": scored,
        "correct": jnp.argmax(logits, axis=-1) == x0,
    }
    return jnp.mean(per_example), aux


def masked_supervised_loss(apply_fn, params, x0_batch: Array, prompt_mask: Array, *, mask_id: int) -> tuple[Array, dict]:
    """The supervised baseline of a masked model: every non-prompt position masked, cross-entropy summed
    over them,

        loss = mean_b  - sum_{j not prompt} log p_theta(x0_bj | prompt_b, MASK on every other position),

    i.e. the NELBO's integrand at t = 1 alone (no diffusion over partial masks). Returns (loss, aux) with
    aux["per_token"] = the loss per scored token, aux["scored"] (B, L) = the non-prompt positions and
    aux["correct"] (B, L) = argmax_v logits == x0."""
    x_t = jnp.where(prompt_mask, x0_batch, mask_id)
    logits = apply_fn(params, x_t, jnp.ones(x0_batch.shape[0]))
    logp = jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1)
    logp_x0 = jnp.take_along_axis(logp, x0_batch[..., None].astype(jnp.int32), axis=-1)[..., 0]
    per_example = -jnp.sum(jnp.where(prompt_mask, 0.0, logp_x0), axis=-1)
    scored = ~jnp.broadcast_to(prompt_mask, x0_batch.shape)
    return jnp.mean(per_example), {"per_example": per_example, "per_token": jnp.sum(per_example) / jnp.sum(scored),
                                   "scored": scored, "correct": jnp.argmax(logits, axis=-1) == x0_batch}


__all__ = ["masked_supervised_loss", 
    "PARAMETERIZATIONS",
    "WEIGHTINGS",
    "antithetic_times",
    "check_dsm_args",
    "dsm_batch_loss",
    "dsm_loss",
    "dsm_noise",
    "dsm_objective",
    "eps_to_score",
    "masked_nelbo",
    "score_fn_from_eps",
]
