"""The forecasters: scikit-learn contract, determinism, causality, honest validation."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone

from features.causality import assert_prefix_invariant
from features.data.synthetic import generate
from features.feature_spec import default_spec
from features.pipeline import build
from ml.bundle import regime_frame
from ml.config import ModelConfig
from ml.models.base import split_validation
from ml.models.lgbm import LightGBMForecaster
from ml.models.lstm import LSTMForecaster
from ml.models.reasoning import RuleReasoner
from ml.models.regime import RegimeHMM
from ml.models.torch_base import sequence_ends
from ml.targets import TargetSpec, make_target

SMALL = {
    "lstm": {"sequence_length": 8, "hidden_size": 8, "max_epochs": 2, "batch_size": 128},
    "lightgbm": {"n_estimators": 40, "num_leaves": 7, "min_child_samples": 20},
    "rules": {},
}


@pytest.fixture(scope="module")
def data() -> tuple[pd.DataFrame, pd.DataFrame, np.ndarray]:
    candles, _ = generate(2500, seed=21)
    features = build(candles, default_spec())
    columns = ("%-log_return_1", "%-sqrt_wick_1", "%-log_volume_zscore_168")
    regime = RegimeHMM(n_states=3, n_restarts=1, n_iter=30).fit(
        features[list(columns)].to_numpy()[:1500]
    )
    regimes = regime_frame(regime, features, columns)
    inputs = pd.concat([features.drop(columns="date"), regimes.drop(columns="regime")], axis=1)
    target = make_target(candles, TargetSpec()).to_numpy()
    return candles, inputs, target


def _model(kind: str, task: str = "classification", seed: int = 0):  # type: ignore[no-untyped-def]
    return ModelConfig(kind=kind, params=SMALL[kind]).estimator(task, seed, 1)  # type: ignore[arg-type]


@pytest.mark.parametrize("kind", ["lstm", "lightgbm", "rules"])
def test_estimator_contract(kind: str, data: tuple[pd.DataFrame, pd.DataFrame, np.ndarray]) -> None:
    _, inputs, target = data
    model = _model(kind)
    params = model.get_params()
    assert clone(model).get_params() == params  # parameters stored unchanged in __init__
    assert not [k for k in vars(model) if k.endswith("_")]  # nothing learned before fit
    fitted = model.fit(inputs.iloc[:1500], target[:1500])
    assert fitted is model
    prediction = model.predict(inputs.iloc[1500:])
    proba = model.predict_proba(inputs.iloc[1500:])
    assert prediction.shape == (1000,) and proba.shape == (1000, 2)
    finite = np.isfinite(proba[:, 1])
    assert finite.mean() > 0.95
    np.testing.assert_allclose(proba[finite].sum(axis=1), 1.0)
    assert set(np.unique(prediction[finite])) <= {0.0, 1.0}


@pytest.mark.parametrize("kind", ["lstm", "lightgbm"])
def test_regression_task(kind: str, data: tuple[pd.DataFrame, pd.DataFrame, np.ndarray]) -> None:
    candles, inputs, _ = data
    target = make_target(candles, TargetSpec(kind="return", horizon=4)).to_numpy()
    model = _model(kind, "regression").fit(inputs.iloc[:1500], target[:1500])
    prediction = model.predict(inputs.iloc[1500:])
    assert np.isfinite(prediction).mean() > 0.95
    with pytest.raises(AttributeError):
        model.predict_proba(inputs.iloc[1500:])


@pytest.mark.parametrize("kind", ["lstm", "lightgbm", "rules"])
def test_deterministic_for_a_seed(
    kind: str, data: tuple[pd.DataFrame, pd.DataFrame, np.ndarray]
) -> None:
    _, inputs, target = data
    a = (
        _model(kind, seed=3)
        .fit(inputs.iloc[:1500], target[:1500])
        .predict_proba(inputs.iloc[1500:])
    )
    b = (
        _model(kind, seed=3)
        .fit(inputs.iloc[:1500], target[:1500])
        .predict_proba(inputs.iloc[1500:])
    )
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("kind", ["lstm", "lightgbm", "rules"])
def test_predictions_are_causal(
    kind: str, data: tuple[pd.DataFrame, pd.DataFrame, np.ndarray]
) -> None:
    _, inputs, target = data
    model = _model(kind).fit(inputs.iloc[:1500], target[:1500])
    rows = inputs.iloc[1400:1800].reset_index(drop=True)
    rows.insert(0, "date", 0)

    def predict(part: pd.DataFrame) -> pd.DataFrame:
        return pd.DataFrame({"p_up": model.predict_proba(part.drop(columns="date"))[:, 1]})

    # LSTM outputs are float32: batch size changes the last bits, so compare to 1e-6.
    assert_prefix_invariant(
        predict, rows, prefixes=[1, 9, 10, 200, 399], atol=1e-6 if kind == "lstm" else 0.0
    )


def test_training_never_sees_rows_after_its_window(
    data: tuple[pd.DataFrame, pd.DataFrame, np.ndarray],
) -> None:
    """Changing everything after the training rows leaves the fitted model unchanged."""
    _, inputs, target = data
    noisy = inputs.copy()
    noisy.iloc[1500:] = np.random.default_rng(0).normal(size=noisy.iloc[1500:].shape)
    a = _model("lstm").fit(inputs.iloc[:1500], target[:1500])
    b = _model("lstm").fit(noisy.iloc[:1500], target[:1500])
    np.testing.assert_array_equal(
        a.predict_proba(inputs.iloc[:1500]), b.predict_proba(inputs.iloc[:1500])
    )


def test_validation_split_is_chronological_with_a_gap() -> None:
    usable = np.arange(100, dtype=np.int64)
    train, val = split_validation(usable, 0.2, gap=5)
    assert val.tolist() == list(range(80, 100))
    assert train.max() < 80 - 5


def test_sequence_ends_skip_warmup() -> None:
    values = np.ones((10, 2))
    values[3, 1] = np.nan
    assert sequence_ends(values, 3).tolist() == [2, 6, 7, 8, 9]  # windows 0-2, then after row 3


def test_lstm_records_history_and_device(
    data: tuple[pd.DataFrame, pd.DataFrame, np.ndarray],
) -> None:
    _, inputs, target = data
    model = LSTMForecaster(sequence_length=8, hidden_size=8, max_epochs=3, patience=5).fit(
        inputs.iloc[:1500], target[:1500]
    )
    assert [h["epoch"] for h in model.history_] == [0.0, 1.0, 2.0]
    assert all("val_loss" in h for h in model.history_)
    assert model.device_ == "cpu"


def test_lightgbm_stops_early_on_validation(
    data: tuple[pd.DataFrame, pd.DataFrame, np.ndarray],
) -> None:
    _, inputs, target = data
    model = LightGBMForecaster(n_estimators=2000, early_stopping_rounds=10).fit(
        inputs.iloc[:1500], target[:1500]
    )
    assert model.best_iteration_ < 2000
    assert model.history_


def test_reasoning_model_gives_a_reason_for_every_row(
    data: tuple[pd.DataFrame, pd.DataFrame, np.ndarray],
) -> None:
    _, inputs, target = data
    model = RuleReasoner().fit(inputs.iloc[:1500], target[:1500])
    reasons = model.explain(inputs)
    assert len(reasons) == len(inputs)
    assert reasons[0].startswith("no signal")  # warm-up
    prediction = model.predict(inputs)
    for reason, signal in zip(reasons[200:], prediction[200:], strict=True):
        assert reason.startswith("long:" if signal == 1 else "flat:"), reason
        assert "regime" in reason and "RSI" in reason and "training candles" in reason


def test_unknown_model_parameter_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match=r"unknown lightgbm parameter\(s\) \['num_leafs'\]"):
        ModelConfig(kind="lightgbm", params={"num_leafs": 3})


@pytest.mark.parametrize(
    ("kind", "params", "message"),
    [
        ("lightgbm", {"subsample": 1.5}, r"subsample = 1.5 is outside \(0, 1\]"),
        ("lightgbm", {"n_estimators": 2.5}, "n_estimators = 2.5 is not a whole number"),
        ("lstm", {"dropout": 1.0}, r"dropout = 1.0 is outside \[0, 1\)"),
        ("lstm", {"learning_rate": float("nan")}, "learning_rate = nan is not finite"),
        ("rules", {"rsi_oversold": 130}, r"rsi_oversold = 130 is outside \[0, 100\]"),
    ],
)
def test_model_parameters_out_of_range_are_clear_errors(
    kind: str, params: dict[str, object], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        ModelConfig(kind=kind, params=params)  # type: ignore[arg-type]
