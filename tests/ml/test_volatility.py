"""The volatility target and its classical forecasts (ml/volatility.py)."""

from __future__ import annotations

import numpy as np
import pytest

from ml.volatility import (
    MIN_VARIANCE,
    ewma_log_volatility,
    forward_log_volatility,
    har_components,
    har_log_volatility,
    qlike,
    risk_baselines,
    risk_metrics,
    trailing_log_volatility,
)

HOURLY = 8760.0


def garch_closes(n: int, seed: int = 3) -> np.ndarray:
    """Hourly closes whose volatility clusters (GARCH(1,1)): what markets do."""
    rng = np.random.default_rng(seed)
    variance, returns = 1e-4, np.empty(n)
    for t in range(n):
        variance = 2e-7 + 0.08 * (returns[t - 1] ** 2 if t else 0.0) + 0.9 * variance
        returns[t] = np.sqrt(variance) * rng.standard_normal()
    return 100.0 * np.exp(np.cumsum(returns))


def test_the_target_is_the_log_annualised_volatility_of_the_next_candles() -> None:
    close = np.array([100.0, 101.0, 99.0, 99.0, 102.0])
    r = np.diff(np.log(close))
    target = forward_log_volatility(close, 2, HOURLY)
    assert target[0] == pytest.approx(0.5 * np.log(HOURLY * np.mean(r[:2] ** 2)))
    assert target[1] == pytest.approx(0.5 * np.log(HOURLY * np.mean(r[1:3] ** 2)))
    assert np.isnan(target[-2:]).all()
    down = forward_log_volatility(close, 2, HOURLY, downside=True)
    assert down[0] == pytest.approx(0.5 * np.log(HOURLY * r[1] ** 2 / 2))  # only the fall
    flat = forward_log_volatility(np.full(5, 7.0), 1, HOURLY)
    assert flat[0] == pytest.approx(0.5 * np.log(HOURLY * MIN_VARIANCE))  # finite, floored


@pytest.mark.parametrize("downside", [False, True])
def test_every_baseline_is_causal(downside: bool) -> None:
    """Computed on a prefix and on the whole series, every forecast agrees on the prefix."""
    close = garch_closes(24 * 150)
    cut = 24 * 100 + 7
    full = risk_baselines(close, 24, HOURLY, 24.0, downside)
    prefix = risk_baselines(close[:cut], 24, HOURLY, 24.0, downside)
    for name, values in full.items():
        np.testing.assert_array_equal(values[:cut], prefix[name], err_msg=name)
        assert np.isfinite(values[-24 * 30 :]).all(), name
    np.testing.assert_array_equal(
        har_components(close, HOURLY, 24.0)[:cut], har_components(close[:cut], HOURLY, 24.0)
    )


def test_the_forecasts_track_clustered_volatility_and_har_beats_the_trailing_window() -> None:
    close = garch_closes(24 * 400)
    target = forward_log_volatility(close, 24, HOURLY)
    trailing = trailing_log_volatility(close, 24, HOURLY)
    ewma = ewma_log_volatility(close, HOURLY, 24.0)
    har = har_log_volatility(close, 24, HOURLY, 24.0)
    rows = np.isfinite(target) & np.isfinite(trailing) & np.isfinite(ewma) & np.isfinite(har)
    losses = {
        name: qlike(target[rows], forecast[rows])
        for name, forecast in (("trailing", trailing), ("ewma", ewma), ("har", har))
    }
    assert losses["har"] < losses["trailing"]
    # each beats knowing only the average level (which no causal forecast knows)
    constant = qlike(target[rows], np.full(rows.sum(), np.mean(target[rows])))
    assert losses["har"] < constant and losses["ewma"] < constant


def test_qlike_and_the_squared_error_of_log_volatility() -> None:
    y = np.log(np.array([0.5, 0.8]))
    assert qlike(y, y) == 0.0
    # under-forecasting risk by a factor 2 costs more than over-forecasting by 2
    assert qlike(y, y - np.log(2.0)) > qlike(y, y + np.log(2.0)) > 0.0
    metrics = risk_metrics(y, y + 0.1)
    assert metrics["mse_log_vol"] == pytest.approx(0.01) and metrics["rows"] == 2.0
    assert np.isnan(risk_metrics(np.array([]), np.array([]))["qlike"])
