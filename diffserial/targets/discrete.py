"""Discrete targets over token sequences with exact predictors for masked diffusion.

Conventions (see `diffserial.processes.masked`): vocabulary {0, ..., V-1}, MASK id = V, sequences of
length L (int32), time t in [0, 1] with t = 1 fully masked. A *predictor* is a pure function

    (x_t, t) -> log-probabilities of shape (L, V) (float32)

for ONE sequence (callers vmap); row i is the model's p(x_0^i = . | x_t). Under the absorbing forward
process the mask pattern is independent of x_0, so the exact predictor is the posterior marginal

    p(x_0^i = v | x_t) = sum_{x : x agrees with x_t off the mask} p_0(x) 1[x^i = v]
                         / sum_{x : x agrees with x_t off the mask} p_0(x),

which does not depend on t (Ou et al. 2024, RADD, arXiv:2406.03736, Thm. 1). On an unmasked position
it is the point mass on the current token. Predictors are `jax.tree_util.Partial`s: the arrays they
carry are pytree leaves (traced by `jax.jit`), their static configuration is a hashable callable.
Probabilities that are exactly 0 are returned as log-probability `LOG_ZERO` = -1e9 rather than -inf,
so that softmax / categorical sampling never produces NaN.

Parity. D_n^(+) is the uniform law on the 2^(n-1) strings of {0,1}^n with an even number of ones
(Diffusion LMs are provably optimal parallel samplers, ICLR 2026, Sec. 4). Any n - 1 of its bits are
i.i.d. fair coins and the last one is their parity, so the exact predictor is 1/2 on every masked
position unless it is the only masked one (`parity_predictor`). A no-remask, no-revision sampler that
reveals >= 2 positions at its final reveal event therefore outputs odd parity with probability 1/2 on
that event; `parity_tv_ancestral_uniform` gives the resulting TV in closed form, and
`odd_rate_lower_bound` turns samples into a confidence interval for a lower bound on TV.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax.tree_util import Partial

from diffserial.metrics.intervals import clopper_pearson
from diffserial.validation import is_int

Array = jax.Array
Predictor = Callable[[Array, Array], Array]

LOG_ZERO = -1e9
"""Log-probability returned for events of probability exactly 0 (instead of -inf)."""

_PROB_SUM_TOL = 1e-9
PARITY_VOCAB_SIZE = 2
PARITY_MASK_ID = 2


def _concrete(x) -> np.ndarray | None:
    """numpy view of `x`, or None when `x` is a tracer (nothing can be checked then)."""
    if isinstance(x, jax.core.Tracer):
        return None
    return np.asarray(x)


def _safe_log(p: Array) -> Array:
    """log p, with LOG_ZERO where p == 0 (no -inf, no NaN gradients through the where)."""
    positive = p > 0
    return jnp.where(positive, jnp.log(jnp.where(positive, p, 1.0)), LOG_ZERO)


def _check_sequence(name: str, x_t, length: int | None, vocab_size: int, mask_id: int) -> Array:
    """x_t as a jax int array of shape (length,), values in [0, vocab_size) or == mask_id when concrete."""
    x_t = jnp.asarray(x_t)
    if x_t.ndim != 1 or (length is not None and x_t.shape[0] != length):
        want = f"({length},)" if length is not None else "(L,)"
        raise ValueError(f"{name} must be one sequence of shape {want} (vmap for batches); got shape {x_t.shape}")
    if not jnp.issubdtype(x_t.dtype, jnp.integer):
        raise ValueError(f"{name} must be an integer array of token ids; got dtype {x_t.dtype}")
    arr = _concrete(x_t)
    if arr is not None:
        bad = ((arr < 0) | (arr >= vocab_size)) & (arr != mask_id)
        if np.any(bad):
            raise ValueError(f"{name} tokens must lie in [0, {vocab_size}) or equal mask_id={mask_id}; "
                             f"got {arr.tolist()}")
    return x_t


# --------------------------------------------------------------------------------------------------
# Explicit pmfs and exact enumeration
# --------------------------------------------------------------------------------------------------


@functools.partial(jax.tree_util.register_dataclass, data_fields=["support", "probs"], meta_fields=["vocab_size"])
@dataclasses.dataclass(frozen=True, eq=False)
class ExplicitPMF:
    """p_0(support[k]) = probs[k]: a distribution on sequences given by its (small) support.

    support: (K, L) int32, distinct rows, tokens in [0, vocab_size);  probs: (K,) >= 0, summing to 1.
    vocab_size: static. Use `ExplicitPMF.create` to build a validated pmf; the raw constructor performs
    no checks (it is what pytree unflattening calls, possibly on tracers).
    """

    support: Array
    probs: Array
    vocab_size: int

    @property
    def n_support(self) -> int:
        return self.support.shape[0]

    @property
    def length(self) -> int:
        return self.support.shape[1]

    @classmethod
    def create(cls, support, probs, vocab_size: int) -> "ExplicitPMF":
        """Validated pmf from array-likes.

        support: (K, L) integer array, K >= 1, L >= 1, rows pairwise distinct, tokens in [0, vocab_size).
        probs: (K,) finite, >= 0, with |sum - 1| <= 1e-9 (in float64); then divided by the sum in float64
            before being stored in jax's default float dtype.
        vocab_size: integer >= 1.
        Raises ValueError naming the offending argument, its value and what was expected.
        """
        if not is_int(vocab_size) or vocab_size < 1:
            raise ValueError(f"vocab_size must be an integer >= 1; got {vocab_size!r}")
        sup = np.asarray(support)
        if sup.ndim != 2 or sup.shape[0] < 1 or sup.shape[1] < 1:
            raise ValueError(f"support must have shape (K, L) with K >= 1 and L >= 1; got shape {sup.shape}")
        if not np.issubdtype(sup.dtype, np.integer):
            raise ValueError(f"support must be an integer array of token ids; got dtype {sup.dtype}")
        if sup.min() < 0 or sup.max() >= vocab_size:
            raise ValueError(f"support tokens must lie in [0, vocab_size) = [0, {vocab_size}); "
                             f"got min {sup.min()}, max {sup.max()}")
        uniq, first, counts = np.unique(sup, axis=0, return_index=True, return_counts=True)
        if uniq.shape[0] != sup.shape[0]:
            dup = uniq[np.argmax(counts)]
            raise ValueError(f"support rows must be distinct; row {dup.tolist()} appears {counts.max()} times")
        p = np.array(probs, dtype=np.float64)
        if p.shape != (sup.shape[0],):
            raise ValueError(f"probs must have shape (K,) = ({sup.shape[0]},) to match support {sup.shape}; "
                             f"got shape {p.shape}")
        if not np.all(np.isfinite(p)) or np.any(p < 0):
            raise ValueError(f"probs must be finite and >= 0; got min {np.nanmin(p) if p.size else p}, "
                             f"non-finite count {int(np.sum(~np.isfinite(p)))}")
        total = math.fsum(p.tolist())
        if abs(total - 1.0) > _PROB_SUM_TOL:
            raise ValueError(f"probs must sum to 1 within {_PROB_SUM_TOL}; got sum {total!r}")
        return cls(support=jnp.asarray(sup, jnp.int32), probs=jnp.asarray(p / total), vocab_size=int(vocab_size))


def sample(pmf: ExplicitPMF, key: Array, n: int) -> Array:
    """n i.i.d. draws of p_0, shape (n, L) int32."""
    idx = jax.random.categorical(key, jnp.log(pmf.probs), shape=(n,))
    return pmf.support[idx]


def _resolve_ids(pmf: ExplicitPMF, mask_id, vocab_size) -> tuple[int, int]:
    vocab_size = pmf.vocab_size if vocab_size is None else vocab_size
    if not is_int(vocab_size) or vocab_size < pmf.vocab_size:
        raise ValueError(f"vocab_size must be an integer >= the pmf's vocab_size {pmf.vocab_size}; got {vocab_size!r}")
    mask_id = vocab_size if mask_id is None else mask_id
    if not is_int(mask_id) or 0 <= mask_id < vocab_size:
        raise ValueError(f"mask_id must be an integer outside the vocabulary [0, {vocab_size}) "
                         f"(conventionally vocab_size = {vocab_size}); got {mask_id!r}")
    return int(vocab_size), int(mask_id)


def _posterior(pmf: ExplicitPMF, x_t: Array, mask_id: int, vocab_size: int) -> Array:
    masked = x_t == mask_id  # (L,)
    agrees = masked[None, :] | (pmf.support == x_t[None, :])  # (K, L)
    w = jnp.where(jnp.all(agrees, axis=1), pmf.probs, 0.0)  # (K,) unnormalised posterior over rows
    total = jnp.sum(w)
    counts = jax.vmap(lambda col: jnp.zeros(vocab_size, w.dtype).at[col].add(w), in_axes=1)(pmf.support)  # (L, V)
    own = jax.nn.one_hot(x_t, vocab_size, dtype=w.dtype)  # all-zero rows where masked (mask_id >= V)
    consistent = jnp.where(masked[:, None], counts / jnp.where(total > 0, total, 1.0), own)
    fallback = jnp.where(masked[:, None], 1.0 / vocab_size, own)
    return jnp.where(total > 0, consistent, fallback)


def posterior_marginals(pmf: ExplicitPMF, x_t, mask_id: int | None = None, vocab_size: int | None = None) -> Array:
    """Exact p(x_0^i = v | x_t), shape (L, V), by enumerating the support (cost O(K L)).

    p(x_0^i = v | x_t) = sum_k probs[k] c_k 1[support[k, i] = v] / sum_k probs[k] c_k, where
    c_k = 1[support[k] agrees with x_t on every unmasked position]. Unmasked positions get exactly the
    point mass on their token. Time independent (RADD). If x_t is consistent with no support row
    (e.g. an unmasked token off the support), masked positions get the uniform law 1/V and unmasked
    positions still their point mass.

    x_t: (L,) integer, tokens in [0, vocab_size) or == mask_id. mask_id defaults to vocab_size,
    vocab_size to pmf.vocab_size (a larger vocab_size pads the output with zero-probability columns).
    """
    vocab_size, mask_id = _resolve_ids(pmf, mask_id, vocab_size)
    x_t = _check_sequence("x_t", x_t, pmf.length, vocab_size, mask_id)
    return _posterior(pmf, x_t, mask_id, vocab_size)


@dataclasses.dataclass(frozen=True)
class _EnumerationLogProbs:
    """Static part of `enumeration_predictor` (hashable, compared by value under jit)."""

    vocab_size: int
    mask_id: int

    def __call__(self, pmf: ExplicitPMF, x_t: Array, t: Array) -> Array:
        del t  # the exact posterior of absorbing diffusion does not depend on t
        x_t = _check_sequence("x_t", x_t, pmf.length, self.vocab_size, self.mask_id)
        return _safe_log(_posterior(pmf, x_t, self.mask_id, self.vocab_size))


def enumeration_predictor(pmf: ExplicitPMF, vocab_size: int | None = None, mask_id: int | None = None) -> Partial:
    """Exact predictor (x_t, t) -> log p(x_0^i = v | x_t), shape (L, V), via `posterior_marginals`.

    Zero probabilities come out as LOG_ZERO = -1e9. A Partial whose leaves are pmf's arrays.
    """
    vocab_size, mask_id = _resolve_ids(pmf, mask_id, vocab_size)
    return Partial(_EnumerationLogProbs(vocab_size, mask_id), pmf)


# --------------------------------------------------------------------------------------------------
# Parity
# --------------------------------------------------------------------------------------------------


def parity_pmf(n: int) -> ExplicitPMF:
    """D_n^(+): uniform over the 2^(n-1) strings in {0,1}^n with an even number of ones, 1 <= n <= 16.

    Support rows in lexicographic order; vocab_size 2 (MASK id 2).
    """
    if not is_int(n) or not 1 <= n <= 16:
        raise ValueError(f"n must be an integer in [1, 16] (the support has 2^(n-1) rows); got {n!r}")
    codes = np.arange(2**n)
    bits = (codes[:, None] >> np.arange(n - 1, -1, -1)[None, :]) & 1  # (2^n, n), lexicographic
    even = bits[bits.sum(axis=1) % 2 == 0]
    return ExplicitPMF.create(even.astype(np.int32), np.full(even.shape[0], 1.0 / even.shape[0]), PARITY_VOCAB_SIZE)


def _parity_bits(x_t: Array) -> tuple[Array, Array]:
    """(masked, bits) for a parity sequence: bits are x_t with masked positions read as 0."""
    x_t = _check_sequence("x_t", x_t, None, PARITY_VOCAB_SIZE, PARITY_MASK_ID)
    masked = x_t == PARITY_MASK_ID
    return masked, jnp.where(masked, 0, x_t)


def _bit_log_probs(p1: Array) -> Array:
    """(L,) P(bit = 1) -> (L, 2) log-probabilities, LOG_ZERO for exact zeros."""
    p1 = p1.astype(jnp.float32)
    return _safe_log(jnp.stack([1.0 - p1, p1], axis=-1))


def _parity_log_probs(x_t: Array, t: Array) -> Array:
    del t
    masked, bits = _parity_bits(x_t)
    parity = (jnp.sum(bits) % 2).astype(jnp.float32)  # the bit that makes the total even
    p1_masked = jnp.where(jnp.sum(masked) == 1, parity, 0.5)
    return _bit_log_probs(jnp.where(masked, p1_masked, bits.astype(jnp.float32)))


def parity_predictor() -> Partial:
    """Exact predictor for D_n^(+), any n, O(n) per call: (x_t, t) -> (n, 2) log-probabilities.

    Vocabulary {0, 1}, MASK id 2. For a masked position i:
      * another position is also masked -> p(x_0^i = 1 | x_t) = 1/2 (any n - 1 bits of D_n^(+) are
        i.i.d. fair coins, and the visible bits plus x_0^i are at most n - 1 of them);
      * i is the only masked position -> x_0^i = (sum of the unmasked bits) mod 2, with probability 1.
    Unmasked positions: probability 1 on their own token. A fully unmasked input (even of odd parity)
    returns the point masses on its tokens, as `enumeration_predictor(parity_pmf(n))` does.
    """
    return Partial(_parity_log_probs)


@dataclasses.dataclass(frozen=True)
class _WindowedParity:
    radius: int

    def __call__(self, x_t: Array, t: Array) -> Array:
        del t
        masked, bits = _parity_bits(x_t)
        length = x_t.shape[0]
        idx = np.arange(length)
        lo = np.maximum(idx - self.radius, 0)  # window [lo, hi], static given L
        hi = np.minimum(idx + self.radius, length - 1)
        covers_all = (lo == 0) & (hi == length - 1)
        zero = jnp.zeros((1,), jnp.int32)
        cum_masked = jnp.concatenate([zero, jnp.cumsum(masked.astype(jnp.int32))])
        cum_bits = jnp.concatenate([zero, jnp.cumsum(bits.astype(jnp.int32))])
        others_masked = cum_masked[hi + 1] - cum_masked[lo] - masked.astype(jnp.int32)  # window minus i
        others_parity = (cum_bits[hi + 1] - cum_bits[lo] - bits) % 2
        sees_everything = jnp.asarray(covers_all) & (others_masked == 0)
        p1_masked = jnp.where(sees_everything, others_parity.astype(jnp.float32), 0.5)
        return _bit_log_probs(jnp.where(masked, p1_masked, bits.astype(jnp.float32)))


def windowed_parity_predictor(radius: int) -> Partial:
    """Capacity-bounded predictor for D_n^(+): position i sees only x_t on its window {j : |j - i| <= radius}.

    It returns the exact conditional of x_0^i given what its window shows. The mask pattern is
    independent of x_0 and any n - 1 bits of D_n^(+) are i.i.d. fair coins, so for a masked i:
      * the window covers all n positions and every other position in it is unmasked -> x_0^i is the
        parity of those n - 1 bits (probability 1), exactly as `parity_predictor`;
      * otherwise (a mask in the window besides i, or a position outside the window) the visible bits
        and x_0^i are at most n - 1 bits of D_n^(+), so p(x_0^i = 1 | window) = 1/2.
    Unmasked positions: probability 1 on their own token. Equal to
    `capacity_bounded(parity_predictor(), radius, mask_id=2)`, computed in O(n) with prefix sums.

    Why "AC0-like": output i is a function of at most 2 radius + 1 input tokens (bounded fan-in), so for
    a constant radius each output bit is a constant-size circuit (NC0, within AC0) and cannot compute the
    parity of n > 2 radius + 1 bits (parity is not in AC0; Furst-Saxe-Sipser, Hastad). Consequence for
    a sampler without remasking or revision (tokens, once revealed, never change): let E be the event
    that its final reveal unmasks >= 2 positions at once, or a single position whose window does not
    cover the sequence. On E at least one of the last revealed bits is a fair coin independent of all
    the others, so the output has odd parity with probability exactly 1/2; off E the last bit completes
    the parity. Hence P(odd) = P(E) / 2 <= TV(output, D_n^(+)). The window of i covers the sequence
    iff radius >= max(i, n - 1 - i); if radius < ceil((n - 1) / 2) no window does, E is certain and
    P(odd) = 1/2 whatever the number of steps (the separation of Thm 4.5 in the ICLR 2026 paper).
    """
    if not is_int(radius) or radius < 0:
        raise ValueError(f"radius must be an integer >= 0; got {radius!r}")
    return Partial(_WindowedParity(int(radius)))


@dataclasses.dataclass(frozen=True)
class _CapacityBounded:
    radius: int
    mask_id: int

    def __call__(self, predictor: Predictor, x_t: Array, t: Array) -> Array:
        x_t = jnp.asarray(x_t)
        if x_t.ndim != 1:
            raise ValueError(f"x_t must be one sequence of shape (L,) (vmap for batches); got shape {x_t.shape}")
        idx = np.arange(x_t.shape[0])
        visible = np.abs(idx[:, None] - idx[None, :]) <= self.radius  # (L, L): row i = window of i
        views = jnp.where(jnp.asarray(visible), x_t[None, :], jnp.asarray(self.mask_id, x_t.dtype))
        out = jax.vmap(lambda view: predictor(view, t))(views)  # (L, L, V)
        return out[idx, idx]


def capacity_bounded(predictor: Predictor, radius: int, mask_id: int) -> Partial:
    """Bounded fan-in version of any predictor: output i is predictor(view_i, t)[i], where view_i is x_t
    with every position outside {j : |j - i| <= radius} replaced by MASK.

    Since the mask pattern is independent of x_0, applying this to an exact predictor (e.g.
    `enumeration_predictor`) gives the exact conditional of x_0^i given only the tokens in i's window:
    hiding a token is the same as it being masked. Cost: L calls of `predictor` (vmapped).
    `predictor` may be a `jax.tree_util.Partial` (its leaves stay traced) or any plain callable.
    """
    if not callable(predictor):
        raise ValueError(f"predictor must be callable (x_t, t) -> (L, V) log-probabilities; got {predictor!r}")
    if not is_int(radius) or radius < 0:
        raise ValueError(f"radius must be an integer >= 0; got {radius!r}")
    if not is_int(mask_id) or mask_id < 1:
        raise ValueError(f"mask_id must be an integer >= 1 (the vocabulary size V); got {mask_id!r}")
    if not isinstance(predictor, Partial):
        predictor = Partial(predictor)
    return Partial(_CapacityBounded(int(radius), int(mask_id)), predictor)


# --------------------------------------------------------------------------------------------------
# Closed-form TV of the ancestral sampler on parity, and a sample-based lower bound
# --------------------------------------------------------------------------------------------------


def _check_n_steps(n, steps) -> None:
    if not is_int(n) or n < 1:
        raise ValueError(f"n must be an integer >= 1; got {n!r}")
    if not is_int(steps) or steps < 1:
        raise ValueError(f"steps must be an integer >= 1; got {steps!r}")


def final_reveal_collision_probability(n: int, steps: int) -> float:
    """q = P(the maximum of n i.i.d. uniform{1..T} variables is attained by >= 2 of them), T = steps:

        q = 1 - sum_{m=1}^T n (1/T) ((m - 1)/T)^(n - 1)        (n = 1: q = 0; T = 1, n >= 2: q = 1).

    For the MDLM ancestral sampler with the linear schedule on t_k = 1 - k/T, this is the probability
    that its final reveal event unmasks >= 2 positions at once (see `parity_tv_ancestral_uniform`).
    """
    _check_n_steps(n, steps)
    unique_max = math.fsum(n / steps * ((m - 1) / steps) ** (n - 1) for m in range(1, steps + 1))
    return min(max(1.0 - unique_max, 0.0), 1.0)


def parity_tv_ancestral_uniform(n: int, steps: int) -> float:
    """TV(D_n^(+), law of the MDLM ancestral sampler's output) with the exact parity oracle, the linear
    schedule alpha_t = 1 - t and the uniform grid t_k = 1 - k/T, k = 0..T (T = steps). Equals q / 2 with
    q = `final_reveal_collision_probability(n, T)`.

    Sampler: start all-MASK at t_0 = 1; at step k (t_{k-1} -> t_k) reveal each masked position
    independently with probability r_k = (alpha_{t_k} - alpha_{t_{k-1}}) / (1 - alpha_{t_{k-1}}), and fill
    the revealed positions with independent draws from the predictor's marginals p(x_0^i | x_{t_{k-1}})
    (factorized); revealed tokens never change. Derivation:

    1. Reveal steps are i.i.d. uniform on {1..T}. alpha_{t_k} = k/T gives r_k = (1/T) / (1 - (k-1)/T)
       = 1/(T - k + 1), the reciprocal of the number of remaining steps, so
       P(revealed at step k) = prod_{j<k} (1 - 1/(T-j+1)) / (T-k+1) = ((T-k+1)/T) / (T-k+1) = 1/T, for
       each position independently and independently of the token values. r_T = 1: the last step
       (t -> 0, alpha_0 = 1) reveals everything that is left.
    2. Values. A position revealed at a step after which some position is still masked had >= 2
       masked positions when predicted, so its marginal is 1/2. At the final reveal event (the step
       that unmasks the last masked positions, set S): if |S| = 1 the oracle completes the parity, and
       the output is exactly D_n^(+) (n - 1 fair coins plus their parity); if |S| >= 2, all n bits are
       independent fair coins and the output is uniform U_n on {0,1}^n.
    3. So the output law is (1 - q) D_n^(+) + q U_n with q = P(|S| >= 2) = P(the maximum of the n
       i.i.d. reveal steps is attained at least twice), and TV((1-q) D + q U, D) = q TV(U, D) = q / 2
       (U puts mass 1/2 on odd strings, where D puts none).
    """
    return 0.5 * final_reveal_collision_probability(n, steps)


def parity_tv_ancestral(n: int, alphas) -> float:
    """Same as `parity_tv_ancestral_uniform` for any schedule and time grid, from the alphas on the grid.

    alphas: alpha_{t_0}, ..., alpha_{t_T} along the sampler's decreasing grid 1 >= t_0 > ... > t_T = 0,
    non-decreasing, with alpha_{t_0} < 1 and alpha_{t_T} = 1 (the last step reveals all). The sampler
    starts all-MASK at t_0; each position is revealed by step k with probability
    F_k = (alpha_{t_k} - alpha_{t_0}) / (1 - alpha_{t_0}) independently, so
    q = 1 - n sum_k (F_k - F_{k-1}) F_{k-1}^(n-1) and TV = q / 2.
    """
    if not is_int(n) or n < 1:
        raise ValueError(f"n must be an integer >= 1; got {n!r}")
    a = np.asarray(alphas, dtype=np.float64)
    if a.ndim != 1 or a.shape[0] < 2:
        raise ValueError(f"alphas must be 1-D with T + 1 >= 2 entries; got shape {a.shape}")
    if not np.all(np.isfinite(a)) or np.any(np.diff(a) < 0) or a[0] >= 1.0 or a[-1] != 1.0:
        raise ValueError(f"alphas must be finite and non-decreasing with alphas[0] < 1 and alphas[-1] == 1; "
                         f"got {a.tolist()}")
    f = (a - a[0]) / (1.0 - a[0])
    unique_max = math.fsum((n * (f[1:] - f[:-1]) * f[:-1] ** (n - 1)).tolist())
    return 0.5 * min(max(1.0 - unique_max, 0.0), 1.0)


@dataclasses.dataclass(frozen=True)
class OddRate:
    """Odd-parity rate of bit samples with its exact (Clopper-Pearson) confidence interval."""

    rate: float
    lower: float
    upper: float
    n_odd: int
    n_samples: int
    confidence: float


def odd_rate_lower_bound(samples, confidence: float = 0.95) -> OddRate:
    """Odd-parity rate of samples (N, n) in {0,1}, with its Clopper-Pearson interval at `confidence`.

    For any law P on {0,1}^n, TV(P, D_n^(+)) >= P(odd) because D_n^(+) puts no mass on odd strings
    (take the event "odd" in sup_A |P(A) - D(A)|). The odd rate k/N of N i.i.d. draws of P is an
    unbiased estimate of P(odd), hence of a lower bound on TV, for any n (no histogram over 2^n cells).
    The exact binomial interval (`metrics.intervals.clopper_pearson`), with a = 1 - confidence and k odd
    draws out of N:
        lower = Beta(a/2; k, N - k + 1) quantile (0 if k = 0),
        upper = Beta(1 - a/2; k + 1, N - k) quantile (1 if k = N),
    so `lower` is a one-sided (1 - a/2) lower confidence bound on TV(P, D_n^(+)).
    """
    x = np.asarray(samples)
    if x.ndim != 2 or x.shape[0] < 1 or x.shape[1] < 1:
        raise ValueError(f"samples must have shape (N, n) with N >= 1 and n >= 1; got shape {x.shape}")
    if not np.all((x == 0) | (x == 1)):
        raise ValueError(f"samples must contain only bits 0 and 1; got values {np.unique(x)[:10].tolist()}")
    if not isinstance(confidence, (float, int)) or isinstance(confidence, bool) or not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be a number in (0, 1); got {confidence!r}")
    n_samples = int(x.shape[0])
    k = int(np.sum(x.astype(np.int64).sum(axis=1) % 2))
    lower, upper = clopper_pearson(k, n_samples, confidence)
    return OddRate(rate=k / n_samples, lower=lower, upper=upper, n_odd=k, n_samples=n_samples,
                   confidence=float(confidence))
