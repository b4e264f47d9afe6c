"""The model bundle (ml/bundle.py): fitted on given rows only, one file that loads back to
the same predictions, and clear errors for anything else."""

from __future__ import annotations

import pickle
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import pytest

from experiments.spec import parse_experiment
from features.data.synthetic import generate
from ml.bundle import BundleError, ModelBundle
from ml.fold_training import positions_from
from tests.conftest import fit_on_prefix


@pytest.fixture(scope="module")
def fitted() -> tuple[ModelBundle, pd.DataFrame, pd.DataFrame]:
    candles, _ = generate(1500, seed=21)
    spec = parse_experiment(
        {
            "name": "bundle",
            "seed": 4,
            "regime": {"n_restarts": 1, "n_iter": 20},
            "model": {"kind": "lightgbm", "params": {"n_estimators": 20, "num_leaves": 7}},
        },
        source="test",
    )
    bundle, features = fit_on_prefix(spec, candles, 1000)
    return bundle, candles, features


def test_a_saved_bundle_loads_back_to_the_same_predictions(
    fitted: tuple[ModelBundle, pd.DataFrame, pd.DataFrame], tmp_path: Path
) -> None:
    import hashlib

    bundle, candles, _ = fitted
    path = tmp_path / "bundle.joblib"
    digest = bundle.save(path)
    assert digest == hashlib.sha256(path.read_bytes()).hexdigest()
    loaded = ModelBundle.load(path)
    pd.testing.assert_frame_equal(loaded.predict(candles), bundle.predict(candles))
    assert loaded.metadata.pair == "BTC/USDT" and loaded.metadata.regime_labels
    assert loaded.metadata.train_window.last == candles["date"].iloc[999]


def test_predictions_are_causal_and_carry_regimes(
    fitted: tuple[ModelBundle, pd.DataFrame, pd.DataFrame],
) -> None:
    bundle, _, features = fitted
    full = bundle.predict_features(features)
    prefix = bundle.predict_features(features.iloc[:1200])
    pd.testing.assert_frame_equal(prefix, full.iloc[:1200])
    assert {"prediction", "p_up", "regime"} <= set(full.columns)
    trusted = full["p_up"].dropna()
    assert ((trusted >= 0) & (trusted <= 1)).all()


def test_what_is_not_a_bundle_is_refused_by_name(
    fitted: tuple[ModelBundle, pd.DataFrame, pd.DataFrame], tmp_path: Path
) -> None:
    garbage = tmp_path / "garbage.joblib"
    garbage.write_bytes(b"not a pickle")
    with pytest.raises(BundleError, match=r"garbage\.joblib: not a loadable model bundle"):
        ModelBundle.load(garbage)
    other = tmp_path / "other.joblib"
    joblib.dump({"a": 1}, other)
    with pytest.raises(BundleError, match="holds a dict, not a ModelBundle"):
        ModelBundle.load(other)
    bundle = pickle.loads(pickle.dumps(fitted[0]))
    bundle.metadata = bundle.metadata.model_copy(update={"format": -1})
    old = tmp_path / "old.joblib"
    bundle.save(old)
    with pytest.raises(BundleError, match="bundle format -1"):
        ModelBundle.load(old)


def test_positions_from_predictions() -> None:
    frame = pd.DataFrame({"prediction": [1.0, 0.0, np.nan], "p_up": [0.7, 0.2, np.nan]})
    np.testing.assert_array_equal(positions_from(frame, "classification"), [1.0, 0.0, np.nan])
    regression = pd.DataFrame({"prediction": [0.01, -0.02, np.nan]})
    np.testing.assert_array_equal(positions_from(regression, "regression"), [1.0, 0.0, np.nan])
    allocation = pd.DataFrame({"prediction": [1.0, 0.0, np.nan], "exposure": [0.7, 0.2, np.nan]})
    held = positions_from(allocation, "classification", True)
    np.testing.assert_array_equal(held, [0.7, 0.2, np.nan])
