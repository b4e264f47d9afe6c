"""Market snapshots and result parsing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from common.layout import UserDir
from features.data import import_candles
from features.data.synthetic import generate
from strategies.markets import MarketsError, generate_snapshot, imported_pairs, load_snapshot
from strategies.results import ResultError, parse_result_zip


def test_generated_snapshot_covers_the_imported_pairs(tmp_path: Path) -> None:
    with pytest.raises(MarketsError, match="no imported pairs"):
        generate_snapshot(UserDir(tmp_path), "binance")
    generate(300)[0].to_feather(tmp_path / "c.feather")
    import_candles(
        tmp_path / "c.feather",
        pair="ETH/USDT",
        timeframe="1h",
        exchange="binance",
        layout=UserDir(tmp_path),
    )
    assert imported_pairs(UserDir(tmp_path), "binance") == ["ETH/USDT"]
    markets = load_snapshot(generate_snapshot(UserDir(tmp_path), "binance"))
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


def _result_zip(path: Path, start: str, end: str, **figures: float) -> Path:
    import zipfile

    result = {
        "strategy_name": "S",
        "trades": [],
        "total_trades": 0,
        "profit_total": 0.0,
        "backtest_start": start,
        "backtest_end": end,
        "stake_currency": "USDT",
        "starting_balance": 1000.0,
        "final_balance": 1000.0,
        **figures,
    }
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("backtest-result.json", json.dumps({"strategy": {"S": result}}))
    return path


def test_freqtrade_annualised_figures_need_ninety_days_and_a_value(tmp_path: Path) -> None:
    """Issue 24: a 2-week backtest printed CAGR +57,960%, and Freqtrade's 'could not
    compute' (-100) read as a Sharpe of -100.00."""
    import math

    figures = {"cagr": 579.6, "sharpe": 3.1, "sortino": 4.0, "calmar": 5156.0}
    short = parse_result_zip(
        _result_zip(tmp_path / "s.zip", "2021-03-01 00:00:00", "2021-03-15 00:00:00", **figures),
        "S",
    ).metrics
    assert all(math.isnan(v) for v in (short.cagr, short.sharpe_trades, short.sortino))
    long = parse_result_zip(
        _result_zip(tmp_path / "l.zip", "2021-01-01 00:00:00", "2021-06-01 00:00:00", **figures),
        "S",
    ).metrics
    assert (long.cagr, long.sharpe_trades, long.sortino) == (579.6, 3.1, 4.0)
    assert "calmar" not in long.model_dump()  # Freqtrade's closed-trade Calmar: not kept
    undefined = parse_result_zip(
        _result_zip(
            tmp_path / "u.zip", "2021-01-01 00:00:00", "2021-06-01 00:00:00", sharpe=-100.0
        ),
        "S",
    ).metrics
    assert math.isnan(undefined.sharpe_trades) and undefined.sortino == 0.0
