"""The FreqAI-style adapter: prediction columns, do_predict, the lookahead guard, failures."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from experiments.spec import parse_experiment
from experiments.train import train
from features.data import import_candles, load_candles
from features.data.synthetic import generate
from ml.registry import promote
from ml.serving import ModelAdapter
from ml.tracking import configure, default_tracking_uri


@pytest.fixture(scope="module")
def registered(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    root = tmp_path_factory.mktemp("serving")
    generate(3000, seed=8)[0].to_feather(root / "c.feather")
    userdir = root / "ud"
    import_candles(
        root / "c.feather", pair="BTC/USDT", timeframe="1h", exchange="binance", userdir=userdir
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
    result = train(spec, userdir=userdir, tracking_uri=uri)
    promote(configure(uri, userdir), "serve_rules", result.version, "test", user="pytest")
    return userdir, uri


def _freqtrade_frame(userdir: Path) -> pd.DataFrame:
    candles = load_candles(userdir, "binance", "BTC/USDT", "1h")
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
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 1 and "feature mismatch" in messages[0]
