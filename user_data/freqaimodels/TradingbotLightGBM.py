"""FreqAI prediction model wrapping Tradingbot's LightGBM forecaster.

For users who prefer FreqAI's retraining loop: ``--freqaimodel TradingbotLightGBM``.
FreqAI prepares the features and labels (``&-...`` columns); this model fits
``ml.models.lgbm.LightGBMForecaster`` on them, with FreqAI's own test split as the
early-stopping validation set when there is one.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from freqtrade.freqai.base_models.BaseRegressionModel import BaseRegressionModel
from freqtrade.freqai.data_kitchen import FreqaiDataKitchen

from ml.models.lgbm import LightGBMForecaster


class TradingbotLightGBM(BaseRegressionModel):
    """FreqAI regression model backed by our deterministic LightGBM estimator."""

    def fit(self, data_dictionary: dict[str, Any], dk: FreqaiDataKitchen, **kwargs: Any) -> Any:
        params = dict(self.model_training_parameters)
        train_x = data_dictionary["train_features"]
        train_y = data_dictionary["train_labels"].iloc[:, 0].to_numpy(dtype="float64")
        test_x = data_dictionary.get("test_features")
        if test_x is not None and len(test_x):
            # FreqAI's chronological test split becomes our validation slice (placed after training).
            test_y = data_dictionary["test_labels"].iloc[:, 0].to_numpy(dtype="float64")
            x = pd.concat([train_x, test_x])
            y = np.concatenate([train_y, test_y])
            params.setdefault("validation_fraction", len(test_x) / len(x))
            params.setdefault("validation_gap", 0)
        else:
            x, y = train_x, train_y
            params.setdefault("validation_fraction", 0.0)
        return _Predictor(LightGBMForecaster(task="regression", **params).fit(x, y))


class _Predictor:
    """FreqAI calls ``predict(features)`` and expects one column per label."""

    def __init__(self, forecaster: LightGBMForecaster) -> None:
        self.forecaster = forecaster

    def predict(self, features: Any) -> np.ndarray:
        return self.forecaster.predict(features).reshape(-1, 1)
