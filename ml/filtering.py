"""The causal forward filter of a hidden Markov model, and the regime decision.

One compiled kernel (:func:`_filter_rows`) runs the forward recursion and the
persistent decision; the batch read-out, the online (live) filter and the tests all
call it, so batch and online agree bit for bit. Shapes: T candles, K states, D features.

Only *filtered* probabilities P(state_t | x_1..x_t) are computed here. hmmlearn's
``predict_proba`` (forward-backward, smoothed) and ``predict`` (Viterbi) condition
on the whole sequence, i.e. on the future, and are never used for anything a
strategy or a metric sees.

Why compiled: the recursion is sequential in t (each step needs the previous one),
so it cannot be vectorised over candles, and a Python loop costs about 18 us per
candle for arithmetic that is a few dozen floating-point operations for 3 states.
Numba compiles the loop (``cache=True``: once per machine, kept in ``__pycache__``);
``bench/regimes.py`` prints its time per candle beside the Python loop's.
"""

from __future__ import annotations

import numba
import numpy as np
from numpy.typing import NDArray

FloatArray = NDArray[np.float64]


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


@numba.njit(cache=True, nogil=True)
def _filter_rows(
    log_likelihood: FloatArray,
    transmat: FloatArray,
    log_startprob: FloatArray,
    margin: float,
    log_alpha: FloatArray,
    state: NDArray[np.int64],
    out_log_alpha: FloatArray,
    out_decision: NDArray[np.int64],
) -> None:  # pragma: no cover - compiled; covered through its callers
    """The forward recursion and the persistent decision over ``log_likelihood`` (T, K).

    ``log_alpha`` (K,) and ``state`` ([started, decision]) carry the filter between
    calls and are updated in place; row t of the outputs gets the normalised log
    filtered probabilities and the decision after candle t. The loop body is the same
    for every t, so one call over T rows equals T calls over one row, bit for bit.
    """
    k = transmat.shape[0]
    joint = np.empty(k)
    for t in range(log_likelihood.shape[0]):
        if state[0] == 0:  # the first candle: the prior, not a transition
            for j in range(k):
                joint[j] = log_startprob[j] + log_likelihood[t, j]
            state[0] = 1
        else:
            peak = log_alpha.max()
            for j in range(k):
                total = 0.0
                for i in range(k):
                    total += np.exp(log_alpha[i] - peak) * transmat[i, j]
                joint[j] = peak + np.log(total) + log_likelihood[t, j]
        top = joint.max()
        norm = top
        if np.isfinite(top):
            norm = top + np.log(np.exp(joint - top).sum())
        for j in range(k):
            log_alpha[j] = joint[j] - norm
            out_log_alpha[t, j] = log_alpha[j]
        # the decision: keep the current state unless another beats it by ``margin``
        best = 0
        for j in range(1, k):
            if log_alpha[j] > log_alpha[best]:
                best = j
        current = state[1]
        if current < 0 or (
            best != current and np.exp(log_alpha[best]) - np.exp(log_alpha[current]) >= margin
        ):
            state[1] = best
        out_decision[t] = state[1]


class ForwardFilter:
    """The filter's state between candles: feed it rows of emission log-likelihoods.

    ``transmat``: (K, K); ``startprob``: (K,); ``margin``: the hysteresis margin on
    probabilities (0 = plain argmax)."""

    def __init__(self, transmat: FloatArray, startprob: FloatArray, margin: float = 0.0) -> None:
        self.transmat = np.ascontiguousarray(transmat, dtype="float64")
        with np.errstate(divide="ignore"):
            self.log_startprob = np.log(np.asarray(startprob, dtype="float64"))
        self.margin = float(margin)
        self.log_alpha = np.zeros(len(self.log_startprob))
        self._state = np.array([0, -1], dtype=np.int64)  # started, decision

    @property
    def decision(self) -> int:
        """The persistent decision after the last row (-1 before any)."""
        return int(self._state[1])

    @property
    def started(self) -> bool:
        """Whether a first row was seen."""
        return bool(self._state[0])

    def update(self, log_likelihood: FloatArray) -> tuple[FloatArray, NDArray[np.int64]]:
        """Log filtered probabilities (T, K) and decisions (T,) after each of the rows."""
        rows = np.ascontiguousarray(np.atleast_2d(log_likelihood), dtype="float64")
        out = np.empty_like(rows)
        decisions = np.empty(len(rows), dtype=np.int64)
        _filter_rows(
            rows,
            self.transmat,
            self.log_startprob,
            self.margin,
            self.log_alpha,
            self._state,
            out,
            decisions,
        )
        return out, decisions


def forward_filter(
    log_likelihood: FloatArray, transmat: FloatArray, startprob: FloatArray
) -> FloatArray:
    """Log filtered probabilities log P(state_t | x_1..x_t), shape (T, K).

    Row t depends on rows <= t of ``log_likelihood`` only.
    """
    if not len(log_likelihood):
        return np.empty_like(log_likelihood, dtype="float64")
    return ForwardFilter(transmat, startprob).update(log_likelihood)[0]


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
