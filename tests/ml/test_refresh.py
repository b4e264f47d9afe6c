"""A running adapter follows its alias: a promotion is served from the next candle."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from common.layout import UserDir
from experiments.spec import parse_experiment
from experiments.training import train
from features.data import load_candles
from ml.registry import promote
from ml.serving import ModelAdapter
from ml.tracking import configure, default_tracking_uri
from tests.conftest import import_synthetic, local_context


def _spec(pair: str, seed: int) -> object:
    return parse_experiment(
        {
            "name": "live_m",
            "seed": seed,
            "data": {"pair": pair, "timerange": "-20210301"},
            "regime": {"n_restarts": 1, "n_iter": 20},
            "model": {"kind": "lightgbm", "params": {"n_estimators": 15, "num_leaves": 5}},
            "walk_forward": {"folds": 1, "test_size": 300},
        },
        source="t",
    )


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    root = tmp_path_factory.mktemp("refresh")
    userdir = root / "ud"
    for seed, pair in ((5, "BTC/USDT"), (6, "XRP/USDT")):
        import_synthetic(userdir, pair, candles=1900, seed=seed)
    uri = default_tracking_uri(userdir)
    client = configure(uri, UserDir(userdir))
    for pair, seed in (("BTC/USDT", 1), ("BTC/USDT", 2), ("XRP/USDT", 3)):  # versions 1, 2, 3
        train(_spec(pair, seed), context=local_context(userdir, uri))  # type: ignore[arg-type]
    promote(client, "live_m", 1, "first", user="pytest", force=True)
    return userdir, uri


def test_a_promotion_is_served_from_the_next_candle_and_a_bad_one_is_refused(
    store: tuple[Path, str], caplog: pytest.LogCaptureFixture
) -> None:
    userdir, uri = store
    client = configure(uri, UserDir(userdir))
    candles = load_candles(UserDir(userdir), "binance", "BTC/USDT", "1h")
    adapter = ModelAdapter("models:/live_m@champion", tracking_uri=uri, refresh_minutes=0)
    start = 1500
    adapter.populate(candles.iloc[:start], "BTC/USDT", live=True)
    assert adapter.model_version == "1"
    adapter.populate(candles.iloc[: start + 1], "BTC/USDT", live=True)
    assert adapter.model_version == "1"

    promote(client, "live_m", 2, "better", user="pytest", force=True)
    caplog.set_level(logging.WARNING, logger="ml.serving")
    served = adapter.populate(candles.iloc[: start + 2], "BTC/USDT", live=True)
    assert adapter.model_version == "2"  # the very next candle
    assert "now serves v2 (was v1)" in caplog.text
    # the new version's prediction is what the strategy sees on that candle
    from ml.model_source import load_bundle

    expected = load_bundle("models:/live_m/2").predict(candles.iloc[: start + 2])
    assert served["&-p_up"].iloc[-1] == pytest.approx(expected["p_up"].iloc[-1])

    promote(client, "live_m", 3, "wrong pair", user="pytest", force=True)  # trained on XRP/USDT
    caplog.clear()
    caplog.set_level(logging.ERROR, logger="ml.serving")
    kept = adapter.populate(candles.iloc[: start + 3], "BTC/USDT", live=True)
    assert adapter.model_version == "2"
    assert (
        "live_m v3 refused, v2 keeps serving: it is for XRP/USDT 1h, not BTC/USDT 1h" in caplog.text
    )
    assert kept["do_predict"].iloc[-1] == 1


def test_a_registry_that_is_down_keeps_the_old_model_serving(
    store: tuple[Path, str], monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    userdir, uri = store
    promote(configure(uri, UserDir(userdir)), "live_m", 2, "back to v2", user="pytest", force=True)
    candles = load_candles(UserDir(userdir), "binance", "BTC/USDT", "1h")
    adapter = ModelAdapter("models:/live_m@champion", tracking_uri=uri, refresh_minutes=0)
    adapter.populate(candles.iloc[:1500], "BTC/USDT", live=True)
    before = adapter.model_version
    assert before == "2"

    def down(_uri: str) -> None:
        raise ConnectionError("registry at http://mlflow:5000 refused the connection")

    monkeypatch.setattr("ml.model_source.served_version", down)  # the network, stubbed
    caplog.set_level(logging.WARNING, logger="ml.serving")
    served = adapter.populate(candles.iloc[:1501], "BTC/USDT", live=True)
    assert adapter.model_version == before
    assert "registry not answering" in caplog.text
    assert served["do_predict"].iloc[-1] == 1
