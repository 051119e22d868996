"""RecurrentPredictor: the whole bidirectional GRU against a plain numpy GRU, bidirectionality, shapes,
bad inputs, and use in the masked sampler and the NELBO.

The numpy reference (float64) implements the GRU equations stated in `diffserial.models.recurrent` with
python loops over positions, reading the flax cells' parameters; every parameter is redrawn at random
first, so zero biases cannot hide a mistake. Compilation dominates on CPU, so the parameters come from
one jitted init and the forwards the shape / dependence tests look at from one jitted program.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from diffserial.losses import masked_nelbo
from diffserial.models.recurrent import RecurrentPredictor
from diffserial.models.transformer import predictor_from
from diffserial.processes.masked import Linear
from diffserial.samplers import masked_grid, masked_sampler, sample_masked

V, L, WIDTH = 3, 6, 8
MODELS = {
    "two_layers": RecurrentPredictor(vocab_size=V, width=WIDTH, layers=2),
    "timed": RecurrentPredictor(vocab_size=V, width=WIDTH, layers=1, time_conditioning=True),
}
X = np.random.default_rng(1).integers(0, V + 1, (4, L)).astype(np.int32)  # MASK = V included
T = np.linspace(0.1, 0.9, 4, dtype=np.float32)


def _randomize(params, seed):
    """Every leaf redrawn as N(0, 0.5^2)."""
    leaves, tree = jax.tree.flatten(params)
    rng = np.random.default_rng(seed)
    return jax.tree.unflatten(tree, [jnp.asarray(rng.normal(0.0, 0.5, p.shape), p.dtype) for p in leaves])


@jax.jit
def _init(key):
    x = jnp.zeros((L,), jnp.int32)
    return {name: model.init(key, x, 0.5)["params"] for name, model in MODELS.items()}


@functools.cache
def _params(seed):
    return {name: _randomize(p, seed + i) for i, (name, p) in enumerate(_init(jax.random.key(seed)).items())}


@functools.cache
def _outputs():
    """name -> {batched (4, L, V), single (L, V), vmapped (4, L, V), times (2, L, V) of one x at t = 0.2
    and 0.8, changed (3, L, V): a base sequence, it with its last token changed, with its first changed}."""
    base = X[1]
    changed = np.stack([base, base, base])
    changed[1, -1], changed[2, 0] = (base[-1] + 1) % (V + 1), (base[0] + 1) % (V + 1)

    @jax.jit
    def run(params):
        out = {}
        for name, model in MODELS.items():
            v = {"params": params[name]}
            out[name] = {"batched": model.apply(v, X, T), "single": model.apply(v, X[0], T[0]),
                         "vmapped": jax.vmap(model.apply, (None, 0, 0))(v, X, T),
                         "times": model.apply(v, np.tile(X[:1], (2, 1)), jnp.array([0.2, 0.8])),
                         "changed": model.apply(v, changed, 0.5)}
        return out

    return jax.tree.map(np.asarray, run(_params(0)))


# ------------------------------------------------------------------------------- numpy reference
def _sigmoid(a):
    return 1.0 / (1.0 + np.exp(-a))


def _gru_cell(p, h, u):
    """r = s(W_ir u + b_ir + W_hr h), z = s(W_iz u + b_iz + W_hz h), n = tanh(W_in u + b_in + r (W_hn h + b_hn)),
    h' = (1 - z) n + z h."""
    r = _sigmoid(u @ p["ir"]["kernel"] + p["ir"]["bias"] + h @ p["hr"]["kernel"])
    z = _sigmoid(u @ p["iz"]["kernel"] + p["iz"]["bias"] + h @ p["hz"]["kernel"])
    n = np.tanh(u @ p["in"]["kernel"] + p["in"]["bias"] + r * (h @ p["hn"]["kernel"] + p["hn"]["bias"]))
    return (1.0 - z) * n + z * h


def _run_gru(p, u, positions):
    """States (L, D) of one direction over one sequence u (L, D_in), visiting `positions` in order from h = 0."""
    h, out = np.zeros(WIDTH), np.zeros((u.shape[0], WIDTH))
    for i in positions:
        h = _gru_cell(p, h, u[i])
        out[i] = h
    return out


def _time_embedding(t, dim, time_scale=1000.0, max_period=10_000.0):
    half = dim // 2
    freqs = max_period ** (-np.arange(half) / half)
    angles = time_scale * np.float64(t) * freqs
    return np.concatenate([np.sin(angles), np.cos(angles)])


def _by_hand(params, x, t, layers, time_conditioning):
    """Logits (L, V) of one sequence x (L,), all in numpy float64."""
    p = jax.tree.map(lambda a: np.asarray(a, np.float64), params)
    u = p["token_embed"]["embedding"][np.asarray(x)]
    if time_conditioning:
        # flax names the outer Dense of Dense(SiLU(Dense(.))) first: Dense_1 is the inner one.
        hidden = _time_embedding(t, WIDTH) @ p["Dense_1"]["kernel"] + p["Dense_1"]["bias"]
        u = u + (hidden * _sigmoid(hidden)) @ p["Dense_0"]["kernel"] + p["Dense_0"]["bias"]
    length = u.shape[0]
    for layer in range(layers):
        forward = _run_gru(p[f"forward_{layer}"], u, range(length))
        backward = _run_gru(p[f"backward_{layer}"], u, reversed(range(length)))
        u = np.concatenate([forward, backward], axis=-1)
    return u @ p["logits"]["kernel"] + p["logits"]["bias"]


@pytest.mark.parametrize("name, layers, timed", [("two_layers", 2, False), ("timed", 1, True)])
def test_matches_a_numpy_bidirectional_gru(name, layers, timed):
    out = _outputs()[name]["batched"]
    for b in range(X.shape[0]):
        expected = _by_hand(_params(0)[name], X[b], T[b], layers, timed)
        np.testing.assert_allclose(out[b], expected, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("name", list(MODELS))
def test_single_and_batched_calls_agree(name):
    out = _outputs()[name]
    assert out["single"].shape == (L, V) and out["batched"].shape == (X.shape[0], L, V)
    np.testing.assert_allclose(out["batched"], out["vmapped"], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(out["single"], out["batched"][0], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", list(MODELS))
def test_last_token_reaches_position_zero_and_first_token_the_last_position(name):
    base, last_changed, first_changed = _outputs()[name]["changed"]
    assert np.max(np.abs(last_changed[0] - base[0])) > 1e-5
    assert np.max(np.abs(first_changed[-1] - base[-1])) > 1e-5


def test_time_conditioning_flag():
    """Same tokens at t = 0.2 and 0.8: the time-conditioned logits differ, the time-free ones do not."""
    timed, free = _outputs()["timed"]["times"], _outputs()["two_layers"]["times"]
    assert not np.allclose(timed[0], timed[1])
    np.testing.assert_array_equal(free[0], free[1])


def test_bad_inputs_raise():
    def init(model, x):
        return jax.eval_shape(model.init, jax.random.key(0), x)

    tokens = jnp.zeros((L,), jnp.int32)
    with pytest.raises(ValueError, match="must be integers"):
        init(MODELS["two_layers"], jnp.zeros((L,), jnp.float32))
    with pytest.raises(ValueError, match=r"shape \(L,\) or \(B, L\)"):
        init(MODELS["two_layers"], jnp.zeros((2, 2, L), jnp.int32))
    for layers in (0, 1.0, True):
        with pytest.raises(ValueError, match="layers must be an int >= 1"):
            init(RecurrentPredictor(vocab_size=V, width=WIDTH, layers=layers), tokens)
    with pytest.raises(ValueError, match="even width"):
        init(RecurrentPredictor(vocab_size=V, width=7, time_conditioning=True), tokens)
    with pytest.raises(ValueError, match="pass t"):
        init(MODELS["timed"], tokens)


def test_in_the_masked_sampler_and_the_nelbo():
    """Two layers: a tiny ancestral run (2 seeds, 4 steps) fills every position with a real token; the
    NELBO is finite with finite gradients, non-zero on every GRU cell."""
    model, params = MODELS["two_layers"], _params(0)["two_layers"]
    tokens = sample_masked(predictor_from(model, params), Linear(), masked_sampler("ancestral"),
                                  masked_grid(4), key=jax.random.key(0), n_seeds=2, length=L, vocab_size=V)
    tokens = np.asarray(tokens)
    assert tokens.shape == (2, L) and tokens.min() >= 0 and tokens.max() < V

    apply_fn = lambda p, x, t: model.apply({"params": p}, x, t)

    def loss_fn(p):  # x0 drawn inside the jitted program, not op by op
        x0 = jax.random.randint(jax.random.key(3), (4, L), 0, V, dtype=jnp.int32)
        return masked_nelbo(apply_fn, p, Linear(), x0, jax.random.key(4), mask_id=V)[0]

    loss, grads = jax.jit(jax.value_and_grad(loss_fn))(params)
    assert np.isfinite(loss) and loss > 0
    assert all(np.all(np.isfinite(g)) for g in jax.tree.leaves(grads))
    for cell in ("forward_0", "backward_0", "forward_1", "backward_1"):
        assert any(np.any(g != 0) for g in jax.tree.leaves(grads[cell])), cell
