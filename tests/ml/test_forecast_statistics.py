"""The forecast's recent range (FreqAI's label statistics and fit_live_predictions_candles,
ml/forecast_statistics.py): the training fallback, the rolling range over out-of-sample
forecasts, the same in batch, live and walk-forward, and causal."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from common.layout import UserDir
from experiments.spec import parse_experiment
from ml.forecast_statistics import recent_statistics
from tests.conftest import import_synthetic, local_context


def test_the_range_rolls_over_counted_rows_and_falls_back_before_it_has_enough() -> None:
    values = np.arange(10, dtype="float64")
    counted = np.arange(10) >= 3  # rows 0-2: in the training window
    fallback = np.full(10, -1.0), np.full(10, 9.0)
    mean, std = recent_statistics(values, counted, 4, *fallback)
    np.testing.assert_array_equal(mean[:6], -1.0)  # rows 3..5: fewer than 4 counted
    np.testing.assert_array_equal(std[:6], 9.0)
    assert mean[6] == pytest.approx(4.5) and std[6] == pytest.approx(np.std([3, 4, 5, 6]))
    assert mean[9] == pytest.approx(7.5)
    unset = recent_statistics(values, counted, None, *fallback)
    np.testing.assert_array_equal(unset[0], -1.0)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, pd.DataFrame]:
    from experiments.training import train
    from ml.registry import promote
    from ml.tracking import configure, default_tracking_uri

    userdir = tmp_path_factory.mktemp("range") / "ud"
    candles = import_synthetic(userdir, "BTC/USDT", candles=2400, seed=8)
    spec = parse_experiment(
        {
            "name": "ranged",
            "data": {"timerange": "-20210315"},
            "regime": {"n_restarts": 1, "n_iter": 20},
            "model": {"kind": "lightgbm", "params": {"n_estimators": 20, "num_leaves": 5}},
            "target": {"kind": "return", "horizon": 4},
            "walk_forward": {"folds": 2, "test_size": 200},
            "lifetime": {"fit_live_predictions_candles": 48},
        },
        source="t",
    )
    uri = default_tracking_uri(userdir)
    result = train(spec, context=local_context(userdir, uri))
    promote(configure(uri, UserDir(userdir)), "ranged", result.version, "t", user="t", force=True)
    return userdir, result.run_id, candles


def test_the_adapter_gives_the_range_of_the_last_out_of_sample_forecasts(
    trained: tuple[Path, str, pd.DataFrame],
) -> None:
    from ml.model_source import load_bundle
    from ml.serving import ModelAdapter
    from ml.tracking import default_tracking_uri

    userdir, _, candles = trained
    uri = default_tracking_uri(userdir)
    bundle = load_bundle("models:/ranged@champion")
    meta = bundle.metadata
    assert bundle.statistics_candles == 48
    assert meta.forecast_mean is not None and meta.forecast_std is not None
    assert meta.forecast_std > 0  # the training target's (a regression's, as FreqAI's)
    served = ModelAdapter("models:/ranged@champion", tracking_uri=uri).populate(candles, "BTC/USDT")
    after = np.flatnonzero((served["date"] > pd.Timestamp(meta.train_window.last)).to_numpy())
    first = int(after[0])
    np.testing.assert_allclose(
        served["&-prediction_mean"].iloc[first : first + 47], meta.forecast_mean
    )
    row = first + 100
    recent = served["&-prediction"].iloc[row - 47 : row + 1]
    assert served["&-prediction_mean"].iloc[row] == pytest.approx(recent.mean())
    assert served["&-prediction_std"].iloc[row] == pytest.approx(recent.std(ddof=0))
    # causal: the same on a prefix of the candles
    prefix = ModelAdapter("models:/ranged@champion", tracking_uri=uri).populate(
        candles.iloc[: row + 1].copy(), "BTC/USDT"
    )
    for column in ("&-prediction_mean", "&-prediction_std"):
        assert prefix[column].iloc[-1] == pytest.approx(served[column].iloc[row], rel=1e-12)
    # live: one candle at a time gives the batch values
    live = ModelAdapter("models:/ranged@champion", tracking_uri=uri)
    live.populate(candles.iloc[: row - 5].copy(), "BTC/USDT", live=True)
    for end in range(row - 4, row + 1):
        out = live.populate(candles.iloc[end - 1200 : end + 1].copy(), "BTC/USDT", live=True)
        assert out["&-prediction_mean"].iloc[-1] == pytest.approx(
            served["&-prediction_mean"].iloc[end], rel=1e-9
        )


def test_walk_forward_backtests_get_the_range_of_the_stitched_forecasts(
    trained: tuple[Path, str, pd.DataFrame], tmp_path: Path
) -> None:
    from ml.serving.columns import stitched_columns
    from ml.serving.served import stitch_walk_forward
    from ml.tracking import configure, default_tracking_uri

    userdir, run_id, candles = trained
    client = configure(default_tracking_uri(userdir), UserDir(userdir))
    path, _, folds = stitch_walk_forward(client, run_id, UserDir(userdir), "binance", tmp_path)
    stitched = pd.read_parquet(path)
    assert folds == 2 and len(stitched) == 400
    rolled = stitched["prediction"].rolling(48).mean()
    np.testing.assert_allclose(stitched["prediction_mean"].iloc[47:], rolled.iloc[47:])
    assert stitched["prediction_mean"].iloc[:47].nunique() == 1  # fold 1's training range
    frame = stitched_columns(candles, stitched)
    assert frame["&-prediction_mean"].notna().sum() == 400


def test_a_classifier_s_range_is_its_own_p_up_and_exposure_models_have_none(
    tmp_path: Path,
) -> None:
    from features.data.synthetic import generate
    from tests.conftest import fit_on_prefix

    candles, _ = generate(900, seed=3)
    spec = parse_experiment(
        {"name": "c", "model": {"kind": "lightgbm", "params": {"n_estimators": 10}}},
        source="t",
    )
    bundle, features = fit_on_prefix(spec, candles, 700)
    assert bundle.statistics_candles is None
    predicted = bundle.predict_features(features)
    p_up = predicted["p_up"].iloc[:700]
    assert bundle.metadata.forecast_mean == pytest.approx(np.nanmean(p_up), rel=1e-9)
    assert 0 < bundle.metadata.forecast_std < 0.5  # a probability's range, not a label's
    allocation = parse_experiment(
        {"name": "a", "model": {"kind": "regime_allocation"}, "regime": {"n_restarts": 1}},
        source="t",
    )
    allocated, features = fit_on_prefix(allocation, candles, 700)
    assert "forecast_mean" not in allocated.predict_features(features)
