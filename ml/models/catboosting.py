"""CatBoost on feature rows (plus regime probabilities when given), FreqAI's
``CatboostRegressor`` / ``CatboostClassifier`` family on our forecaster contract.

CatBoost is an optional extra (``pip install '.[catboost]'``): its wheel is about 100 MB
and it installs about 330 MB with plotly; a spec of this kind without it is refused
with that hint when it trains. Rows with any non-finite feature (warm-up) are neither
trained on nor predicted (NaN). Early stopping on the chronologically last validation
slice. CatBoost writes no files (``allow_writing_files=False``): its training logs
would land in the working directory.
"""

from __future__ import annotations

import importlib
from typing import Any, ClassVar

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from common.errors import TradingbotError
from ml.models.base import Task, split_validation
from ml.models.forecaster import Forecaster
from ml.models.params import POSITIVE, Range, count
from ml.models.tabular import BOOSTER_RANGES, TabularForecaster


def _catboost() -> Any:
    try:
        return importlib.import_module("catboost")
    except ImportError as exc:
        raise TradingbotError(
            "model kind catboost needs CatBoost, an optional extra that is not installed",
            hint="pip install '.[catboost]' (or `make test`, which installs it)",
        ) from exc


class CatBoostForecaster(TabularForecaster):
    trainer_params: ClassVar[frozenset[str]] = frozenset(
        {"n_jobs", "random_state", "validation_gap"}
    )
    param_ranges: ClassVar[dict[str, Range]] = {
        "iterations": count(1),
        "depth": count(1, 16),
        "learning_rate": POSITIVE,
        "l2_leaf_reg": POSITIVE,
        **BOOSTER_RANGES,
    }

    def __init__(
        self,
        task: Task = "classification",
        iterations: int = 400,
        depth: int = 6,
        learning_rate: float = 0.05,
        l2_leaf_reg: float = 3.0,
        early_stopping_rounds: int = 30,
        validation_fraction: float = 0.2,
        validation_gap: int = 1,
        n_jobs: int = 2,
        random_state: int = 0,
    ) -> None:
        self.task = task
        self.iterations = iterations
        self.depth = depth
        self.learning_rate = learning_rate
        self.l2_leaf_reg = l2_leaf_reg
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
    ) -> CatBoostForecaster:
        catboost = _catboost()
        values, target, usable = self._training_rows(X, y, sample_weight)
        start = self._start(init_model)
        train, val = split_validation(usable, self.validation_fraction, self.validation_gap)
        params: dict[str, Any] = {
            "iterations": self.iterations,
            "depth": self.depth,
            "learning_rate": self.learning_rate,
            "l2_leaf_reg": self.l2_leaf_reg,
            "thread_count": self.n_jobs,
            "random_seed": self.random_state,
            "allow_writing_files": False,
            "verbose": False,
        }
        model = (
            catboost.CatBoostClassifier(**params, loss_function="Logloss")
            if self.task == "classification"
            else catboost.CatBoostRegressor(**params, loss_function="RMSE")
        )
        fit_kwargs: dict[str, Any] = {}
        if len(val):
            fit_kwargs["eval_set"] = (values[val], target[val])
            fit_kwargs["early_stopping_rounds"] = self.early_stopping_rounds
            fit_kwargs["use_best_model"] = True
        if sample_weight is not None:
            fit_kwargs["sample_weight"] = np.asarray(sample_weight, dtype="float64")[train]
        if start is not None:  # boosting goes on from its trees
            fit_kwargs["init_model"] = start
        model.fit(values[train], target[train], **fit_kwargs)
        self.history_ = [
            {"epoch": float(i), "val_loss": float(v)}
            for scores in model.get_evals_result().get("validation", {}).values()
            for i, v in enumerate(scores)
        ]
        self.model_ = model
        self.best_iteration_ = int(model.get_best_iteration() or self.iterations)
        self.device_ = "cpu"
        return self
