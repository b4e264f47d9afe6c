"""The causal forward filter of a hidden Markov model, and the regime decision.

Pure functions over arrays; the HMM, the online updater and the tests all use
these. Shapes: T candles, K states, D features.

Only *filtered* probabilities P(state_t | x_1..x_t) are computed here. hmmlearn's
``predict_proba`` (forward-backward, smoothed) and ``predict`` (Viterbi) condition
on the whole sequence, i.e. on the future, and are never used for anything a
strategy or a metric sees.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

FloatArray = NDArray[np.float64]


def _logsumexp(values: FloatArray) -> float:
    peak = float(values.max())
    if not np.isfinite(peak):
        return peak
    return peak + float(np.log(np.exp(values - peak).sum()))


def gaussian_log_likelihood(x: FloatArray, means: FloatArray, covars: FloatArray) -> FloatArray:
    """log N(x_t | mean_k, covar_k) for every candle and state.

    ``x``: (T, D); ``means``: (K, D); ``covars``: (K, D, D) full matrices.
    Returns (T, K). Each row is computed with the same element-wise operations
    whatever T is, so one candle alone gives bit-for-bit the value it gets in a
    batch (the online filter relies on that).
    """
    t, d = x.shape
    out = np.empty((t, means.shape[0]))
    for k, (mean, covar) in enumerate(zip(means, covars, strict=True)):
        chol = np.linalg.cholesky(covar)
        inverse = np.linalg.inv(chol)  # whitening: z = inverse @ (x - mean)
        diff = x - mean
        squared = np.zeros(t)
        for i in range(d):
            row = np.zeros(t)
            for j in range(i + 1):  # inverse is lower triangular
                row = row + diff[:, j] * inverse[i, j]
            squared = squared + row * row
        log_det = 2.0 * np.log(np.diag(chol)).sum()
        out[:, k] = -0.5 * (d * np.log(2 * np.pi) + log_det + squared)
    return out


def forward_step(
    log_alpha: FloatArray, log_likelihood: FloatArray, transmat: FloatArray
) -> FloatArray:
    """One step of the forward recursion, O(K^2).

    ``log_alpha``: (K,) normalised log filtered probabilities at t-1;
    ``log_likelihood``: (K,) emission log-likelihood of candle t; ``transmat``: (K, K).
    Returns the normalised log filtered probabilities at t.
    """
    peak = float(log_alpha.max())
    with np.errstate(divide="ignore"):
        predicted = peak + np.log(np.exp(log_alpha - peak) @ transmat)
    joint = predicted + log_likelihood
    return joint - _logsumexp(joint)


def forward_filter(
    log_likelihood: FloatArray, transmat: FloatArray, startprob: FloatArray
) -> FloatArray:
    """Log filtered probabilities log P(state_t | x_1..x_t), shape (T, K).

    Row t depends on rows <= t of ``log_likelihood`` only.
    """
    out = np.empty_like(log_likelihood)
    if not len(out):
        return out
    with np.errstate(divide="ignore"):
        joint = np.log(startprob) + log_likelihood[0]
    out[0] = joint - _logsumexp(joint)
    for t in range(1, len(out)):
        out[t] = forward_step(out[t - 1], log_likelihood[t], transmat)
    return out


def hysteresis_step(current: int, probabilities: FloatArray, margin: float) -> int:
    """Keep ``current`` unless another state is more probable by at least ``margin``."""
    best = int(np.argmax(probabilities))
    if current < 0 or (best != current and probabilities[best] - probabilities[current] >= margin):
        return best
    return current


def hysteresis(probabilities: FloatArray, margin: float) -> NDArray[np.int64]:
    """The persistent regime decision for each candle, from filtered probabilities (T, K).

    The argmax of filtered probabilities flips whenever two states are close,
    which costs fees. Here the decision switches only when the challenger's
    probability exceeds the current state's by ``margin`` (0 = plain argmax).
    Causal: the decision at t depends on probabilities <= t only.
    """
    decisions = np.empty(len(probabilities), dtype=np.int64)
    current = -1
    for t, row in enumerate(probabilities):
        current = hysteresis_step(current, row, margin)
        decisions[t] = current
    return decisions


def switches_per_1000(decisions: NDArray[np.int64]) -> float:
    """Regime switches per 1,000 candles."""
    if len(decisions) < 2:
        return 0.0
    return 1000.0 * float((decisions[1:] != decisions[:-1]).sum()) / (len(decisions) - 1)
