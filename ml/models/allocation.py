"""Regime allocation: a target exposure per regime instead of a forecast.

The "forecaster" of a regime allocation spec. It learns nothing from the target;
it maps the filtered regime probabilities ``p_<label>`` (columns of ``X``) to a
target exposure (0 .. 1):

* ``mode = "decision"`` (default): the exposure of the most probable regime,
  ``exposures[argmax_label p_label,t]`` (a tie goes to the higher exposure), so
  the position changes only when the regime decision does;
* ``mode = "blend"``: ``sum_label p_label,t * exposures[label]``.

It is column 1 of ``predict_proba`` (the estimator contract), and it declares
``outputs_exposure``: the bundle names it ``exposure`` (never ``p_up``: it is no
probability), the adapter serves it as ``&-exposure``, and every evaluation
(walk-forward simulation, backtests, reports) holds that share of equity;
``predict`` is long (1) when the exposure is at least one half. With a jump-model vote, ``p_bull`` is the
share of penalties that see a bull market: the decision is their majority.

With ``trend_column`` the allocation is *regime-gated trend*: the exposure holds
only while that feature is above 0 (e.g. ``%-close_zscore_50_1d``, the daily close
above its 50-day mean), so a bull regime is left when its trend breaks and a
bear regime ignores every trend signal, which is where long/flat trend rules lose
most (choppy declines).
"""

from __future__ import annotations

from typing import ClassVar, Literal

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from ml.models.base import Task, as_frame
from ml.models.forecaster import Forecaster
from ml.models.params import Range

DEFAULT_EXPOSURES = {"bull": 1.0, "sideways": 0.5, "volatile": 0.25, "bear": 0.0, "crash": 0.0}


class RegimeAllocator(Forecaster):
    """Target exposure from regime probabilities.

    Parameters
    ----------
    exposures: share of the stake to hold in each regime label (0..1); labels the
        regime model has but this mapping lacks get ``other``.
    other: exposure of a regime label missing from ``exposures``.
    trend_column: a feature whose sign gates the exposure (> 0: hold; otherwise flat).
    mode: ``"decision"`` (the most probable regime's exposure) or ``"blend"``.
    """

    param_ranges: ClassVar[dict[str, Range]] = {"other": Range(0.0, 1.0)}
    forecasts: ClassVar[bool] = False  # a target exposure is a decision, not a probability
    outputs_exposure: ClassVar[bool] = True

    def __init__(
        self,
        task: Task = "classification",
        exposures: dict[str, float] | None = None,
        other: float = 0.5,
        trend_column: str | None = None,
        mode: Literal["decision", "blend"] = "decision",
    ) -> None:
        self.task = task
        self.exposures = exposures
        self.other = other
        self.trend_column = trend_column
        self.mode = mode

    def fit(self, X: pd.DataFrame, y: object = None) -> RegimeAllocator:
        if self.task != "classification":
            raise ValueError("a regime allocation reports an exposure: use a classification target")
        frame = as_frame(X)
        columns = [str(c) for c in frame.columns if str(c).startswith("p_")]
        if not columns:
            raise ValueError(
                "a regime allocation needs regime probabilities (p_<label> columns) in its inputs"
            )
        if self.trend_column is not None and self.trend_column not in frame.columns:
            raise ValueError(f"trend_column {self.trend_column!r} is not a feature of the spec")
        table = {**DEFAULT_EXPOSURES, **(self.exposures or {})}
        bad = {k: v for k, v in table.items() if not 0.0 <= float(v) <= 1.0}
        if bad:
            raise ValueError(f"exposures must lie in [0, 1], got {bad}")
        self.regime_columns_ = columns
        self.weights_ = np.array(
            [float(table.get(c[len("p_") :], self.other)) for c in columns], dtype="float64"
        )
        self.history_: list[dict[str, float]] = []
        self.n_features_in_ = frame.shape[1]
        self.device_ = "cpu"
        return self

    def exposure(self, X: pd.DataFrame) -> NDArray[np.float64]:
        """Target exposure per row (NaN while the regime probabilities are)."""
        frame = as_frame(X)
        probabilities = frame[self.regime_columns_].to_numpy(dtype="float64")
        if self.mode == "blend":
            exposure: NDArray[np.float64] = probabilities @ self.weights_
        else:
            known = np.isfinite(probabilities).all(axis=1)
            best = np.where(
                known, np.nanmax(np.where(known[:, None], probabilities, 0.0), axis=1), np.nan
            )
            # among the labels at the highest probability, the highest exposure
            candidates = np.where(probabilities == best[:, None], self.weights_[None, :], -np.inf)
            exposure = np.where(known, candidates.max(axis=1), np.nan)
        if self.trend_column is not None:
            trend = frame[self.trend_column].to_numpy(dtype="float64")
            gated = np.where(trend > 0, exposure, 0.0)
            exposure = np.where(np.isfinite(trend), gated, np.nan)
        return exposure

    def predict_proba(self, X: pd.DataFrame) -> NDArray[np.float64]:
        """``[1 - exposure, exposure]`` per row, (n, 2)."""
        exposure = self.exposure(X)
        return np.column_stack([1.0 - exposure, exposure])

    def predict(self, X: pd.DataFrame) -> NDArray[np.float64]:
        """1 = long (exposure >= 0.5), 0 = flat, NaN before the regimes are known."""
        exposure = self.exposure(X)
        return np.where(np.isfinite(exposure), (exposure >= 0.5).astype("float64"), np.nan)
