"""XGBoost on feature rows (plus regime probabilities when given), FreqAI's
``XGBoostRegressor`` / ``XGBoostClassifier`` family on our forecaster contract.

Rows with any non-finite feature (warm-up) are neither trained on nor predicted (NaN,
see :mod:`ml.models.tabular`). Early stopping on the chronologically last validation
slice, ``validation_gap`` rows after the training rows. The ``hist`` tree method on the
CPU with a fixed seed gives the same model on the same rows whatever ``n_jobs`` is.
XGBoost is a core dependency (its CPU wheel, ``xgboost-cpu``, is about 6 MB; FreqAI
imports it too).
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


class XGBoostForecaster(TabularForecaster):
    trainer_params: ClassVar[frozenset[str]] = frozenset(
        {"n_jobs", "random_state", "validation_gap"}
    )
    param_ranges: ClassVar[dict[str, Range]] = {
        "n_estimators": count(1),
        "max_depth": count(1, 64),
        "learning_rate": POSITIVE,
        "min_child_weight": POSITIVE,
        "subsample": fraction(),
        "colsample_bytree": fraction(),
        **BOOSTER_RANGES,
    }

    def __init__(
        self,
        task: Task = "classification",
        n_estimators: int = 400,
        max_depth: int = 4,
        learning_rate: float = 0.05,
        min_child_weight: float = 5.0,
        subsample: float = 0.8,
        colsample_bytree: float = 0.8,
        early_stopping_rounds: int = 30,
        validation_fraction: float = 0.2,
        validation_gap: int = 1,
        n_jobs: int = 2,
        random_state: int = 0,
    ) -> None:
        self.task = task
        self.n_estimators = n_estimators
        self.max_depth = max_depth
        self.learning_rate = learning_rate
        self.min_child_weight = min_child_weight
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
    ) -> XGBoostForecaster:
        import xgboost as xgb

        values, target, usable = self._training_rows(X, y, sample_weight)
        start = self._start(init_model)
        train, val = split_validation(usable, self.validation_fraction, self.validation_gap)
        params: dict[str, Any] = {
            "n_estimators": self.n_estimators,
            "max_depth": self.max_depth,
            "learning_rate": self.learning_rate,
            "min_child_weight": self.min_child_weight,
            "subsample": self.subsample,
            "colsample_bytree": self.colsample_bytree,
            "tree_method": "hist",
            "device": "cpu",
            "n_jobs": self.n_jobs,
            "random_state": self.random_state,
            "early_stopping_rounds": self.early_stopping_rounds if len(val) else None,
        }
        model: xgb.XGBModel = (
            xgb.XGBClassifier(**params, eval_metric="logloss")
            if self.task == "classification"
            else xgb.XGBRegressor(**params, eval_metric="rmse")
        )
        fit_kwargs: dict[str, Any] = {"verbose": False}
        if len(val):
            fit_kwargs["eval_set"] = [(values[val], target[val])]
        if sample_weight is not None:
            fit_kwargs["sample_weight"] = np.asarray(sample_weight, dtype="float64")[train]
        if start is not None:  # boosting goes on from its trees
            fit_kwargs["xgb_model"] = start.get_booster()
        model.fit(values[train], target[train], **fit_kwargs)
        evaluations = model.evals_result() if len(val) else {}
        self.history_ = [
            {"epoch": float(i), "val_loss": float(v)}
            for scores in evaluations.get("validation_0", {}).values()
            for i, v in enumerate(scores)
        ]
        self.model_ = model
        best = getattr(model, "best_iteration", None)  # absent without early stopping
        self.best_iteration_ = int(best) if best is not None else self.n_estimators
        self.device_ = "cpu"
        return self
