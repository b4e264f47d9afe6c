"""Forecasters that read each candle's row alone: complete rows in, NaN for the rest.

A row with any non-finite feature (an indicator's warm-up) is neither trained on nor
predicted; its prediction is NaN, as the contract in :mod:`ml.models.base` says. The
fitted estimator lives in ``model_`` and keeps scikit-learn's ``predict`` /
``predict_proba`` / ``classes_`` contract (LightGBM, forests, gradient boosters).
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from ml.models.base import as_frame, proba_to_prediction
from ml.models.forecaster import Forecaster, check_continuation
from ml.models.params import Range, count, fraction

# early stopping on the last validation slice and threads, the same in every booster
BOOSTER_RANGES: dict[str, Range] = {
    "early_stopping_rounds": count(1),
    "validation_fraction": fraction(high_open=True),
    "validation_gap": count(0),
    "n_jobs": count(1),
}


class TabularForecaster(Forecaster):
    """Row-wise prediction over ``model_``; subclasses fit ``model_`` and set ``task``."""

    accepts_sample_weight: ClassVar[bool] = True
    continues_training: ClassVar[bool] = True
    task: str
    model_: Any  # a fitted estimator with scikit-learn's predict / predict_proba

    def _training_rows(
        self,
        X: pd.DataFrame,
        y: NDArray[np.float64],
        sample_weight: NDArray[np.float64] | None = None,
        minimum: int = 50,
    ) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.int64]]:
        """(values, target, usable row positions); records ``feature_names_in_``.
        ``sample_weight``: one per row of ``X`` (checked here, used by the caller).

        Raises ``ValueError`` when fewer than ``minimum`` rows have every feature and
        a target: a model fitted on a handful of rows would be noise with a name.
        """
        frame = as_frame(X)
        self.feature_names_in_ = [str(c) for c in frame.columns]
        values = frame.to_numpy(dtype="float64")
        target = np.asarray(y, dtype="float64")
        if sample_weight is not None and np.shape(sample_weight) != (len(values),):
            raise ValueError(
                f"sample_weight has shape {np.shape(sample_weight)}, expected ({len(values)},)"
            )
        usable = np.flatnonzero(np.isfinite(values).all(axis=1) & np.isfinite(target))
        if len(usable) < minimum:
            raise ValueError(
                f"too few complete training rows ({len(usable)}, need {minimum}) "
                f"for {type(self).__name__}: widen the training window or drop "
                "features with long warm-ups"
            )
        self.n_features_in_ = values.shape[1]
        return values, target, usable

    def _start(self, init_model: Forecaster | None) -> Any:
        """The fitted library model that ``init_model`` holds, to continue from (None:
        from scratch); it must be of this class and task and read the same columns."""
        if init_model is None:
            return None
        check_continuation(self, init_model)
        return init_model.model_

    @staticmethod
    def _rows(X: pd.DataFrame) -> tuple[NDArray[np.float64], NDArray[np.bool_]]:
        values = as_frame(X).to_numpy(dtype="float64")
        return values, np.isfinite(values).all(axis=1)

    def predict_proba(self, X: pd.DataFrame) -> NDArray[np.float64]:
        if self.task != "classification":
            raise AttributeError("predict_proba is only defined for classification")
        values, ok = self._rows(X)
        out = np.full((len(values), 2), np.nan)
        if ok.any():
            probabilities = self.model_.predict_proba(values[ok])
            # a class absent from the training rows has no column: its probability is 0
            known = np.zeros((int(ok.sum()), 2))
            for column, label in enumerate(self.model_.classes_):
                known[:, int(label)] = probabilities[:, column]
            out[ok] = known
        return out

    def predict(self, X: pd.DataFrame) -> NDArray[np.float64]:
        if self.task == "classification":
            return proba_to_prediction(self.predict_proba(X)[:, 1])
        values, ok = self._rows(X)
        out = np.full(len(values), np.nan)
        if ok.any():
            out[ok] = self.model_.predict(values[ok])
        return out
