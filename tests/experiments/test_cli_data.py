"""`tradingbot data import/check` through the CLI: bad input exits cleanly and writes nothing."""

from __future__ import annotations

import gzip
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import BTC_1H, CliResult, requires_shared

HEADER = "date,open,high,low,close,volume\n"
GOOD = [
    "2024-01-01 00:00:00,100,101,99,100.5,10",
    "2024-01-01 01:00:00,100.5,102,100,101.5,11",
    "2024-01-01 02:00:00,101.5,103,101,102.5,12",
]


def _gzip_truncated() -> bytes:
    payload = gzip.compress((HEADER + "\n".join(GOOD * 200)).encode())
    return payload[: len(payload) // 2]


# (name, file name, content, timeframe, expected message parts)
BAD_INPUTS: list[tuple[str, str, bytes, str, list[str]]] = [
    ("empty", "empty.csv", b"", "1h", ["file is empty"]),
    ("header only", "header.csv", HEADER.encode(), "1h", ["header only", "line 1"]),
    ("truncated gzip", "cut.csv.gz", _gzip_truncated(), "1h", ["truncated gzip"]),
    ("binary garbage", "garbage.csv", os.urandom(64) + b"\x00" + os.urandom(64), "1h", ["binary"]),
    (
        "missing column",
        "nocl.csv",
        b"date,open,high,low,volume\n2024-01-01 00:00:00,1,2,0.5,3\n",
        "1h",
        ["missing column(s) close"],
    ),
    (
        "non-numeric column",
        "text.csv",
        (HEADER + GOOD[0] + "\n2024-01-01 01:00:00,100.5,abc,100,101.5,11\n").encode(),
        "1h",
        ["line 3", "column 'high'", "non-numeric value 'abc'"],
    ),
    (
        "unparseable date",
        "date.csv",
        (HEADER + GOOD[0] + "\nyesterday noon,100.5,102,100,101.5,11\n").encode(),
        "1h",
        ["line 3", "column 'date'", "unparseable date 'yesterday noon'"],
    ),
    (
        "spacing off the grid",
        "grid.csv",
        (HEADER + "\n".join(GOOD) + "\n2024-01-01 02:05:00,101.5,103,101,102.5,12\n").encode(),
        "1h",
        ["line 5", "not on the 1h grid"],
    ),
    (
        "spacing of another timeframe",
        "hourly.csv",
        (HEADER + "\n".join(GOOD) + "\n").encode(),
        "5m",
        ["most common spacing between candles is 1h, not 5m", "--timeframe 1h"],
    ),
    (
        "NaN price",
        "nan.csv",
        (HEADER + GOOD[0] + "\n2024-01-01 01:00:00,100.5,102,100,NaN,11\n").encode(),
        "1h",
        ["line 3", "column 'close'", "missing value (NaN)"],
    ),
    (
        "inf price",
        "inf.csv",
        (HEADER + GOOD[0] + "\n2024-01-01 01:00:00,100.5,inf,100,101.5,11\n").encode(),
        "1h",
        ["line 3", "column 'high'", "infinite value"],
    ),
    (
        "negative volume",
        "negvol.csv",
        (HEADER + "\n".join(GOOD[:2]) + "\n2024-01-01 02:00:00,101.5,103,101,102.5,-4\n").encode(),
        "1h",
        ["line 4", "column 'volume'", "negative volume"],
    ),
    (
        "not a feather",
        "broken.feather",
        b"ARROW1\x00\x00garbage",
        "1h",
        ["unreadable feather file"],
    ),
]


@pytest.mark.parametrize(
    ("name", "filename", "content", "timeframe", "expected"),
    BAD_INPUTS,
    ids=[case[0] for case in BAD_INPUTS],
)
def test_bad_input_exits_with_a_specific_message_and_writes_nothing(
    cli: Callable[..., CliResult],
    tmp_path: Path,
    name: str,
    filename: str,
    content: bytes,
    timeframe: str,
    expected: list[str],
) -> None:
    source = tmp_path / filename
    source.write_bytes(content)
    userdir = tmp_path / "userdir"
    result = cli(
        "data",
        "import",
        source,
        "--pair",
        "BTC/USDT",
        "--timeframe",
        timeframe,
        "--userdir",
        userdir,
    )
    assert result.code == 2, result
    assert str(source) in result.err
    for part in expected:
        assert part in result.err, f"{part!r} not in {result.err!r}"
    assert "Traceback" not in result.err + result.out
    assert not userdir.exists(), "nothing may be written on bad input"


def test_missing_file(cli: Callable[..., CliResult], tmp_path: Path) -> None:
    result = cli("data", "import", tmp_path / "nope.csv", "--pair", "BTC/USDT", "--timeframe", "1h")
    assert result.code == 2
    assert "nope.csv: file not found" in result.err


def test_bad_pair_and_timeframe(cli: Callable[..., CliResult], tmp_path: Path) -> None:
    source = tmp_path / "ok.csv"
    source.write_text(HEADER + "\n".join(GOOD) + "\n")
    bad_pair = cli(
        "data",
        "import",
        source,
        "--pair",
        "BTCUSDT",
        "--timeframe",
        "1h",
        "--userdir",
        tmp_path / "u",
    )
    assert bad_pair.code == 2 and "invalid pair 'BTCUSDT'" in bad_pair.err
    assert "did you mean BTC/USDT?" in bad_pair.err
    # a backtest of such a pair says so too (before: it suggested importing BTCUSDT,
    # which the import then refused)
    backtest = cli(
        "backtest", "--pair", "ethbtc", "--timeframe", "1h", "--timerange", "20200101-20200201",
        "--userdir", tmp_path / "u",
    )  # fmt: skip
    assert backtest.code == 2 and "did you mean ETH/BTC?" in backtest.err
    assert "data import" not in backtest.err
    bad_tf = cli(
        "data",
        "import",
        source,
        "--pair",
        "BTC/USDT",
        "--timeframe",
        "1 hour",
        "--userdir",
        tmp_path / "u",
    )
    assert bad_tf.code == 2 and "'1 hour' is not a timeframe" in bad_tf.err
    assert not (tmp_path / "u").exists()


def test_check_before_import_says_how_to_import(
    cli: Callable[..., CliResult], tmp_path: Path
) -> None:
    result = cli("data", "check", "--pair", "BTC/USDT", "--timeframe", "1h", "--userdir", tmp_path)
    assert result.code == 2
    assert "no BTC/USDT 1h candles" in result.err
    assert "tradingbot data import" in result.err


def test_import_then_check_prints_the_report(cli: Callable[..., CliResult], tmp_path: Path) -> None:
    source = tmp_path / "ok.csv"
    source.write_text(HEADER + "\n".join(GOOD) + "\n")
    imported = cli(
        "data",
        "import",
        source,
        "--pair",
        "BTC/USDT",
        "--timeframe",
        "1h",
        "--userdir",
        tmp_path / "u",
        "--json",
    )
    assert imported.code == 0, imported.err
    checked = cli(
        "data",
        "check",
        "--pair",
        "BTC/USDT",
        "--timeframe",
        "1h",
        "--userdir",
        tmp_path / "u",
        "--json",
    )
    assert checked.code == 0
    assert checked.out == imported.out


@requires_shared
@pytest.mark.shared_data
def test_real_import_table_names_the_defects(cli: Callable[..., CliResult], tmp_path: Path) -> None:
    result = cli(
        "data", "import", BTC_1H, "--pair", "BTC/USDT", "--timeframe", "1h", "--userdir", tmp_path
    )
    assert result.code == 0, result.err
    text = " ".join(result.out.split())
    for part in [
        "2 concatenated",
        "2,649 timestamps in more than one export",
        "1,435 conflicting",
        "8 gaps, 16 missing candles",
        "open=16199.9",
    ]:
        assert part in text, part
    assert (tmp_path / "data" / "binance" / "BTC_USDT-1h.feather").exists()
    assert (tmp_path / "data" / "binance" / "BTC_USDT-1h.report.json").exists()


@pytest.mark.parametrize(
    "args",
    [
        [],
        ["--help"],
        ["data", "--help"],
        ["data", "import", "--help"],
        ["data", "check", "--help"],
        ["features", "--help"],
        ["features", "build", "--help"],
        ["demo", "--help"],
    ],
)
def test_help_everywhere(cli: Callable[..., CliResult], args: list[str]) -> None:
    result = cli(*args)
    assert "Usage" in result.out + result.err
    assert result.code in (0, 2) if not args else result.code == 0


def test_odd_timeframes_and_unknown_models_get_the_right_message(
    cli: Callable[..., CliResult], tmp_path: Path
) -> None:
    spec = Path(__file__).resolve().parents[2] / "experiments" / "specs" / "btc_1h_lightgbm.toml"
    odd = cli("train", spec, "--timeframe", "7m", "--userdir", tmp_path)
    assert odd.code == 2 and "'7m' is not a timeframe" in odd.err and "import" not in odd.err
    backtest = cli(
        "backtest",
        "--pair",
        "BTC/USDT",
        "--timeframe",
        "7m",
        "--timerange",
        "20200101-20200201",
        "--userdir",
        tmp_path,
    )
    assert backtest.code == 2 and "'7m' is not a timeframe" in backtest.err
    nope = cli("promote", "nope", "--version", "1", "--reason", "r", "--userdir", tmp_path)
    assert nope.code == 2 and "no model named 'nope'" in nope.err


def test_version(cli: Callable[..., CliResult]) -> None:
    import importlib.metadata

    result = cli("--version")
    assert (
        result.code == 0 and f"tradingbot {importlib.metadata.version('tradingbot')}" in result.out
    )
