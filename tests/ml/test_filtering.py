"""The compiled forward filter: the textbook recursion's values, causal, and one code path
for batch and online use."""

from __future__ import annotations

import numpy as np

from ml.filtering import ForwardFilter, forward_filter, hysteresis

TRANSMAT = np.array([[0.97, 0.02, 0.01], [0.03, 0.95, 0.02], [0.02, 0.02, 0.96]])
START = np.array([0.5, 0.3, 0.2])


def _log_likelihood(rows: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(scale=2.0, size=(rows, 3))


def _textbook(log_likelihood: np.ndarray) -> np.ndarray:
    """alpha_t = normalise((alpha_{t-1} @ A) * b_t), in probabilities (no logs)."""
    b = np.exp(log_likelihood)
    alpha = START * b[0]
    out = [alpha / alpha.sum()]
    for t in range(1, len(b)):
        alpha = (out[-1] @ TRANSMAT) * b[t]
        out.append(alpha / alpha.sum())
    return np.array(out)


def test_the_filter_is_the_textbook_forward_recursion() -> None:
    log_likelihood = _log_likelihood(2_000)
    probabilities = np.exp(forward_filter(log_likelihood, TRANSMAT, START))
    np.testing.assert_allclose(probabilities, _textbook(log_likelihood), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-12)


def test_a_prefix_gives_the_same_values() -> None:
    log_likelihood = _log_likelihood(1_000, seed=1)
    full = forward_filter(log_likelihood, TRANSMAT, START)
    for end in (1, 2, 377, 999):
        np.testing.assert_array_equal(
            forward_filter(log_likelihood[:end], TRANSMAT, START), full[:end]
        )


def test_one_row_at_a_time_equals_one_batch_bit_for_bit() -> None:
    log_likelihood = _log_likelihood(800, seed=2)
    batch, batch_decisions = ForwardFilter(TRANSMAT, START, 0.3).update(log_likelihood)
    online = ForwardFilter(TRANSMAT, START, 0.3)
    assert not online.started and online.decision == -1
    for t, row in enumerate(log_likelihood):
        log_alpha, decision = online.update(row)
        np.testing.assert_array_equal(log_alpha[0], batch[t])
        assert decision[0] == batch_decisions[t] == online.decision
    # the decision is the hysteresis of the filtered probabilities
    np.testing.assert_array_equal(batch_decisions, hysteresis(np.exp(batch), 0.3))


def test_an_impossible_start_state_stays_impossible() -> None:
    start = np.array([0.0, 0.5, 0.5])
    transmat = np.array([[1.0, 0.0, 0.0], [0.0, 0.9, 0.1], [0.0, 0.1, 0.9]])
    probabilities = np.exp(forward_filter(_log_likelihood(50, seed=3), transmat, start))
    assert (probabilities[:, 0] == 0.0).all() and np.isfinite(probabilities).all()
