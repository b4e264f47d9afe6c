"""scikit-learn's random forest on feature rows (plus regime probabilities when given),
FreqAI's ``RandomForest`` family on our forecaster contract.

Rows with any non-finite feature (warm-up) are neither trained on nor predicted (NaN,
see :mod:`ml.models.tabular`).
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

from ml.models.base import Task
from ml.models.params import Range, count, fraction
from ml.models.tabular import TabularForecaster


class RandomForestForecaster(TabularForecaster):
    # scikit-learn's warm start only adds trees beside the old ones: the forest would grow
    # without bound and the old trees never learn the new rows
    continues_training: ClassVar[bool] = False
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

    def fit(
        self,
        X: pd.DataFrame,
        y: NDArray[np.float64],
        sample_weight: NDArray[np.float64] | None = None,
    ) -> RandomForestForecaster:
        from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor

        values, target, usable = self._training_rows(X, y, sample_weight)
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
        weights = None if sample_weight is None else np.asarray(sample_weight)[usable]
        model.fit(values[usable], target[usable], sample_weight=weights)
        # scikit-learn sums the trees' predictions in the order its threads finish: on
        # one thread the sum, and so every digit of a prediction, is the same each time
        self.model_ = model.set_params(n_jobs=1)
        self.device_ = "cpu"
        return self
