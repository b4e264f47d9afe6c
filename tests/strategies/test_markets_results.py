"""Market snapshots and result parsing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from features.data import import_candles
from features.data.synthetic import generate
from strategies.markets import MarketsError, generate_snapshot, imported_pairs, load_snapshot
from strategies.results import ResultError, parse_result_zip


def test_generated_snapshot_covers_the_imported_pairs(tmp_path: Path) -> None:
    with pytest.raises(MarketsError, match="no imported pairs"):
        generate_snapshot(tmp_path, "binance")
    generate(300)[0].to_feather(tmp_path / "c.feather")
    import_candles(
        tmp_path / "c.feather",
        pair="ETH/USDT",
        timeframe="1h",
        exchange="binance",
        userdir=tmp_path,
    )
    assert imported_pairs(tmp_path, "binance") == ["ETH/USDT"]
    markets = load_snapshot(generate_snapshot(tmp_path, "binance"))
    market = markets["ETH/USDT"]
    assert (market["id"], market["base"], market["quote"], market["spot"]) == (
        "ETHUSDT",
        "ETH",
        "USDT",
        True,
    )
    assert set(market["precision"]) >= {"amount", "price"}


def test_bad_snapshots_are_clear_errors(tmp_path: Path) -> None:
    path = tmp_path / "m.json"
    with pytest.raises(MarketsError, match="no market snapshot"):
        load_snapshot(path)
    path.write_text("{")
    with pytest.raises(MarketsError, match="not valid JSON"):
        load_snapshot(path)
    path.write_text(json.dumps({"BTC/USDT": {"id": "BTCUSDT"}}))
    with pytest.raises(MarketsError, match="lacks"):
        load_snapshot(path)


def test_result_parser_rejects_non_results(tmp_path: Path) -> None:
    path = tmp_path / "x.zip"
    path.write_bytes(b"not a zip")
    with pytest.raises(ResultError, match="not a zip"):
        parse_result_zip(path, "RegimeStrategy")
