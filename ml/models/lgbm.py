"""LightGBM baseline on feature rows (plus regime probabilities when given).

Rows with any non-finite feature (warm-up) are neither trained on nor predicted
(NaN). Early stopping on the chronologically last validation slice.
``deterministic=True`` with a fixed seed gives the same model on the same data.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from ml.models.base import Task, split_validation
from ml.models.forecaster import Forecaster
from ml.models.params import POSITIVE, Range, count, fraction
from ml.models.tabular import BOOSTER_RANGES, TabularForecaster


class LightGBMForecaster(TabularForecaster):
    trainer_params: ClassVar[frozenset[str]] = frozenset(
        {"n_jobs", "random_state", "validation_gap"}
    )
    param_ranges: ClassVar[dict[str, Range]] = {
        "num_leaves": count(2, 131_072),
        "learning_rate": POSITIVE,
        "n_estimators": count(1),
        "min_child_samples": count(1),
        "subsample": fraction(),
        "colsample_bytree": fraction(),
        **BOOSTER_RANGES,
    }

    def __init__(
        self,
        task: Task = "classification",
        num_leaves: int = 15,
        learning_rate: float = 0.05,
        n_estimators: int = 400,
        min_child_samples: int = 100,
        subsample: float = 0.8,
        colsample_bytree: float = 0.8,
        early_stopping_rounds: int = 30,
        validation_fraction: float = 0.2,
        validation_gap: int = 1,
        n_jobs: int = 2,
        random_state: int = 0,
    ) -> None:
        self.task = task
        self.num_leaves = num_leaves
        self.learning_rate = learning_rate
        self.n_estimators = n_estimators
        self.min_child_samples = min_child_samples
        self.subsample = subsample
        self.colsample_bytree = colsample_bytree
        self.early_stopping_rounds = early_stopping_rounds
        self.validation_fraction = validation_fraction
        self.validation_gap = validation_gap
        self.n_jobs = n_jobs
        self.random_state = random_state

    def fit(
        self,
        X: pd.DataFrame,
        y: NDArray[np.float64],
        sample_weight: NDArray[np.float64] | None = None,
        init_model: Forecaster | None = None,
    ) -> LightGBMForecaster:
        values, target, usable = self._training_rows(X, y, sample_weight)
        start = self._start(init_model)
        train, val = split_validation(usable, self.validation_fraction, self.validation_gap)
        params: dict[str, Any] = {
            "num_leaves": self.num_leaves,
            "learning_rate": self.learning_rate,
            "n_estimators": self.n_estimators,
            "min_child_samples": self.min_child_samples,
            "subsample": self.subsample,
            "subsample_freq": 1,
            "colsample_bytree": self.colsample_bytree,
            "random_state": self.random_state,
            "n_jobs": self.n_jobs,
            "deterministic": True,
            "force_row_wise": True,
            "verbose": -1,
        }
        import lightgbm as lgb  # here, not at the top: a second of import for every command

        model: lgb.LGBMModel = (
            lgb.LGBMClassifier(**params)
            if self.task == "classification"
            else lgb.LGBMRegressor(**params)
        )
        self.history_: list[dict[str, float]] = []
        evaluation: dict[str, dict[str, list[float]]] = {}
        callbacks = [lgb.record_evaluation(evaluation)]
        fit_kwargs: dict[str, Any] = {}
        if len(val):
            callbacks.append(lgb.early_stopping(self.early_stopping_rounds, verbose=False))
            fit_kwargs["eval_X"] = (values[val],)
            fit_kwargs["eval_y"] = (target[val],)
        if sample_weight is not None:
            fit_kwargs["sample_weight"] = np.asarray(sample_weight, dtype="float64")[train]
        if start is not None:  # boosting goes on from its trees
            fit_kwargs["init_model"] = start.booster_
        model.fit(values[train], target[train], callbacks=callbacks, **fit_kwargs)
        for metric_values in evaluation.get("valid_0", {}).values():
            self.history_ = [
                {"epoch": float(i), "val_loss": float(v)} for i, v in enumerate(metric_values)
            ]
        self.model_ = model
        self.best_iteration_ = int(model.best_iteration_ or model.n_estimators)
        self.device_ = "cpu"
        return self
