"""MaskedTransformer: shapes, bidirectional attention, time conditioning, and use as a traced predictor.

Compilation dominates on CPU, so the parameters of both models come from one jitted init and every
forward the shape / attention / time tests look at is computed by one jitted program (`_outputs`).
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from diffserial.models.transformer import MaskedTransformer, predictor_from
from diffserial.processes.masked import Linear
from diffserial.samplers import compiled_programs, masked_grid, masked_sampler, sample_masked

V, L = 3, 8
MODEL = MaskedTransformer(vocab_size=V, max_len=12, width=16, depth=2, heads=4, mlp_ratio=2)
TIMED = MaskedTransformer(vocab_size=V, max_len=12, width=16, depth=1, heads=2, mlp_ratio=2,
                          time_conditioning=True)
MODELS = {"time_free": MODEL, "time_conditioned": TIMED}
WHERE = (0, L // 2, L - 1)  # positions changed in the attention test


@jax.jit
def _init(key):
    x = jnp.zeros((L,), jnp.int32)
    return {name: model.init(key, x, 0.5)["params"] for name, model in MODELS.items()}


@functools.cache
def _params(seed):
    return _init(jax.random.key(seed))


def _tokens(seed, shape):
    """Random ids in {0, ..., V} (MASK = V included)."""
    return jax.random.randint(jax.random.key(seed), shape, 0, V + 1, dtype=jnp.int32)


@functools.cache
def _outputs():
    """name -> {batched (5, L, V), single (L, V) of row 0, vmapped (5, L, V), times (5, L, V) of one x at
    times t_same}, plus 'changed' (1 + len(WHERE), L, V): MODEL on x and on x with one token changed."""
    @jax.jit
    def run(params):
        x, t = _tokens(1, (5, L)), jnp.linspace(0.1, 0.9, 5)
        x_same, t_same = jnp.tile(_tokens(3, (1, L)), (5, 1)), jnp.array([0.2, 0.8, 0.2, 0.8, 0.5])
        base = _tokens(2, (L,))
        changed = jnp.stack([base] + [base.at[j].set((base[j] + 1) % (V + 1)) for j in WHERE])
        out = {}
        for name, model in MODELS.items():
            v = {"params": params[name]}
            out[name] = {"batched": model.apply(v, x, t), "single": model.apply(v, x[0], t[0]),
                         "vmapped": jax.vmap(model.apply, (None, 0, 0))(v, x, t),
                         "times": model.apply(v, x_same, t_same)}
        out["changed"] = MODEL.apply({"params": params["time_free"]}, changed, 0.5)
        return out

    return jax.tree.map(np.asarray, run(_params(0)))


@pytest.mark.parametrize("name", list(MODELS))
def test_single_and_batched_calls_agree(name):
    out = _outputs()[name]
    assert out["single"].shape == (L, V) and out["batched"].shape == (5, L, V)
    np.testing.assert_allclose(out["batched"], out["vmapped"], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(out["single"], out["batched"][0], rtol=1e-5, atol=1e-5)
    assert np.all(np.isfinite(out["batched"]))


def test_attention_is_bidirectional():
    """Changing the token at position j changes the logits at every other position, before and after j."""
    logits = _outputs()["changed"]
    for row, j in enumerate(WHERE, start=1):
        change = np.max(np.abs(logits[row] - logits[0]), axis=1)
        assert np.all(np.delete(change, j) > 1e-5), (j, change)


def test_time_conditioning_flag():
    """Same tokens at t = 0.2 and 0.8: the time-conditioned logits differ, the time-free ones do not."""
    timed, free = _outputs()["time_conditioned"]["times"], _outputs()["time_free"]["times"]
    assert not np.allclose(timed[0], timed[1])
    np.testing.assert_allclose(timed[0], timed[2], rtol=1e-6)
    np.testing.assert_array_equal(free[0], free[1])
    params = _params(0)["time_free"]
    assert params["pos_embed"].shape == (12, 16) and params["token_embed"]["embedding"].shape == (V + 1, 16)


def test_bad_configurations_raise():
    init = lambda model, n: jax.eval_shape(model.init, jax.random.key(0), jnp.zeros((n,), jnp.int32))
    with pytest.raises(ValueError, match="exceeds max_len"):
        init(MODEL, 13)
    with pytest.raises(ValueError, match="multiple of heads"):
        init(MaskedTransformer(vocab_size=V, max_len=L, width=10, heads=4), L)
    with pytest.raises(ValueError, match="pass t"):
        init(TIMED, L)


def test_predictor_in_the_masked_sampler_reuses_the_program_for_new_weights():
    kw = dict(key=jax.random.key(0), n_seeds=16, length=L, vocab_size=V, block_size=8)
    rule, grid = masked_sampler("ancestral"), masked_grid(4)
    first = sample_masked(predictor_from(MODEL, _params(0)["time_free"]), Linear(), rule, grid, **kw)
    size = compiled_programs()
    second = sample_masked(predictor_from(MODEL, _params(1)["time_free"]), Linear(), rule, grid, **kw)
    assert compiled_programs() == size
    first, second = np.asarray(first), np.asarray(second)
    assert first.shape == (16, L) and first.dtype == np.int32
    assert first.min() >= 0 and first.max() < V and second.min() >= 0 and second.max() < V  # nothing left masked
    assert not np.array_equal(first, second)


def test_rotary_matches_complex_rotation_and_depends_on_offsets_only():
    """rotary(u) at position p == (u_2m + i u_2m+1) exp(i p base^(-2m/d)) in complex numpy, and
    rotary(q)_i . rotary(k)_j is unchanged when both positions shift by the same amount."""
    from diffserial.models.transformer import rotary

    rng = np.random.default_rng(0)
    u = rng.normal(size=(2, 7, 8)).astype(np.float32)
    z = u[..., 0::2] + 1j * u[..., 1::2]
    theta = 10_000.0 ** (-np.arange(0, 8, 2) / 8)
    rotated = z * np.exp(1j * np.arange(7)[:, None] * theta[None, :])
    expected = np.stack([rotated.real, rotated.imag], axis=-1).reshape(u.shape)
    np.testing.assert_allclose(np.asarray(jax.jit(rotary)(jnp.asarray(u))), expected, rtol=1e-5, atol=1e-5)

    q, k = rng.normal(size=(8,)), rng.normal(size=(8,))
    seq_q = jnp.asarray(np.tile(q, (7, 1)), jnp.float32)
    seq_k = jnp.asarray(np.tile(k, (7, 1)), jnp.float32)
    scores = np.asarray(jax.jit(lambda q, k: rotary(q) @ rotary(k).T)(seq_q, seq_k))
    for offset in range(-3, 4):
        diagonal = np.diagonal(scores, offset)
        np.testing.assert_allclose(diagonal, diagonal[0], rtol=1e-4, atol=1e-4)
    assert np.ptp(np.diagonal(scores, 0)) < 1e-4 and abs(scores[0, 0] - scores[0, 3]) > 1e-3
    with pytest.raises(ValueError, match="even head size"):
        rotary(jnp.zeros((3, 5)))
