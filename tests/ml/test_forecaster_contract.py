"""The forecaster contract (ml/models/base.py, ml/models/__init__.py): every registered model
keeps it, callers ask its tags, and a new model is one class plus one registry line."""

from __future__ import annotations

import inspect
from typing import Any

import numpy as np
import pandas as pd
import pytest
from numpy.typing import NDArray

from common.errors import SpecError
from experiments.spec import parse_experiment
from features.data.synthetic import generate
from ml.models import FORECASTERS, ForecasterEntry, forecaster_class
from ml.models.forecaster import Forecaster
from tests.conftest import fit_on_prefix


@pytest.mark.parametrize("kind", sorted(FORECASTERS))
def test_every_registered_model_is_a_forecaster(kind: str) -> None:
    cls = forecaster_class(kind)
    assert issubclass(cls, Forecaster)
    model = parse_experiment({"name": "c", "model": {"kind": kind}}, source="t").model
    estimator = model.estimator("classification", seed=1, validation_gap=1)
    context = estimator.context_rows
    assert context == getattr(estimator, "sequence_length", 1) - 1
    assert estimator.has_reasons == (kind == "rules") == estimator.decides_class
    assert estimator.outputs_exposure == (kind == "regime_allocation")
    # what the trainer sets is declared, and each is a parameter of the constructor
    accepted = set(inspect.signature(cls).parameters)
    assert cls.trainer_params <= accepted, (kind, cls.trainer_params - accepted)
    for name in cls.trainer_params:
        assert name in estimator.get_params(), (kind, name)


def test_an_unknown_kind_names_the_known_ones() -> None:
    with pytest.raises(
        SpecError, match=r"unknown model kind 'prophet'; known: \['catboost', 'har', 'hmm_lstm'"
    ):
        parse_experiment({"name": "c", "model": {"kind": "prophet"}}, source="t")


class MomentumSign(Forecaster):
    """A new model in one class: long when the last return was positive."""

    def __init__(self, task: str = "classification", column: str = "%-log_return_1") -> None:
        self.task = task
        self.column = column

    def fit(self, X: pd.DataFrame, y: Any) -> MomentumSign:
        self.up_rate_ = float(np.nanmean(y))
        return self

    def predict_proba(self, X: pd.DataFrame) -> NDArray[np.float64]:
        p_up = np.where(X[self.column].to_numpy() > 0, 0.6, 0.4)
        return np.column_stack([1 - p_up, p_up])


def test_a_new_model_is_one_class_and_one_registry_line(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    module = type(sys)("momentum_sign_model")
    module.MomentumSign = MomentumSign  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "momentum_sign_model", module)
    monkeypatch.setitem(
        FORECASTERS, "momentum_sign", ForecasterEntry("momentum_sign_model:MomentumSign", False)
    )
    spec = parse_experiment(
        {"name": "m", "model": {"kind": "momentum_sign", "params": {"column": "%-log_return_1"}}},
        source="t",
    )
    candles, _ = generate(800, seed=2)
    bundle, features = fit_on_prefix(spec, candles, 600)
    predicted = bundle.predict_features(features)
    assert bundle.regime_model is None  # it said it reads no regimes
    expected = np.where(features["%-log_return_1"].to_numpy() > 0, 1.0, 0.0)
    np.testing.assert_array_equal(predicted["prediction"].to_numpy(), expected)
