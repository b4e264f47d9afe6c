"""The sizing stage of a regime allocation's bundle: forecast volatility, size the exposure.

:class:`VolatilitySizer` is fitted with the regime model, on the same training rows
(a fold's volatility model sees only that fold's past), and read with it: from the
bundle's inputs (features and regime probabilities) it forecasts the annualised
volatility of the next ``horizon_days`` and gives the *desired* sized exposure of
:func:`ml.sizing.desired_exposure`. What is held follows the rebalancing rule of
:mod:`ml.sizing`, applied by whoever holds a position (the simulation, the strategy),
because that rule needs what is held, which no model knows.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from ml.config import ModelConfig, SizingConfig
from ml.models.forecaster import Forecaster
from ml.sizing import desired_exposure
from ml.volatility import forward_log_volatility, lognormal_correction, periods_per_year_of

FloatArray = NDArray[np.float64]
DAILY_PERIODS = 365.0  # the trailing forecast reads a feature of daily candles
HELD_OUT_SHARE = 0.2  # of the training rows, for the log-normal correction
MIN_PROBE_ROWS = 200  # complete rows to fit the correction's probe on


def held_out_correction(
    model: ModelConfig,
    seed: int,
    horizon: int,
    threads: int | None,
    inputs: pd.DataFrame,
    target: FloatArray,
) -> float:
    """What to add to a forecast log volatility so that its variance is right on average.

    A regression of log volatility forecasts its median; QLIKE (and any sizing) needs
    the mean variance: :func:`ml.volatility.lognormal_correction` of the residuals,
    measured out of sample, as HAR-RV's is in sample: a copy of the regressor fitted on
    the first 80% of the training rows, residuals on the last 20% (an embargo of
    ``horizon`` rows between). In-sample residuals of a flexible model are too small."""
    complete = np.isfinite(target) & inputs.notna().all(axis=1).to_numpy()
    cut = int(len(target) * (1.0 - HELD_OUT_SHARE))
    if complete[: max(0, cut - horizon)].sum() < MIN_PROBE_ROWS or complete[cut:].sum() < 50:
        return 0.0  # too few rows to measure it: no correction rather than a noisy one
    probe = model.estimator("regression", seed, horizon, threads)
    probe.fit(inputs.iloc[: cut - horizon], target[: cut - horizon])
    return lognormal_correction(target[cut:] - probe.predict(inputs.iloc[cut:]))


class VolatilitySizer:
    """Forecast volatility and size an exposure by it (see the module doc).

    Parameters
    ----------
    config: the spec's ``[sizing]``.
    horizon: ``horizon_days`` in candles of the bundle's timeframe.
    seed, threads: of the volatility regressor (``forecast = "model"``).
    """

    def __init__(
        self, config: SizingConfig, horizon: int, seed: int = 0, threads: int | None = None
    ) -> None:
        self.config = config
        self.horizon = horizon
        self.seed = seed
        self.threads = threads

    @property
    def columns(self) -> list[str]:
        return list(self.config.columns)

    @property
    def context_rows(self) -> int:
        model = getattr(self, "model_", None)
        return 0 if model is None else model.context_rows

    def fit(self, inputs: pd.DataFrame, candles: pd.DataFrame, rows: slice) -> VolatilitySizer:
        """Fit on ``inputs``: the bundle's inputs of the training ``rows`` of ``candles``
        (which the target is made of). A row's target reads the next ``horizon`` candles: the last ``horizon``
        rows of the slice are not trained on, so no target reaches past its end (where
        the fold's test block begins, after an embargo shorter than this horizon)."""
        missing = [c for c in self.columns if c not in inputs.columns]
        if missing:
            raise ValueError(
                f"[sizing] columns {missing} are neither features of the spec nor regime "
                f"probabilities; known: {sorted(map(str, inputs.columns))}"
            )
        self.model_: Forecaster | None = None
        self.correction_ = 0.0
        if self.config.forecast == "trailing":
            return self
        assert self.config.model is not None  # SizingConfig checks it
        per_year = periods_per_year_of(candles["date"])
        target = forward_log_volatility(candles["close"], self.horizon, per_year)
        stop = rows.stop if rows.stop is not None else len(candles)
        target[max(0, stop - self.horizon) :] = np.nan  # never past the training rows
        x = inputs[self.columns]
        y = target[rows]
        if len(y) != len(x):
            raise ValueError(f"sizing: {len(x)} input rows for {len(y)} training rows")
        self.model_ = self.config.model.estimator(
            "regression", self.seed, self.horizon, self.threads
        )
        self.model_.fit(x, y)
        self.correction_ = held_out_correction(
            self.config.model, self.seed, self.horizon, self.threads, x, y
        )
        return self

    def volatility(self, inputs: pd.DataFrame) -> FloatArray:
        """The forecast annualised volatility of the next ``horizon`` candles, per row
        (NaN where its inputs are not known yet). Shape (n,)."""
        x = inputs[self.columns]
        if self.model_ is None:  # trailing: the realised volatility of a daily feature
            daily: FloatArray = x.iloc[:, 0].to_numpy(dtype="float64") * np.sqrt(DAILY_PERIODS)
            return daily
        log_volatility = np.asarray(self.model_.predict(x), dtype="float64") + self.correction_
        forecast: FloatArray = np.exp(log_volatility)
        return forecast

    def desired(self, exposure: FloatArray, volatility: FloatArray) -> FloatArray:
        """The sized exposure wanted at each row (before the rebalancing rule)."""
        return desired_exposure(
            exposure, volatility, self.config.target_volatility, self.config.cap
        )
