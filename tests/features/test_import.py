"""Import of generic CSV and Freqtrade files: parsing, policies, gaps, repairs, atomicity."""

from __future__ import annotations

import gzip
import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from common.errors import DataError
from common.layout import UserDir
from features.data import DuplicatePolicy, ImportOptions, import_candles, load_candles
from features.data.store import candles_path, report_path
from tests.conftest import CliResult

HEADER = "date,open,high,low,close,volume\n"


def _import(path: Path, userdir: Path, timeframe: str = "1h", **options: object):  # type: ignore[no-untyped-def]
    return import_candles(
        path,
        pair="BTC/USDT",
        timeframe=timeframe,
        exchange="binance",
        layout=UserDir(userdir),
        options=ImportOptions(**options),  # type: ignore[arg-type]
    )


def _rows(hours: list[int], price: float = 100.0) -> list[str]:
    return [
        f"2024-01-01 {h:02d}:00:00,{price + h},{price + h + 1},{price + h - 1},{price + h + 0.5},{10 + h}"
        for h in hours
    ]


def test_generic_csv_in_any_order_with_mixed_time_formats(tmp_path: Path) -> None:
    # unix seconds, unix milliseconds and ISO text, shuffled.
    base = int(datetime(2024, 1, 1, tzinfo=UTC).timestamp())
    lines = [
        f"{base + 2 * 3600},102,103,101,102.5,12",
        f"{(base + 0 * 3600) * 1000},100,101,99,100.5,10",
        f"{base + 1 * 3600}.0,101,102,100,101.5,11",
    ]
    source = tmp_path / "mixed.csv"
    source.write_text("timestamp,open,high,low,close,volume\n" + "\n".join(lines) + "\n")
    result = _import(source, tmp_path / "ud")
    candles = load_candles(UserDir(tmp_path / "ud"), "binance", "BTC/USDT", "1h")
    assert candles["close"].tolist() == [100.5, 101.5, 102.5]
    assert str(candles["date"].iloc[0]) == "2024-01-01 00:00:00+00:00"
    assert {e.convention for e in result.report.exports} == {"unix-s", "unix-ms"}

    text = tmp_path / "dates.csv"
    text.write_text(
        "Date,Open,High,Low,Close,Volume\n"
        "2024-01-01T02:00:00Z,102,103,101,102.5,12\n"
        "2024-01-01 12-AM,100,101,99,100.5,10\n"
        "2024-01-01 01:00,101,102,100,101.5,11\n"
    )
    _import(text, tmp_path / "ud2")
    again = load_candles(UserDir(tmp_path / "ud2"), "binance", "BTC/USDT", "1h")
    pd.testing.assert_frame_equal(again, candles)


def test_cryptodatadownload_preamble_and_quote_volume(tmp_path: Path) -> None:
    source = tmp_path / "cdd.csv.gz"
    body = (
        "https://www.CryptoDataDownload.com\n"
        "unix,date,symbol,open,high,low,close,Volume BTC,Volume USDT,tradecount\n"
        "1704070800000,2024-01-01 01:00:00,BTC/USDT,101,102,100,101.5,2.0,203.0,7\n"
        "1704067200000,2024-01-01 00:00:00,BTC/USDT,100,101,99,100.5,1.0,100.5,NULL\n"
    )
    source.write_bytes(gzip.compress(body.encode()))
    result = _import(source, tmp_path / "ud")
    assert result.report.format == "cryptodatadownload-csv"
    candles = load_candles(UserDir(tmp_path / "ud"), "binance", "BTC/USDT", "1h")
    assert candles["volume"].tolist() == [1.0, 2.0]  # base (BTC) volume, not USDT


def test_freqtrade_json(tmp_path: Path) -> None:
    base = int(datetime(2024, 1, 1, tzinfo=UTC).timestamp() * 1000)
    rows = [[base + i * 300_000, 1.0 + i, 2.0 + i, 0.5 + i, 1.5 + i, 3.0] for i in range(5)]
    source = tmp_path / "ETH_BTC-5m.json"
    source.write_text(json.dumps(rows))
    result = _import(source, tmp_path / "ud", timeframe="5m")
    assert result.report.format == "freqtrade-json"
    assert result.report.window.rows == 5


@pytest.mark.parametrize(
    ("policy", "kept_open"),
    [
        (DuplicatePolicy.MOST_PRECISE, 100.123),
        (DuplicatePolicy.FIRST, 100.2),
        (DuplicatePolicy.LAST, 100.123),
    ],
)
def test_duplicate_policies(tmp_path: Path, policy: DuplicatePolicy, kept_open: float) -> None:
    source = tmp_path / "dups.csv"
    source.write_text(
        HEADER
        + "2024-01-01 00:00:00,100.2,101,99,100.5,10\n"
        + "2024-01-01 01:00:00,101,102,100,101.5,11\n"
        + "2024-01-01 00:00:00,100.123,101,99,100.5,10\n"
        + "2024-01-01 01:00:00,101.0,102.0,100.0,101.5,11.0\n"
    )
    report = _import(source, tmp_path / "ud", duplicate_policy=policy).report
    assert report.duplicates.timestamps == 2
    assert report.duplicates.rows_removed == 2
    # 100.2 vs 100.123 differs at the coarser precision; the 01:00 rows only in notation.
    assert report.duplicates.conflicting == 1
    assert report.duplicates.max_relative_price_difference == pytest.approx(
        abs(100.2 - 100.123) / kept_open
    )
    candles = load_candles(UserDir(tmp_path / "ud"), "binance", "BTC/USDT", "1h")
    assert candles["open"].iloc[0] == kept_open
    assert len(candles) == 2


def test_gaps_reported_and_filled_only_when_asked(tmp_path: Path) -> None:
    source = tmp_path / "gaps.csv"
    source.write_text(HEADER + "\n".join(_rows([0, 1, 4, 5, 6, 9])) + "\n")
    report = _import(source, tmp_path / "a").report
    assert (report.gaps.count, report.gaps.missing_candles, report.gaps.longest) == (2, 4, 2)
    assert load_candles(UserDir(tmp_path / "a"), "binance", "BTC/USDT", "1h").shape[0] == 6

    filled = _import(source, tmp_path / "b", fill_gaps=True).report
    assert [d.hour for d in filled.filled_candles] == [2, 3, 7, 8]
    candles = load_candles(UserDir(tmp_path / "b"), "binance", "BTC/USDT", "1h")
    assert len(candles) == 10
    inserted = candles[candles["date"].dt.hour.isin([2, 3])]
    assert (inserted["volume"] == 0).all()
    assert (inserted[["open", "high", "low", "close"]] == 101.5).all().all()  # previous close


def test_bad_tick_and_invariant_flagged_then_repaired(tmp_path: Path) -> None:
    rows = _rows(list(range(12)))
    rows[6] = "2024-01-01 06:00:00,106,999,105,106.5,16"  # a high far outside its neighbours
    rows[8] = "2024-01-01 08:00:00,108,107,107.5,108.5,18"  # high below open/close, low above open
    source = tmp_path / "ticks.csv"
    source.write_text(HEADER + "\n".join(rows) + "\n")
    report = _import(source, tmp_path / "a").report
    assert [(f.date.hour, f.column) for f in report.bad_ticks] == [(6, "high")]
    assert [(f.date.hour, f.column) for f in report.invariant_violations] == [
        (8, "high"),
        (8, "low"),
    ]
    assert report.repairs == []
    kept = load_candles(UserDir(tmp_path / "a"), "binance", "BTC/USDT", "1h")
    assert kept["high"].iloc[6] == 999  # untouched without --repair

    repaired = _import(source, tmp_path / "b", repair=True).report
    assert [(r.date.hour, r.column, r.old, r.new) for r in repaired.repairs] == [
        (6, "high", 999.0, 106.5),
        (8, "high", 107.0, 108.5),  # the low (107.5) is consistent once the high is fixed
    ]
    candles = load_candles(UserDir(tmp_path / "b"), "binance", "BTC/USDT", "1h")
    assert (candles["high"] >= candles[["open", "close", "low"]].max(axis=1)).all()
    assert (candles["low"] <= candles[["open", "close", "high"]].min(axis=1)).all()


def test_failed_import_keeps_the_existing_good_file(tmp_path: Path) -> None:
    good = tmp_path / "good.csv"
    good.write_text(HEADER + "\n".join(_rows([0, 1, 2])) + "\n")
    _import(good, tmp_path / "ud")
    target = candles_path(UserDir(tmp_path / "ud"), "binance", "BTC/USDT", "1h")
    sidecar = report_path(UserDir(tmp_path / "ud"), "binance", "BTC/USDT", "1h")
    before = (target.read_bytes(), sidecar.read_bytes())

    bad = tmp_path / "bad.csv"
    bad.write_text(HEADER + "\n".join(_rows([0, 1])) + "\n2024-01-01 02:00:00,1,2,0.5,nan,3\n")
    with pytest.raises(DataError, match="line 4"):
        _import(bad, tmp_path / "ud")
    assert (target.read_bytes(), sidecar.read_bytes()) == before
    assert sorted(p.name for p in target.parent.iterdir()) == [target.name, sidecar.name]


def test_failure_while_writing_leaves_no_partial_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    good = tmp_path / "good.csv"
    good.write_text(HEADER + "\n".join(_rows([0, 1, 2])) + "\n")
    _import(good, tmp_path / "ud")
    target = candles_path(UserDir(tmp_path / "ud"), "binance", "BTC/USDT", "1h")
    before = target.read_bytes()

    def broken_write(self: pd.DataFrame, path: Path, **kwargs: object) -> None:
        Path(path).write_bytes(b"half a feather")
        raise OSError("disk full")

    monkeypatch.setattr(pd.DataFrame, "to_feather", broken_write)
    more = tmp_path / "more.csv"
    more.write_text(HEADER + "\n".join(_rows([0, 1, 2, 3])) + "\n")
    with pytest.raises(OSError, match="disk full"):
        _import(more, tmp_path / "ud")
    assert target.read_bytes() == before
    assert len(list(target.parent.iterdir())) == 2  # no temp files left behind


def test_data_check_detects_a_changed_file(tmp_path: Path) -> None:
    from features.data import check_candles

    source = tmp_path / "c.csv"
    source.write_text(HEADER + "\n".join(_rows([0, 1, 2])) + "\n")
    _import(source, tmp_path / "ud")
    target = candles_path(UserDir(tmp_path / "ud"), "binance", "BTC/USDT", "1h")
    frame = pd.read_feather(target)
    frame.loc[1, "close"] = np.float64(55.0)
    frame.to_feather(target)
    with pytest.raises(DataError, match="do not match their import report"):
        check_candles(
            pair="BTC/USDT", timeframe="1h", exchange="binance", layout=UserDir(tmp_path / "ud")
        )


def test_a_killed_import_leaves_nothing_the_next_import_keeps(tmp_path: Path) -> None:
    """A SIGKILL mid-write leaves a hidden temporary file; the next import removes it.
    Imported files get the usual permissions, not the temporary file's 0600."""
    import os
    import signal
    import subprocess
    import sys

    good = tmp_path / "good.csv"
    good.write_text(HEADER + "\n".join(_rows([0, 1, 2])) + "\n")
    target = candles_path(UserDir(tmp_path / "ud"), "binance", "BTC/USDT", "1h")
    target.parent.mkdir(parents=True)
    # a writer that dies between creating its temporary file and renaming it
    killed = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import os, sys, time\n"
            "from pathlib import Path\n"
            "from common.atomic import atomic_path\n"
            "with atomic_path(Path(sys.argv[1])) as tmp:\n"
            "    tmp.write_bytes(b'half'); print(tmp, flush=True); time.sleep(600)\n",
            str(target),
        ],
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        leftover = Path(killed.stdout.readline().strip())  # type: ignore[union-attr]
        assert leftover.exists()
    finally:
        os.killpg(killed.pid, signal.SIGKILL)
        killed.wait()
    assert leftover.exists()  # SIGKILL runs no clean-up
    _import(good, tmp_path / "ud")
    sidecar = report_path(UserDir(tmp_path / "ud"), "binance", "BTC/USDT", "1h")
    assert sorted(p.name for p in target.parent.iterdir()) == [target.name, sidecar.name]
    umask = os.umask(0)
    os.umask(umask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~umask
    assert sidecar.stat().st_mode & 0o777 == 0o666 & ~umask


def test_kept_bad_ticks_come_with_the_repair_command(
    tmp_path: Path, cli: Callable[..., CliResult]
) -> None:
    """Before: the report flagged a bad tick without a word on --repair, and training
    then used it."""
    rows = _rows(list(range(12)))
    rows[6] = "2024-01-01 06:00:00,106,999,105,106.5,16"
    source = tmp_path / "ticks.csv"
    source.write_text(HEADER + "\n".join(rows) + "\n")
    args = ("data", "import", source, "--pair", "BTC/USDT", "--timeframe", "1h")
    kept = cli(*args, "--userdir", tmp_path / "ud")
    said = " ".join(kept.out.split())
    assert kept.code == 0 and "training and backtests read them" in said
    assert f"tradingbot data import {source} --pair BTC/USDT --timeframe 1h --repair" in said
    repaired = cli(*args, "--repair", "--userdir", tmp_path / "ud2")
    assert repaired.code == 0 and "training and backtests read them" not in repaired.out


def test_training_says_when_it_learns_from_kept_bad_ticks(
    tmp_path: Path, cli: Callable[..., CliResult]
) -> None:
    from experiments.training.data import data_warnings
    from features.data import load_candles
    from features.data.importer import kept_bad_ticks
    from ml.pooled import PairData

    rows = _rows(list(range(12)))
    rows[6] = "2024-01-01 06:00:00,106,999,105,106.5,16"
    source = tmp_path / "ticks.csv"
    source.write_text(HEADER + "\n".join(rows) + "\n")
    args = ("data", "import", source, "--pair", "BTC/USDT", "--timeframe", "1h")
    said = {}
    for repair in ((), ("--repair",)):
        userdir = tmp_path / f"ud{len(repair)}"
        assert cli(*args, *repair, "--userdir", userdir).code == 0
        candles = load_candles(UserDir(userdir), "binance", "BTC/USDT", "1h")
        said[repair] = (
            kept_bad_ticks(UserDir(userdir), "binance", "BTC/USDT", "1h"),
            data_warnings(
                UserDir(userdir), "binance", "1h", [PairData("BTC/USDT", candles, candles)]
            ),
        )
    ticks, warnings = said[()]
    assert [tick.hour for tick in ticks] == [6]
    assert warnings == [
        "1 bad tick(s) flagged at import are kept in the BTC/USDT 1h candles (first "
        "2024-01-01 06:00 UTC): import again with --repair to fix them"
    ]
    assert said[("--repair",)] == ([], [])
