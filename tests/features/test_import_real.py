"""Importing the real, messy Binance export and Freqtrade's own test candles."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
from freqtrade.data.history import load_pair_history

from common.layout import UserDir
from features.data import ImportOptions, check_candles, import_candles, load_candles
from features.data.store import candles_path
from tests.conftest import BTC_1D, BTC_1H, FREQTRADE_TESTDATA, requires_shared

pytestmark = [requires_shared, pytest.mark.shared_data]


def _freqtrade_load(userdir: Path, pair: str, timeframe: str) -> pd.DataFrame:
    return load_pair_history(
        pair=pair,
        timeframe=timeframe,
        datadir=userdir / "data" / "binance",
        data_format="feather",
        fill_up_missing=False,
    )


def test_real_btc_report_finds_every_known_defect(tmp_path: Path) -> None:
    result = import_candles(
        BTC_1H, pair="BTC/USDT", timeframe="1h", exchange="binance", layout=UserDir(tmp_path)
    )
    report = result.report
    assert report.format == "cryptodatadownload-csv"
    assert report.rows_read == 36_062
    # Two concatenated exports: seconds with "05-AM" dates, milliseconds with ISO dates.
    assert [(e.convention, e.rows) for e in report.exports] == [
        ("unix-s + %Y-%m-%d %I-%p", 28_584),
        ("unix-ms + %Y-%m-%d %H:%M:%S", 7_478),
    ]
    assert report.overlapping_timestamps == 2_649
    # Overlapping rows: one kept per timestamp, conflicts counted with their size.
    assert report.duplicates.timestamps == 2_649
    assert report.duplicates.rows_removed == 2_649
    assert 0 < report.duplicates.conflicting < 2_649
    assert 0 < report.duplicates.max_relative_price_difference < 0.01
    # 8 gaps, 16 missing hours, the longest 5 hours from candle to candle.
    assert report.gaps.count == 8
    assert report.gaps.missing_candles == 16
    assert report.gaps.longest == 4
    assert report.gaps.longest_span == timedelta(hours=5)
    # The bad first tick: open and high at 16,199.91 while the close is 4,308.83.
    first = datetime(2017, 8, 17, 4, tzinfo=UTC)
    assert [(f.date, f.column, f.value) for f in report.bad_ticks] == [
        (first, "open", 16_199.91),
        (first, "high", 16_199.91),
    ]
    assert report.repairs == []  # flagged, not repaired unless asked
    assert report.window.rows == 33_413
    assert report.window.first == first
    assert report.window.last == datetime(2021, 6, 10, tzinfo=UTC)
    # The older export's date text is 4 h off for 91 rows; the unix time wins, and it says so.
    assert report.time_mismatch is not None and report.time_mismatch.rows == 91

    ours = load_candles(UserDir(tmp_path), "binance", "BTC/USDT", "1h")
    theirs = _freqtrade_load(tmp_path, "BTC/USDT", "1h")
    assert len(theirs) == 33_413
    pd.testing.assert_frame_equal(
        theirs.reset_index(drop=True), ours.astype({"date": "datetime64[ms, UTC]"})
    )
    # The duplicate policy kept the full-precision export where both exist.
    row = ours.set_index("date").loc[pd.Timestamp("2020-09-26 07:00", tz="UTC")]
    assert row["open"] == 10732.43


def test_real_btc_repair_and_fill_are_listed_and_loadable(tmp_path: Path) -> None:
    options = ImportOptions(repair=True, fill_gaps=True)
    result = import_candles(
        BTC_1H,
        pair="BTC/USDT",
        timeframe="1h",
        exchange="binance",
        layout=UserDir(tmp_path),
        options=options,
    )
    report = result.report
    assert [(r.column, r.old, r.new) for r in report.repairs] == [
        ("open", 16_199.91, 4_308.83),
        ("high", 16_199.91, 4_308.83),
    ]
    assert len(report.filled_candles) == 16
    assert report.window.rows == 33_413 + 16
    candles = _freqtrade_load(tmp_path, "BTC/USDT", "1h")
    assert len(candles) == 33_429
    filled = candles[candles["date"].isin(pd.to_datetime(report.filled_candles, utc=True))]
    assert (filled["volume"] == 0).all()
    assert (filled["open"] == filled["close"]).all()
    assert (candles["high"] >= candles[["open", "close"]].max(axis=1)).all()


def test_real_btc_daily(tmp_path: Path) -> None:
    result = import_candles(
        BTC_1D, pair="BTC/USDT", timeframe="1d", exchange="binance", layout=UserDir(tmp_path)
    )
    assert len(result.report.exports) == 2
    assert result.report.window.first == datetime(2017, 8, 17, tzinfo=UTC)
    assert len(_freqtrade_load(tmp_path, "BTC/USDT", "1d")) == result.report.window.rows


def test_data_check_reports_the_same_as_import(tmp_path: Path) -> None:
    imported = import_candles(
        BTC_1H, pair="BTC/USDT", timeframe="1h", exchange="binance", layout=UserDir(tmp_path)
    ).report
    checked = check_candles(
        pair="BTC/USDT", timeframe="1h", exchange="binance", layout=UserDir(tmp_path)
    )
    assert checked == imported


@pytest.mark.parametrize(
    "name", sorted(p.name for p in FREQTRADE_TESTDATA.glob("*.feather")) or ["missing"]
)
def test_freqtrade_test_candles_round_trip(tmp_path: Path, name: str) -> None:
    source = FREQTRADE_TESTDATA / name
    stem = source.stem  # e.g. ETH_BTC-5m
    pair_part, timeframe = stem.rsplit("-", 1)
    pair = pair_part.replace("_", "/")
    original = pd.read_feather(source)
    result = import_candles(
        source, pair=pair, timeframe=timeframe, exchange="binance", layout=UserDir(tmp_path)
    )
    assert result.report.format == "freqtrade-feather"
    assert result.report.rows_read == len(original)
    assert result.candles_path == candles_path(UserDir(tmp_path), "binance", pair, timeframe)
    loaded = _freqtrade_load(tmp_path, pair, timeframe)
    assert len(loaded) == len(original)
    assert (loaded["close"].to_numpy() == original.sort_values("date")["close"].to_numpy()).all()
