"""The quantized-answer codebook (encode / nearest-codeword decode) and the prompt-conditioned eps network."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from diffserial.models.continuous_answer import BinaryCode, ContinuousAnswerTransformer, eps_fn_from


@pytest.mark.parametrize("vocab,dim", [(1, 1), (2, 1), (3, 2), (4, 2), (5, 3), (120, 7)])
def test_code_dimension_and_round_trip(vocab, dim):
    code = BinaryCode(vocab)
    assert code.dim == dim
    # one program, not op by op
    words, decoded = jax.jit(lambda tokens: (code.codewords(), code.decode(code.encode(tokens))))(
        jnp.arange(vocab, dtype=jnp.int32))
    words = np.asarray(words)
    assert words.shape == (vocab, dim) and set(np.unique(words)) <= {-1.0, 1.0}
    assert len({tuple(w) for w in words}) == vocab  # distinct codewords
    np.testing.assert_array_equal(np.asarray(decoded), np.arange(vocab))


def test_encode_is_the_msb_first_sign_code():
    np.testing.assert_array_equal(np.asarray(jax.jit(BinaryCode(5).encode)(jnp.array([0, 3, 4]))),
                                  [[-1, -1, -1], [-1, 1, 1], [1, -1, -1]])
    np.testing.assert_array_equal(np.asarray(jax.jit(BinaryCode(2).encode)(jnp.array([[0, 1]]))), [[[-1], [1]]])


def test_decode_is_the_nearest_valid_codeword():
    code = BinaryCode(5)  # 5 of the 8 corners of {-1, 1}^3 are codewords
    decode = jax.jit(code.decode)
    words = np.array([[2 * ((a >> (2 - j)) & 1) - 1 for j in range(3)] for a in range(5)], np.float32)
    points = np.random.default_rng(0).normal(size=(2000, 3)).astype(np.float32) * 1.5
    dist = ((points[:, None, :] - words[None]) ** 2).sum(-1)
    np.testing.assert_array_equal(np.asarray(decode(jnp.asarray(points))), dist.argmin(1))
    # The corner (1, 1, 1) is no codeword; the nearest is 3 = 011 (5 = 101 and 6 = 110 are not codewords).
    assert int(decode(jnp.ones(3))) == 3
    # Any point within distance < 1 of a codeword (half the minimum distance 2) decodes to it.
    for a, u in itertools.product(range(5), np.random.default_rng(1).uniform(-0.57, 0.57, (20, 3))):
        assert int(decode(jnp.asarray(words[a] + u))) == a


def test_code_errors():
    for bad in (0, -1, True, 2.0):
        with pytest.raises(ValueError, match="vocab_size"):
            BinaryCode(bad)
    with pytest.raises(ValueError, match="integers"):
        BinaryCode(4).encode(jnp.zeros(3))
    with pytest.raises(ValueError, match=r"\(\.\.\., 2\)"):
        BinaryCode(4).decode(jnp.zeros((3, 3)))


def _model(**kw):
    return ContinuousAnswerTransformer(**{**dict(vocab_size=5, prompt_len=4, answer_len=2, code_dim=3, width=16,
                                                 depth=2, heads=2, mlp_ratio=2), **kw})


def test_shapes_prompt_and_time_dependence_and_adapter():
    model = _model()
    prompt = jnp.array([0, 1, 4, 2], jnp.int32)
    y = jax.random.normal(jax.random.key(0), (2, 3))
    params = jax.jit(model.init)(jax.random.key(1), prompt, y, 0.5)["params"]
    fn = eps_fn_from(model, params)  # one prompt: (Lp,), (La, m) -> (La, m)
    assert isinstance(fn, jax.tree_util.Partial)
    prompts, ys, ts = jnp.stack([prompt, prompt[::-1], prompt]), jnp.stack([y, y, y]), jnp.array([0.5, 0.5, 0.9])
    one_by_one = np.asarray(jax.jit(jax.vmap(fn))(prompts, ys, ts))
    batched = np.asarray(jax.jit(model.apply)({"params": params}, prompts, ys, ts))
    assert batched.shape == one_by_one.shape == (3, 2, 3) and batched.dtype == np.float32
    np.testing.assert_allclose(one_by_one, batched, atol=1e-5)
    assert np.abs(batched[1] - batched[0]).max() > 1e-4  # the prompt matters
    assert np.abs(batched[2] - batched[0]).max() > 1e-4  # so does t


@pytest.mark.parametrize("prompt,y,match", [
    (jnp.zeros((3,), jnp.int32), jnp.zeros((2, 3)), "4 tokens"),
    (jnp.zeros((4,)), jnp.zeros((2, 3)), "integers"),
    (jnp.zeros((4,), jnp.int32), jnp.zeros((2, 2)), "shape"),
    (jnp.zeros((2, 4), jnp.int32), jnp.zeros((2, 3)), "shape"),
    (jnp.zeros((4,), jnp.int32), jnp.zeros((2, 3), jnp.int32), "float"),
])
def test_model_input_errors(prompt, y, match):
    with pytest.raises(ValueError, match=match):
        _model().init(jax.random.key(0), prompt, y, 0.5)


def test_model_width_errors():
    ok = (jnp.zeros((4,), jnp.int32), jnp.zeros((2, 3)), 0.5)
    with pytest.raises(ValueError, match="multiple of heads"):
        _model(width=15, heads=2).init(jax.random.key(0), *ok)
    with pytest.raises(ValueError, match="even width"):
        _model(width=15, heads=3).init(jax.random.key(0), *ok)
