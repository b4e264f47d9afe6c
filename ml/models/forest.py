"""scikit-learn's random forest on feature rows (plus regime probabilities when given),
FreqAI's ``RandomForest`` family on our forecaster contract.

Rows with any non-finite feature (warm-up) are neither trained on nor predicted (NaN).
No early stopping: a forest does not overfit with more trees, it only costs more. The
trees are grown on bootstrap samples drawn with ``random_state``, so the same seed on
the same rows gives the same forest whatever ``n_jobs`` is; predictions sum the trees on
one thread, in a fixed order.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from ml.models.base import Task, as_frame, proba_to_prediction
from ml.models.forecaster import Forecaster
from ml.models.params import Range, count, fraction


class RandomForestForecaster(Forecaster):
    trainer_params: ClassVar[frozenset[str]] = frozenset({"n_jobs", "random_state"})
    param_ranges: ClassVar[dict[str, Range]] = {
        "n_estimators": count(1),
        "max_depth": count(1),
        "min_samples_leaf": count(1),
        "max_features": fraction(),
        "max_samples": fraction(),
        "n_jobs": count(1),
    }

    def __init__(
        self,
        task: Task = "classification",
        n_estimators: int = 300,
        max_depth: int = 8,
        min_samples_leaf: int = 50,
        max_features: float = 0.5,
        max_samples: float = 0.5,
        n_jobs: int = 2,
        random_state: int = 0,
    ) -> None:
        self.task = task
        self.n_estimators = n_estimators
        self.max_depth = max_depth
        self.min_samples_leaf = min_samples_leaf
        self.max_features = max_features
        self.max_samples = max_samples
        self.n_jobs = n_jobs
        self.random_state = random_state

    def fit(self, X: pd.DataFrame, y: NDArray[np.float64]) -> RandomForestForecaster:
        from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor

        frame = as_frame(X)
        self.feature_names_in_ = [str(c) for c in frame.columns]
        values = frame.to_numpy(dtype="float64")
        target = np.asarray(y, dtype="float64")
        usable = np.isfinite(values).all(axis=1) & np.isfinite(target)
        if usable.sum() < 50:
            raise ValueError(f"too few complete training rows ({usable.sum()}) for a forest")
        params: dict[str, Any] = {
            "n_estimators": self.n_estimators,
            "max_depth": self.max_depth,
            "min_samples_leaf": self.min_samples_leaf,
            "max_features": self.max_features,
            "max_samples": self.max_samples,
            "n_jobs": self.n_jobs,
            "random_state": self.random_state,
        }
        model = (
            RandomForestClassifier(**params)
            if self.task == "classification"
            else RandomForestRegressor(**params)
        )
        self.model_ = model.fit(values[usable], target[usable])
        # scikit-learn sums the trees' predictions in the order its threads finish: on
        # one thread the sum, and so every digit of a prediction, is the same each time
        self.model_.set_params(n_jobs=1)
        self.n_features_in_ = values.shape[1]
        self.device_ = "cpu"
        return self

    def _rows(self, X: pd.DataFrame) -> tuple[NDArray[np.float64], NDArray[np.bool_]]:
        values = as_frame(X).to_numpy(dtype="float64")
        return values, np.isfinite(values).all(axis=1)

    def predict_proba(self, X: pd.DataFrame) -> NDArray[np.float64]:
        if self.task != "classification":
            raise AttributeError("predict_proba is only defined for classification")
        values, ok = self._rows(X)
        out = np.full((len(values), 2), np.nan)
        if ok.any():
            # a class absent from the training rows has no column: its probability is 0
            probabilities = self.model_.predict_proba(values[ok])
            for column, label in enumerate(self.model_.classes_):
                out[ok, int(label)] = probabilities[:, column]
            out[ok] = np.nan_to_num(out[ok], nan=0.0)
        return out

    def predict(self, X: pd.DataFrame) -> NDArray[np.float64]:
        if self.task == "classification":
            return proba_to_prediction(self.predict_proba(X)[:, 1])
        values, ok = self._rows(X)
        out = np.full(len(values), np.nan)
        if ok.any():
            out[ok] = self.model_.predict(values[ok])
        return out
