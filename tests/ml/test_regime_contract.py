"""The regime-model contract (ml/models/regime_base.py): one base class, one registry,
settings per kind, and bundles from before the split still load."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from numpy.typing import NDArray

from common.errors import SpecError
from experiments.spec import parse_experiment
from features.data.synthetic import generate
from ml.bundle import ModelBundle
from ml.config import HmmRegimeConfig, JumpRegimeConfig, RegimeConfig
from ml.models import REGIME_MODELS
from ml.models.regime_base import RegimeModel
from tests.conftest import fit_on_prefix


@pytest.mark.parametrize(
    ("regime", "message"),
    [
        # before: accepted and ignored; the location names the kind whose settings apply
        ({"kind": "jump", "n_states": 2}, r"regime\[kind=jump\]\.n_states: Extra inputs"),
        ({"kind": "hmm", "jump_penalties": [3.0]}, "jump_penalties"),
        ({"kind": "markov_switching"}, "unknown regime kind 'markov_switching'"),
    ],
)
def test_each_kind_accepts_only_its_own_settings(regime: dict[str, Any], message: str) -> None:
    with pytest.raises(SpecError, match=message):
        parse_experiment({"name": "r", "model": {"kind": "lightgbm"}, "regime": regime}, source="t")


def test_the_kind_picks_the_settings() -> None:
    plain = parse_experiment({"name": "r", "model": {"kind": "lightgbm"}}, source="t")
    assert isinstance(plain.regime, HmmRegimeConfig)
    jump = parse_experiment(
        {"name": "r", "model": {"kind": "lightgbm"}, "regime": {"kind": "jump"}},
        source="t",
    )
    assert isinstance(jump.regime, JumpRegimeConfig)
    assert jump.regime.estimator_params(1, previous=object()) == {
        "jump_penalties": (1.0, 3.0, 10.0, 30.0, 100.0),
        "n_init": 10,
        "clip": 3.0,
        "random_state": 1,
    }
    marker = object()
    assert plain.regime.estimator_params(1, previous=marker)["init_from"] is marker


def test_a_bundle_pickled_before_the_split_still_loads(tmp_path: Path) -> None:
    spec = parse_experiment(
        {
            "name": "legacy",
            "model": {"kind": "lightgbm", "params": {"n_estimators": 10}},
            "regime": {"n_restarts": 1, "n_iter": 10, "n_states": 2},
        },
        source="t",
    )
    candles, _ = generate(1200, seed=4)
    bundle, features = fit_on_prefix(spec, candles, 1000)
    # the [regime] object bundles of earlier releases hold: one class, every field of both
    legacy = RegimeConfig()
    fields = {
        **HmmRegimeConfig(n_restarts=1, n_iter=10, n_states=2).model_dump(),
        "jump_penalties": (1.0, 3.0),
        "n_init": 10,
        "clip": 3.0,
    }
    object.__setattr__(legacy, "__dict__", fields)  # as pickle restores a pydantic model
    bundle.config = bundle.config.model_copy(update={"regime": legacy})
    bundle.save(tmp_path / "old.joblib")
    loaded = ModelBundle.load(tmp_path / "old.joblib")
    assert loaded.config.regime == spec.regime
    pd.testing.assert_frame_equal(
        loaded.predict_features(features), bundle.predict_features(features)
    )


class SignRegime(RegimeModel):
    """Bull while the mean of the last ``window`` returns (column 0) is positive."""

    def __init__(self, window: int = 24, random_state: int = 0) -> None:
        self.window = window
        self.random_state = random_state

    def fit(self, X: NDArray[np.float64], y: object = None) -> SignRegime:
        self.labels_, self.n_states_, self.n_features_in_ = ["bear", "bull"], 2, X.shape[1]
        return self

    def filter(self, X: NDArray[np.float64]) -> tuple[NDArray[np.float64], NDArray[np.int64]]:
        mean = pd.Series(np.asarray(X)[:, 0]).rolling(self.window).mean().to_numpy()
        bull = (mean > 0).astype("float64")
        probabilities = np.column_stack([1.0 - bull, bull])
        probabilities[~np.isfinite(mean)] = np.nan
        decisions = np.where(np.isfinite(mean), bull, -1).astype(np.int64)
        return probabilities, decisions

    def fingerprint_parts(self) -> tuple[Any, ...]:
        return ("sign", self.window)


def test_a_new_regime_model_is_one_class_and_one_registry_line(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    module = type(sys)("sign_regime_model")
    module.SignRegime = SignRegime  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "sign_regime_model", module)
    monkeypatch.setitem(REGIME_MODELS, "sign", "sign_regime_model:SignRegime")
    spec = parse_experiment(
        {
            "name": "signs",
            "model": {"kind": "regime_allocation"},
            "regime": {"kind": "sign", "columns": ["%-log_return_1"], "params": {"window": 12}},
        },
        source="t",
    )
    candles, _ = generate(800, seed=2)
    bundle, features = fit_on_prefix(spec, candles, 600)
    predicted = bundle.predict_features(features)
    mean = features["%-log_return_1"].rolling(12).mean()
    expected = np.where(mean > 0, 1.0, 0.0)[12:]
    np.testing.assert_array_equal(predicted["p_bull"].to_numpy()[12:], expected)
    np.testing.assert_array_equal(predicted["exposure"].to_numpy()[12:], expected)  # bull 1, bear 0
