"""The statistical jump model: fitted on past rows, read out causally (online recursion
only), identical one row at a time and in batch, voted over a penalty grid."""

from __future__ import annotations

import numpy as np
import pytest

from ml.models import jump
from ml.models.jump import OnlineJumpFilter, RegimeJump, best_path, jump_losses, value_step


def regime_market(n: int = 1500, seed: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """Two persistent regimes (mean 60 rows) in three noisy features; column 0 is a
    return measure, higher in the bull regime."""
    rng = np.random.default_rng(seed)
    truth = np.empty(n, dtype=np.int64)
    state = 1
    for t in range(n):
        if rng.random() < 1 / 60:
            state = 1 - state
        truth[t] = state
    centres = np.array([[-1.0, 1.0, -0.5], [1.0, -1.0, 0.5]])
    x = centres[truth] + rng.normal(0, 1.1, (n, 3))
    x[:20] = np.nan  # warm-up rows
    return x, truth


@pytest.fixture(scope="module")
def fitted() -> tuple[RegimeJump, np.ndarray, np.ndarray]:
    x, truth = regime_market()
    return RegimeJump(jump_penalties=(3.0, 10.0, 30.0), n_init=4).fit(x[:1000]), x, truth


def test_finds_the_regimes_with_few_switches(
    fitted: tuple[RegimeJump, np.ndarray, np.ndarray],
) -> None:
    model, x, truth = fitted
    decisions = model.predict(x)
    held_out = slice(1000, None)
    accuracy = float((decisions[held_out] == truth[held_out]).mean())
    assert accuracy > 0.8
    switches = int((np.diff(decisions[held_out]) != 0).sum())
    true_switches = int((np.diff(truth[held_out]) != 0).sum())
    assert switches <= 3 * max(true_switches, 1)
    assert model.labels_ == ["bear", "bull"]
    assert (model.state_return_means_[np.arange(3), model.bull_states_] > 0).all()


def test_read_out_is_prefix_invariant(fitted: tuple[RegimeJump, np.ndarray, np.ndarray]) -> None:
    model, x, _ = fitted
    full_p, full_d = model.filter(x)
    for n in (21, 333, 1000, 1001, 1499):
        part_p, part_d = model.filter(x[:n])
        np.testing.assert_array_equal(part_p, full_p[:n])
        np.testing.assert_array_equal(part_d, full_d[:n])


def test_online_update_equals_batch_bit_for_bit(
    fitted: tuple[RegimeJump, np.ndarray, np.ndarray],
) -> None:
    model, x, _ = fitted
    batch, decisions = model.filter(x)
    online = model.online()
    for t in range(len(x)):
        np.testing.assert_array_equal(online.update(x[t]), batch[t])
        assert online.decision == decisions[t]
    assert np.isnan(batch[:20]).all() and (decisions[:20] == -1).all()


def test_the_smoothed_path_is_never_used_to_read_out(
    fitted: tuple[RegimeJump, np.ndarray, np.ndarray], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The backward pass (best_path) looks at later rows: fitting may use it, a read-out
    never does, and the online states differ from the smoothed ones where the future
    would have changed the past."""
    model, x, _ = fitted

    def forbidden(*_: object, **__: object) -> None:
        raise AssertionError("best_path looks at later rows")

    monkeypatch.setattr(jump, "best_path", forbidden)
    _, decisions = model.filter(x)
    monkeypatch.undo()
    single = RegimeJump(jump_penalties=(30.0,), n_init=2).fit(x[:1000])
    online = single.predict(x)[20:]
    z = single._standardise(x[20:])
    smoothed, _ = best_path(jump_losses(z, single.centres_[0]), 30.0)
    smoothed_bull = (smoothed == single.bull_states_[0]).astype(np.int64)
    assert (online != smoothed_bull).any()  # a smoother would revise the past
    assert decisions.shape == (len(x),)


def test_value_step_is_the_penalised_recursion() -> None:
    previous = np.array([0.0, 2.0])
    losses = np.array([1.0, 0.5])
    # staying in 0 costs 0 + 1; moving 1 -> 0 costs 2 + 3: state 0 gets 1.0
    # staying in 1 costs 2 + 0.5; moving 0 -> 1 costs 0 + 3 + 0.5: state 1 gets 2.5
    np.testing.assert_array_equal(value_step(previous, losses, 3.0), [0.0, 1.5])


def test_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="at least 50 complete rows"):
        RegimeJump().fit(np.ones((10, 2)))
    with pytest.raises(ValueError, match="jump_penalties"):
        RegimeJump(jump_penalties=(-1.0,)).fit(np.random.default_rng(0).normal(size=(100, 2)))
    model = RegimeJump(jump_penalties=(1.0,), n_init=1).fit(
        np.random.default_rng(0).normal(size=(100, 2))
    )
    with pytest.raises(ValueError, match="expected 2 features"):
        OnlineJumpFilter(model).update(np.ones(3))


def test_repeated_rows_are_one_observation(
    fitted: tuple[RegimeJump, np.ndarray, np.ndarray],
) -> None:
    """Daily features repeated on 24 hourly rows read out as the daily rows do."""
    model, x, _ = fitted
    daily = x[:400]
    hourly = np.repeat(daily, 24, axis=0)
    _, on_days = model.filter(daily)
    _, on_hours = model.filter(hourly)
    np.testing.assert_array_equal(on_hours[23::24], on_days)
    refit = RegimeJump(jump_penalties=(10.0,), n_init=2).fit(np.repeat(x[:1000], 3, axis=0))
    once = RegimeJump(jump_penalties=(10.0,), n_init=2).fit(x[:1000])
    np.testing.assert_array_equal(refit.centres_, once.centres_)
