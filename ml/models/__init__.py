"""Model implementations, one module each, sharing the forecaster contract
(:class:`ml.models.forecaster.Forecaster`).

:data:`FORECASTERS` is the one registry: a spec's ``[model] kind`` -> where the class
lives (imported on first use: torch alone takes about 1.5 s to import, which a
LightGBM model, the rules or a Freqtrade strategy start-up need not pay) and whether
it reads the filtered regime probabilities. A new model is one module with a
``Forecaster`` subclass, and one line here. :data:`REGIME_MODELS` is the same for
regime models (:class:`ml.models.regime_base.RegimeModel`).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    from ml.models.forecaster import Forecaster
    from ml.models.regime_base import RegimeModel


class ForecasterEntry(NamedTuple):
    path: str  # "module:Class"
    uses_regimes: bool  # the p_<regime> columns are among its inputs


FORECASTERS: dict[str, ForecasterEntry] = {
    "lstm": ForecasterEntry("ml.models.lstm:LSTMForecaster", uses_regimes=False),
    "hmm_lstm": ForecasterEntry("ml.models.lstm:LSTMForecaster", uses_regimes=True),
    "mlp": ForecasterEntry("ml.models.mlp:MLPForecaster", uses_regimes=True),
    "transformer": ForecasterEntry(
        "ml.models.transformer:TransformerForecaster", uses_regimes=True
    ),
    "lightgbm": ForecasterEntry("ml.models.lgbm:LightGBMForecaster", uses_regimes=True),
    "random_forest": ForecasterEntry("ml.models.forest:RandomForestForecaster", uses_regimes=True),
    "xgboost": ForecasterEntry("ml.models.xgb:XGBoostForecaster", uses_regimes=True),
    "catboost": ForecasterEntry("ml.models.catboosting:CatBoostForecaster", uses_regimes=True),
    "har": ForecasterEntry("ml.models.har:HarForecaster", uses_regimes=True),
    "rules": ForecasterEntry("ml.models.reasoning:RuleReasoner", uses_regimes=True),
    "regime_allocation": ForecasterEntry("ml.models.allocation:RegimeAllocator", uses_regimes=True),
}


# the regime models: a spec's ``[regime] kind`` -> "module:Class" (a RegimeModel)
REGIME_MODELS: dict[str, str] = {
    "hmm": "ml.models.regime:RegimeHMM",
    "jump": "ml.models.jump:RegimeJump",
}


def forecaster_class(kind: str) -> type[Forecaster]:
    """The forecaster class of ``kind`` (its module imported now)."""
    module, name = FORECASTERS[kind].path.split(":")
    cls: type[Forecaster] = getattr(importlib.import_module(module), name)
    return cls


def regime_model_class(kind: str) -> type[RegimeModel]:
    """The regime model class of ``kind`` (its module imported now)."""
    module, name = REGIME_MODELS[kind].split(":")
    cls: type[RegimeModel] = getattr(importlib.import_module(module), name)
    return cls
