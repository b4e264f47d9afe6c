"""HAR-RV as a forecaster of log volatility, optionally boosted on its residuals.

Corsi's (2009) heterogeneous autoregression in logs: the target (the log annualised
volatility of the next ``horizon`` candles, ``[target] kind = "volatility"``) regressed
by ordinary least squares on the logs of realised-volatility measures over a day, a
week and a month, and a constant. It extrapolates to volatility levels the training
rows never saw, which trees cannot; so with ``boost_rounds > 0`` a LightGBM regressor
then learns, from every input (the spec's features and regime probabilities), what
the linear model leaves in its residuals, shrunk by its learning rate and stopped
early on the last slice of the training rows: at worst HAR-RV, at best HAR-RV plus
the nonlinear effects (regime, volume, asymmetry) the linear model cannot carry.

Inputs: ``columns`` (default: every ``%-realized_volatility_*`` and ``%-log_range_*``
feature, whatever their windows, so the same spec works on hourly and daily candles),
positive values, taken in logs. Rows where one of them is unknown are neither trained on
nor predicted (NaN).
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from ml.models.base import Task, as_frame
from ml.models.forecaster import Forecaster
from ml.models.lgbm import LightGBMForecaster
from ml.models.params import POSITIVE, Range, count

FloatArray = NDArray[np.float64]
DEFAULT_PREFIXES = ("%-realized_volatility_", "%-log_range_")
MIN_ROWS = 50


class HarForecaster(Forecaster):
    """HAR-RV in logs, plus an optional LightGBM stage on its residuals.

    Parameters
    ----------
    columns: the HAR regressors (positive volatility measures); empty: the default set.
    boost_rounds: LightGBM trees on the residuals (0: HAR-RV alone).
    learning_rate, num_leaves, min_child_samples: of that stage (small, shallow, many
        rows per leaf: it corrects a linear forecast, it does not replace it).
    """

    trainer_params: ClassVar[frozenset[str]] = frozenset(
        {"n_jobs", "random_state", "validation_gap"}
    )
    param_ranges: ClassVar[dict[str, Range]] = {
        "boost_rounds": count(0),
        "learning_rate": POSITIVE,
        "num_leaves": count(2, 131_072),
        "min_child_samples": count(1),
        "validation_gap": count(0),
        "n_jobs": count(1),
    }

    def __init__(
        self,
        task: Task = "regression",
        columns: tuple[str, ...] = (),
        boost_rounds: int = 0,
        learning_rate: float = 0.03,
        num_leaves: int = 7,
        min_child_samples: int = 500,
        validation_gap: int = 1,
        n_jobs: int = 2,
        random_state: int = 0,
    ) -> None:
        self.task = task
        self.columns = columns
        self.boost_rounds = boost_rounds
        self.learning_rate = learning_rate
        self.num_leaves = num_leaves
        self.min_child_samples = min_child_samples
        self.validation_gap = validation_gap
        self.n_jobs = n_jobs
        self.random_state = random_state

    def _regressors(self, frame: pd.DataFrame) -> FloatArray:
        values = frame[self.har_columns_].to_numpy(dtype="float64")
        with np.errstate(divide="ignore", invalid="ignore"):
            logs = np.log(values)
        design: FloatArray = np.column_stack([np.ones(len(frame)), logs])
        return design

    def fit(self, X: pd.DataFrame, y: FloatArray) -> HarForecaster:
        if self.task != "regression":
            raise ValueError(
                'HAR-RV forecasts volatility: use [target] kind = "volatility" (a regression)'
            )
        frame = as_frame(X)
        names = [str(c) for c in frame.columns]
        chosen = list(self.columns) or [n for n in names if n.startswith(DEFAULT_PREFIXES)]
        missing = [c for c in chosen if c not in names]
        if missing or not chosen:
            raise ValueError(
                f"HAR-RV regressors {missing or 'realized_volatility/log_range features'} are "
                "not among the inputs: add them to [features] or name columns that are"
            )
        self.har_columns_ = chosen
        design = self._regressors(frame)
        target = np.asarray(y, dtype="float64")
        rows = np.isfinite(design).all(axis=1) & np.isfinite(target)
        if rows.sum() < MIN_ROWS:
            raise ValueError(f"too few complete training rows ({int(rows.sum())}) for HAR-RV")
        self.coef_, *_ = np.linalg.lstsq(design[rows], target[rows], rcond=None)
        self.booster_: LightGBMForecaster | None = None
        if self.boost_rounds > 0:
            residual = np.full(len(target), np.nan)
            residual[rows] = target[rows] - design[rows] @ self.coef_
            self.booster_ = LightGBMForecaster(
                task="regression",
                n_estimators=self.boost_rounds,
                learning_rate=self.learning_rate,
                num_leaves=self.num_leaves,
                min_child_samples=self.min_child_samples,
                validation_gap=self.validation_gap,
                n_jobs=self.n_jobs,
                random_state=self.random_state,
            ).fit(frame, residual)
        self.history_ = [] if self.booster_ is None else self.booster_.history_
        self.n_features_in_ = frame.shape[1]
        self.device_ = "cpu"
        return self

    def predict(self, X: pd.DataFrame) -> FloatArray:
        """Forecast log volatility per row, (n,); NaN where a regressor is unknown."""
        frame = as_frame(X)
        design = self._regressors(frame)
        known = np.isfinite(design).all(axis=1)
        linear = np.full(len(design), np.nan)
        linear[known] = design[known] @ self.coef_
        if self.booster_ is None:
            return linear
        forecast: FloatArray = linear + self.booster_.predict(frame)
        return forecast
