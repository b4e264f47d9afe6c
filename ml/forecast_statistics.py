"""The forecast's recent range, for thresholds that follow it: FreqAI's label statistics.

FreqAI gives a strategy the mean and standard deviation of its labels (from the training
rows, or with ``fit_live_predictions_candles = N`` from the last N predictions) so that
an entry can ask for a forecast unusually high for this model (``prediction > mean +
k * std``) instead of a fixed number. Here:

* the fallback, per bundle (``BundleMetadata.forecast_mean`` / ``forecast_std``): for a
  regression the training target's statistics (FreqAI's), for a classifier those of its
  ``p_up`` on its training rows (a label of 0 or 1 says nothing of a probability's range);
* with ``[lifetime] fit_live_predictions_candles = N``: the statistics of the last N
  out-of-sample forecasts, ending at the candle (causal); the fallback until N exist.

Adapter columns ``&-prediction_mean`` / ``&-prediction_std`` (regression) or
``&-p_up_mean`` / ``&-p_up_std`` (classification); none for an exposure model.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

FloatArray = NDArray[np.float64]


def statistics(values: FloatArray) -> tuple[float, float] | None:
    """Mean and standard deviation (ddof 0) of the finite ``values``; None if fewer than 2."""
    finite = np.asarray(values, dtype="float64")
    finite = finite[np.isfinite(finite)]
    if len(finite) < 2:
        return None
    return float(finite.mean()), float(finite.std())


def recent_statistics(
    values: FloatArray,
    counted: NDArray[np.bool_],
    candles: int | None,
    fallback_mean: FloatArray,
    fallback_std: FloatArray,
) -> tuple[FloatArray, FloatArray]:
    """Per row: the mean and standard deviation of the last ``candles`` ``values`` that
    are ``counted`` (out of sample) and finite, ending at the row; where fewer than
    ``candles`` such rows end there, or ``candles`` is None, the fallback's."""
    fallback = (np.asarray(fallback_mean, float), np.asarray(fallback_std, float))
    if candles is None:
        return fallback
    series = pd.Series(np.where(counted, np.asarray(values, dtype="float64"), np.nan))
    window = series.rolling(candles, min_periods=candles)
    mean, std = window.mean().to_numpy(), window.std(ddof=0).to_numpy()
    known = np.isfinite(mean)
    return np.where(known, mean, fallback[0]), np.where(known, std, fallback[1])


RANGE_COLUMNS = ("prediction_mean", "prediction_std", "p_up_mean", "p_up_std")


def recent_range(
    columns: Mapping[str, Any], counted: NDArray[np.bool_], candles: int | None
) -> dict[str, FloatArray]:
    """``prediction_mean`` / ``_std`` (regression) or ``p_up_mean`` / ``_std``
    (classification) of a model's output ``columns`` (which carry ``forecast_mean`` /
    ``forecast_std``, the fallback); nothing for a model without them."""
    if "forecast_mean" not in columns:
        return {}
    source = "p_up" if "p_up" in columns else "prediction"
    mean, std = recent_statistics(
        np.asarray(columns[source], dtype="float64"),
        counted,
        candles,
        np.asarray(columns["forecast_mean"], dtype="float64"),
        np.asarray(columns["forecast_std"], dtype="float64"),
    )
    return {f"{source}_mean": mean, f"{source}_std": std}
