"""HAR-RV as a forecaster (ml/models/har.py): the linear model in logs, its boosted
residuals, and the errors that name what is missing."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ml.models.har import HarForecaster


def _frame(n: int, seed: int = 4) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "%-realized_volatility_24": np.exp(rng.normal(-4.0, 0.4, n)),
            "%-realized_volatility_168": np.exp(rng.normal(-4.0, 0.3, n)),
            "%-log_return_1": rng.normal(0.0, 0.01, n),
            "p_bull": rng.uniform(0.0, 1.0, n),
        }
    )


def test_it_recovers_a_linear_model_in_logs_and_refuses_unknown_rows() -> None:
    frame = _frame(2000)
    logs = np.log(frame[["%-realized_volatility_24", "%-realized_volatility_168"]].to_numpy())
    target = 0.3 + 0.6 * logs[:, 0] + 0.3 * logs[:, 1]
    model = HarForecaster().fit(frame, target)
    # the default regressors: the realised volatility features, not returns or regimes
    assert model.har_columns_ == ["%-realized_volatility_24", "%-realized_volatility_168"]
    np.testing.assert_allclose(model.coef_, [0.3, 0.6, 0.3], atol=1e-9)
    gap = frame.copy()
    gap.loc[5, "%-realized_volatility_168"] = np.nan
    forecast = model.predict(gap)
    assert np.isnan(forecast[5]) and np.isfinite(np.delete(forecast, 5)).all()


def test_boosting_learns_what_the_linear_model_leaves_out_of_sample() -> None:
    frame = _frame(6000, seed=5)
    logs = np.log(frame["%-realized_volatility_24"].to_numpy())
    noise = np.random.default_rng(6).normal(0.0, 0.05, len(frame))
    # a regime effect no log-linear model of the volatilities can carry
    target = 0.2 + 0.8 * logs + 0.4 * (frame["p_bull"].to_numpy() < 0.3) + noise
    train, test = slice(0, 4000), slice(4000, None)
    plain = HarForecaster().fit(frame.iloc[train], target[train])
    boosted = HarForecaster(boost_rounds=300, learning_rate=0.1, min_child_samples=50).fit(
        frame.iloc[train], target[train]
    )

    def mse(model: HarForecaster) -> float:
        return float(np.mean((model.predict(frame.iloc[test]) - target[test]) ** 2))

    assert mse(boosted) < 0.5 * mse(plain)


def test_what_it_cannot_use_is_named() -> None:
    frame = _frame(200)
    with pytest.raises(ValueError, match="a regression"):
        HarForecaster(task="classification").fit(frame, np.zeros(200))
    with pytest.raises(ValueError, match="nope"):
        HarForecaster(columns=("nope",)).fit(frame, np.zeros(200))
    with pytest.raises(ValueError, match="realized_volatility"):
        HarForecaster().fit(frame[["%-log_return_1"]], np.zeros(200))
