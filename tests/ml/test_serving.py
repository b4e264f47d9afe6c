"""The FreqAI-style adapter: prediction columns, do_predict, the lookahead guard, failures."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from common.layout import UserDir
from experiments.spec import parse_experiment
from experiments.training import train
from features.data import import_candles, load_candles
from features.data.synthetic import generate
from ml.registry import promote
from ml.serving import ModelAdapter
from ml.tracking import configure, default_tracking_uri
from tests.conftest import local_context


@pytest.fixture(scope="module")
def registered(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    root = tmp_path_factory.mktemp("serving")
    generate(3000, seed=8)[0].to_feather(root / "c.feather")
    userdir = root / "ud"
    import_candles(
        root / "c.feather",
        pair="BTC/USDT",
        timeframe="1h",
        exchange="binance",
        layout=UserDir(userdir),
    )
    spec = parse_experiment(
        {
            "name": "serve_rules",
            "data": {"timerange": "20200101-20200301"},
            "regime": {"n_restarts": 1, "n_iter": 30},
            "model": {"kind": "rules"},
            "walk_forward": {"folds": 1, "test_size": 200},
        },
        source="test",
    )
    uri = default_tracking_uri(userdir)
    result = train(spec, context=local_context(userdir, uri))
    promote(
        configure(uri, UserDir(userdir)),
        "serve_rules",
        result.version,
        "test",
        user="pytest",
        force=True,
    )
    lstm = spec.model_copy(
        update={
            "name": "serve_hmm_lstm",
            "model": parse_experiment(
                {
                    "name": "x",
                    "model": {
                        "kind": "hmm_lstm",
                        "params": {"sequence_length": 8, "hidden_size": 8, "max_epochs": 2},
                    },
                },
                source="test",
            ).model,
        }
    )
    result = train(lstm, context=local_context(userdir, uri))
    promote(
        configure(uri, UserDir(userdir)),
        "serve_hmm_lstm",
        result.version,
        "test",
        user="pytest",
        force=True,
    )
    slow = [
        {"kind": kind, "halflives_days": [0.5, 1]}
        for kind in ("ewm_return", "ewm_log_downside_deviation", "ewm_sortino", "trend_distance")
    ]
    allocation = parse_experiment(
        {
            "name": "serve_allocation",
            "data": {"timerange": "20200101-20200301"},
            "features": {"features": slow},
            "regime": {
                "kind": "jump",
                "columns": ["%-ewm_return_0.5d", "%-ewm_sortino_1d", "%-trend_distance_1d"],
                "jump_penalties": [3.0, 30.0],
                "n_init": 2,
            },
            "model": {"kind": "regime_allocation"},
            "walk_forward": {"folds": 1, "test_size": 200},
        },
        source="test",
    )
    result = train(allocation, context=local_context(userdir, uri))
    promote(
        configure(uri, UserDir(userdir)),
        "serve_allocation",
        result.version,
        "test",
        user="pytest",
        force=True,
    )
    # the same allocation sized by a LightGBM forecast of volatility (an LSTM would read
    # a sequence: the live path passes it the context its forecast needs)
    sized = parse_experiment(
        {
            **allocation.model_dump(exclude={"sizing", "tune"}),
            "name": "serve_sized_allocation",
            "features": {"features": [*slow, {"kind": "realized_volatility", "windows": [24, 72]}]},
            "sizing": {
                "target_volatility": 0.5,
                "horizon_days": 1,
                "columns": ["%-realized_volatility_24", "%-realized_volatility_72", "p_bull"],
                "model": {"kind": "lightgbm", "params": {"n_estimators": 20}},
            },
        },
        source="test",
    )
    result = train(sized, context=local_context(userdir, uri))
    promote(
        configure(uri, UserDir(userdir)),
        "serve_sized_allocation",
        result.version,
        "test",
        user="pytest",
        force=True,
    )
    return userdir, uri


def _freqtrade_frame(userdir: Path) -> pd.DataFrame:
    candles = load_candles(UserDir(userdir), "binance", "BTC/USDT", "1h")
    frame = candles.copy()
    frame["date"] = frame["date"].astype("datetime64[ms, UTC]")  # as Freqtrade hands it over
    return frame


def test_columns_guard_and_reason(registered: tuple[Path, str], tmp_path: Path) -> None:
    userdir, uri = registered
    report = tmp_path / "guard.json"
    adapter = ModelAdapter(
        "models:/serve_rules@champion",
        tracking_uri=uri,
        report_path=report,
        evaluation_start=pd.Timestamp("2020-02-15", tz="UTC"),
    )
    frame = _freqtrade_frame(userdir)
    out = adapter.populate(frame, "BTC/USDT")
    assert len(out) == len(frame) and (out.index == frame.index).all()
    for column in (
        "&-prediction",
        "&-p_up",
        "&-regime",
        "&-p_bull",
        "&-p_bear",
        "&-p_sideways",
        "&-reason",
        "do_predict",
    ):
        assert column in out.columns, column
    train_end = pd.Timestamp(adapter.bundle.metadata.train_window.last)  # type: ignore[union-attr]
    assert train_end < pd.Timestamp("2020-03-01", tz="UTC")
    inside = out["date"] <= train_end
    assert (out.loc[inside, "do_predict"] == 0).all()  # the lookahead guard
    after = out[~inside]
    assert (after["do_predict"] == 1).all()
    assert after["&-reason"].str.match(r"^(long|flat): regime ").all()
    expected = int(((out["date"] >= pd.Timestamp("2020-02-15", tz="UTC")) & inside).sum())
    assert adapter.guard.in_training_window["BTC/USDT"] == expected > 0
    assert '"in_training_window"' in report.read_text()


def test_missing_model_gives_do_predict_zero_and_one_log_line(
    registered: tuple[Path, str], caplog: pytest.LogCaptureFixture
) -> None:
    userdir, uri = registered
    adapter = ModelAdapter("models:/no_such_model@champion", tracking_uri=uri, retry_seconds=3600)
    frame = _freqtrade_frame(userdir).iloc[:500]
    with caplog.at_level(logging.ERROR, logger="ml.serving"):
        for _ in range(5):
            out = adapter.populate(frame, "BTC/USDT")
            assert (out["do_predict"] == 0).all()
            assert out["&-prediction"].isna().all()
    assert len([r for r in caplog.records if "unavailable" in r.getMessage()]) == 1


def test_unreachable_registry_does_not_raise(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")
    adapter = ModelAdapter(
        "models:/x@champion", tracking_uri="http://127.0.0.1:9/", retry_seconds=3600
    )
    candles, _ = generate(300, seed=1)
    out = adapter.populate(candles, "BTC/USDT")
    assert (out["do_predict"] == 0).all()
    assert "x@champion" in adapter.guard.unavailable["BTC/USDT"]


def test_feature_mismatch_gives_do_predict_zero(
    registered: tuple[Path, str], caplog: pytest.LogCaptureFixture
) -> None:
    userdir, uri = registered
    adapter = ModelAdapter("models:/serve_rules@champion", tracking_uri=uri)
    frame = _freqtrade_frame(userdir).iloc[:800]
    assert adapter._load() is not None
    adapter.bundle.metadata.input_columns.append("%-not_a_feature_9")  # type: ignore[union-attr]
    with caplog.at_level(logging.ERROR, logger="ml.serving"):
        out = adapter.populate(frame, "BTC/USDT")
        adapter.populate(frame, "BTC/USDT")
    assert (out["do_predict"] == 0).all()
    assert np.isnan(out["&-prediction"]).all()
    messages = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(messages) == 1 and "feature mismatch" in messages[0]


@pytest.mark.parametrize(
    "model", ["serve_rules", "serve_hmm_lstm", "serve_allocation", "serve_sized_allocation"]
)
def test_live_path_processes_only_new_candles_and_matches_the_batch(
    registered: tuple[Path, str], model: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    userdir, uri = registered
    frame = _freqtrade_frame(userdir)
    batch = ModelAdapter(f"models:/{model}@champion", tracking_uri=uri).populate(frame, "BTC/USDT")
    live = ModelAdapter(f"models:/{model}@champion", tracking_uri=uri)
    live.populate(
        frame.iloc[:2000].copy(), "BTC/USDT", live=True
    )  # bootstrap: the whole frame once

    built: list[tuple[int, int]] = []
    original = live.bundle.tail_features  # type: ignore[union-attr]

    def counting(candles: pd.DataFrame, rows: int, references: object = None) -> pd.DataFrame:
        built.append((len(candles), rows))
        return original(candles, rows, references)

    monkeypatch.setattr(live.bundle, "tail_features", counting)
    steps = [
        *range(2001, 2040),
        2043,
        *range(2044, 2060),
    ]  # one candle at a time, once four at once
    for end in steps:
        start = max(0, end - 1500)  # a sliding window, as Freqtrade hands over in live mode
        out = live.populate(frame.iloc[start:end].copy(), "BTC/USDT", live=True)
        expected = batch.iloc[start:end]
        columns = [
            c
            for c in expected.columns
            if c.startswith("&-p_")
            or c in ("&-prediction", "&-exposure", "&-exposure_unsized", "&-volatility")
        ]
        if model.endswith("allocation"):  # an exposure, served under its own name
            assert expected["&-p_up"].isna().all() and expected["&-exposure"].notna().any()
            assert ("&-exposure_unsized" in expected) == (model == "serve_sized_allocation")
        np.testing.assert_allclose(
            out[columns].to_numpy(dtype="float64"),
            expected[columns].to_numpy(dtype="float64"),
            rtol=0,
            atol=1e-6,
            equal_nan=True,
        )
        assert (out["&-regime"].to_numpy() == expected["&-regime"].to_numpy()).all()
        assert (out["do_predict"].to_numpy() == expected["do_predict"].to_numpy()).all()
    # features only ever on the bounded tail, and only the rows the new candles need
    assert built and max(size for size, _ in built) <= live.live_window
    context = live.bundle.context_rows  # type: ignore[union-attr]
    assert max(rows for _, rows in built) == 4 + context  # the step with four new candles


def test_predictions_an_allocation_logged_before_it_named_its_exposure_are_upgraded() -> None:
    from ml.serving.columns import upgraded_exposure_columns

    old_sized = pd.DataFrame({"p_up": [0.4], "exposure": [1.0], "volatility": [0.9]})
    assert list(upgraded_exposure_columns(old_sized, True).columns) == [
        "exposure",
        "exposure_unsized",
        "volatility",
    ]
    old = pd.DataFrame({"p_up": [1.0]})
    assert list(upgraded_exposure_columns(old, True).columns) == ["exposure"]
    direction = pd.DataFrame({"p_up": [0.6]})  # a forecaster's probability stays one
    assert list(upgraded_exposure_columns(direction, False).columns) == ["p_up"]
