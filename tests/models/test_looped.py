"""LoopedTransformer: tied weights (one parameter set for any loops, output = the shared block applied K
times by hand), bidirectionality, shapes, bad inputs, and use in the masked sampler and the NELBO.

The by-hand reference re-does the embeddings, time embedding, final LayerNorm and output head in numpy
float64 and calls `EncoderBlock().apply` on the extracted block parameters once per loop; every
parameter is redrawn at random first, so zero biases and unit LayerNorm scales cannot hide a mistake.
Compilation dominates on CPU, so the parameters come from one jitted init and the forwards the shape /
attention tests look at come from one jitted program (`_outputs`).
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from diffserial.losses import masked_nelbo
from diffserial.models.looped import LoopedTransformer
from diffserial.models.transformer import EncoderBlock, MaskedTransformer, predictor_from
from diffserial.processes.masked import Linear
from diffserial.samplers import masked_grid, masked_sampler, sample_masked

V, L, MAX_LEN, WIDTH, HEADS, RATIO = 3, 6, 8, 16, 4, 2
ARCH = dict(vocab_size=V, max_len=MAX_LEN, width=WIDTH, heads=HEADS, mlp_ratio=RATIO)
MODELS = {
    "loops1": LoopedTransformer(loops=1, **ARCH),
    "loops3": LoopedTransformer(loops=3, **ARCH),
    "no_injection": LoopedTransformer(loops=3, input_injection=False, **ARCH),
    "timed": LoopedTransformer(loops=2, time_conditioning=True, **ARCH),
}


def _randomize(params, seed):
    """Every leaf redrawn as N(0, 0.5^2): non-trivial biases and LayerNorm scales."""
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


def _tokens(seed, shape):
    """Random ids in {0, ..., V} (MASK = V included)."""
    return jax.random.randint(jax.random.key(seed), shape, 0, V + 1, dtype=jnp.int32)


X = np.random.default_rng(1).integers(0, V + 1, (4, L)).astype(np.int32)  # MASK = V included
T = np.linspace(0.1, 0.9, 4, dtype=np.float32)


@functools.cache
def _outputs():
    """name -> {batched (4, L, V), single (L, V), vmapped (4, L, V), times (2, L, V) of one x at t = 0.2
    and 0.8}; 'changed' -> name -> (3, L, V) logits of a base sequence, it with its last token changed,
    and with its first token changed; 'loops3_on_loops1_params' -> the loops = 3 model applied to the
    loops = 1 parameters."""
    base = _tokens(2, (L,))
    changed = jnp.stack([base, base.at[-1].set((base[-1] + 1) % (V + 1)), base.at[0].set((base[0] + 1) % (V + 1))])

    @jax.jit
    def run(params):
        out = {"changed": {}}
        for name, model in MODELS.items():
            v = {"params": params[name]}
            out[name] = {"batched": model.apply(v, X, T), "single": model.apply(v, X[0], T[0]),
                         "vmapped": jax.vmap(model.apply, (None, 0, 0))(v, X, T),
                         "times": model.apply(v, jnp.tile(X[:1], (2, 1)), jnp.array([0.2, 0.8]))}
            out["changed"][name] = model.apply(v, changed, 0.5)
        out["loops3_on_loops1_params"] = MODELS["loops3"].apply({"params": params["loops1"]}, X, T)
        return out

    return jax.tree.map(np.asarray, run(_params(0)))


# ------------------------------------------------------------------------------- numpy reference
def _layer_norm(h, p, eps=1e-6):
    mean = h.mean(-1, keepdims=True)
    var = ((h - mean) ** 2).mean(-1, keepdims=True)
    return (h - mean) / np.sqrt(var + eps) * p["scale"] + p["bias"]


def _dense(h, p):
    return h @ p["kernel"] + p["bias"]


def _time_embedding(t, dim, time_scale=1000.0, max_period=10_000.0):
    half = dim // 2
    freqs = max_period ** (-np.arange(half) / half)
    angles = time_scale * np.asarray(t, np.float64)[..., None] * freqs
    return np.concatenate([np.sin(angles), np.cos(angles)], axis=-1)


def _by_hand(params, x, t, loops, input_injection, time_conditioning):
    """Logits (B, L, V): embeddings and head in numpy float64, EncoderBlock().apply(block params) per loop."""
    p = jax.tree.map(lambda a: np.asarray(a, np.float64), params)
    x = np.asarray(x)
    e = p["token_embed"]["embedding"][x] + p["pos_embed"][: x.shape[-1]]
    if time_conditioning:
        # flax names the outer Dense of Dense(SiLU(Dense(.))) first: Dense_1 is the inner one.
        hidden = _dense(_time_embedding(t, WIDTH), p["Dense_1"])
        e = e + _dense(hidden / (1.0 + np.exp(-hidden)), p["Dense_0"])[:, None, :]
    block = jax.jit(EncoderBlock(heads=HEADS, mlp_ratio=RATIO, rotary=True).apply)  # the model default
    block_params = {"params": params["block"]}
    h = np.zeros_like(e) if input_injection else e
    for _ in range(loops):
        u = h + e if input_injection else h
        h = np.asarray(block(block_params, jnp.asarray(u, jnp.float32)), np.float64)
    return _dense(_layer_norm(h, p["LayerNorm_0"]), p["logits"])


@pytest.mark.parametrize("name, loops, injection, timed", [
    ("loops1", 1, True, False), ("loops3", 3, True, False), ("no_injection", 3, False, False),
    ("timed", 2, True, True)])
def test_output_is_the_shared_block_applied_loops_times(name, loops, injection, timed):
    expected = _by_hand(_params(0)[name], X, T, loops, injection, timed)
    np.testing.assert_allclose(_outputs()[name]["batched"], expected, rtol=1e-4, atol=1e-4)


def test_parameters_do_not_depend_on_loops():
    """Same tree and count for loops = 1 and 3; the loops = 3 model runs on the loops = 1 parameters and
    differs from loops = 1 there (the extra passes reuse the same weights)."""
    shapes = {name: jax.tree.map(np.shape, p) for name, p in _params(0).items()}
    assert shapes["loops1"] == shapes["loops3"] == shapes["no_injection"]
    count = lambda p: sum(np.size(a) for a in jax.tree.leaves(p))
    assert count(_params(0)["loops1"]) == count(_params(0)["loops3"])
    untied = jax.eval_shape(MaskedTransformer(depth=3, **ARCH).init, jax.random.key(0), jnp.zeros((L,), jnp.int32))
    assert count(untied["params"]) > count(_params(0)["loops3"])
    out = _outputs()
    expected = _by_hand(_params(0)["loops1"], X, T, 3, True, False)
    np.testing.assert_allclose(out["loops3_on_loops1_params"], expected, rtol=1e-4, atol=1e-4)
    assert not np.allclose(out["loops3_on_loops1_params"], out["loops1"]["batched"], atol=1e-3)


def test_one_loop_is_a_depth_one_masked_transformer():
    params = dict(_params(0)["loops1"])
    params["EncoderBlock_0"] = params.pop("block")
    reference = jax.jit(MaskedTransformer(depth=1, **ARCH).apply)({"params": params}, X, T)
    np.testing.assert_allclose(_outputs()["loops1"]["batched"], reference, rtol=1e-5, atol=1e-5)


def test_program_size_does_not_grow_with_loops():
    """The loop is one scan: the traced program has the same number of equations for 2 and 64 loops."""
    def n_eqns(loops):
        model = LoopedTransformer(loops=loops, **ARCH)
        return len(jax.make_jaxpr(lambda p: model.apply({"params": p}, X, T))(_params(0)["loops3"]).eqns)

    assert n_eqns(2) == n_eqns(64)


@pytest.mark.parametrize("name", list(MODELS))
def test_single_and_batched_calls_agree(name):
    out = _outputs()[name]
    assert out["single"].shape == (L, V) and out["batched"].shape == (4, L, V)
    np.testing.assert_allclose(out["batched"], out["vmapped"], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(out["single"], out["batched"][0], rtol=1e-5, atol=1e-5)
    assert np.all(np.isfinite(out["batched"]))


@pytest.mark.parametrize("name", ["loops1", "loops3", "no_injection"])
def test_last_token_reaches_position_zero_and_first_token_the_last_position(name):
    base, last_changed, first_changed = _outputs()["changed"][name]
    assert np.max(np.abs(last_changed[0] - base[0])) > 1e-5
    assert np.max(np.abs(first_changed[-1] - base[-1])) > 1e-5


def test_time_conditioning_flag():
    """Same tokens at t = 0.2 and 0.8: the time-conditioned logits differ, the time-free ones do not."""
    timed, free = _outputs()["timed"]["times"], _outputs()["loops3"]["times"]
    assert not np.allclose(timed[0], timed[1])
    np.testing.assert_array_equal(free[0], free[1])


def test_bad_inputs_raise():
    def init(model, x):
        return jax.eval_shape(model.init, jax.random.key(0), x)

    tokens = jnp.zeros((L,), jnp.int32)
    with pytest.raises(ValueError, match="must be integers"):
        init(MODELS["loops1"], jnp.zeros((L,), jnp.float32))
    with pytest.raises(ValueError, match="exceeds max_len"):
        init(MODELS["loops1"], jnp.zeros((MAX_LEN + 1,), jnp.int32))
    with pytest.raises(ValueError, match=r"shape \(L,\) or \(B, L\)"):
        init(MODELS["loops1"], jnp.zeros((2, 2, L), jnp.int32))
    for loops in (0, -1, 2.0, True):
        with pytest.raises(ValueError, match="loops must be an int >= 1"):
            init(LoopedTransformer(**{**ARCH, "loops": loops}), tokens)
    with pytest.raises(ValueError, match="multiple of heads"):
        init(LoopedTransformer(**{**ARCH, "width": 10}), tokens)
    with pytest.raises(ValueError, match="pass t"):
        init(MODELS["timed"], tokens)


def test_in_the_masked_sampler_and_the_nelbo():
    """Time-conditioned, 2 loops with injection: a tiny ancestral run (2 seeds, 4 steps) fills every
    position with a real token; the NELBO is finite with finite gradients, non-zero on the shared block."""
    model, params = MODELS["timed"], _params(0)["timed"]
    tokens = sample_masked(predictor_from(model, params), Linear(), masked_sampler("ancestral"),
                                  masked_grid(4), key=jax.random.key(0), n_seeds=2, length=L, vocab_size=V)
    tokens = np.asarray(tokens)
    assert tokens.shape == (2, L) and tokens.min() >= 0 and tokens.max() < V

    apply_fn = lambda p, x, t: model.apply({"params": p}, x, t)
    x0 = jax.random.randint(jax.random.key(3), (4, L), 0, V, dtype=jnp.int32)
    loss_fn = lambda p: masked_nelbo(apply_fn, p, Linear(), x0, jax.random.key(4), mask_id=V)[0]
    loss, grads = jax.jit(jax.value_and_grad(loss_fn))(params)
    assert np.isfinite(loss) and loss > 0
    assert all(np.all(np.isfinite(g)) for g in jax.tree.leaves(grads))
    assert any(np.any(g != 0) for g in jax.tree.leaves(grads["block"]))
