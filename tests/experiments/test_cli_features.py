"""`tradingbot features build`: parquet with lineage, and a cache that makes rebuilds free."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from common.layout import UserDir
from features.data import import_candles
from features.feature_spec import default_spec
from features.frames import METADATA_KEY, read_feature_file
from features.pipeline import build
from tests.conftest import CliResult


@pytest.fixture
def userdir(tmp_path: Path, synthetic_candles: pd.DataFrame) -> Path:
    source = tmp_path / "synthetic.feather"
    synthetic_candles.to_feather(source)
    import_candles(
        source, pair="BTC/USDT", timeframe="1h", exchange="binance", layout=UserDir(tmp_path / "ud")
    )
    return tmp_path / "ud"


def test_build_writes_parquet_with_spec_hash_and_window(
    cli: Callable[..., CliResult], userdir: Path, tmp_path: Path, synthetic_candles: pd.DataFrame
) -> None:
    out = tmp_path / "out" / "features.parquet"
    result = cli(
        "features",
        "build",
        "--pair",
        "BTC/USDT",
        "--timeframe",
        "1h",
        "--userdir",
        userdir,
        "--out",
        out,
    )
    assert result.code == 0, result.err
    frame, meta = read_feature_file(out)
    assert meta.spec_hash == default_spec().hash
    assert meta.window.rows == len(synthetic_candles)
    assert meta.warmup_rows == 168
    pd.testing.assert_frame_equal(frame, build(synthetic_candles, default_spec()))
    assert METADATA_KEY in pq.read_schema(out).metadata
    sidecar = json.loads(out.with_name(out.name + ".meta.json").read_text())
    assert sidecar["spec_hash"] == meta.spec_hash
    assert sidecar["window"]["sha256"] == meta.window.sha256
    assert "miss" in result.out


def test_repeated_build_comes_from_the_cache(
    cli: Callable[..., CliResult], userdir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    args = ["features", "build", "--pair", "BTC/USDT", "--timeframe", "1h", "--userdir", userdir]
    assert cli(*args, "--out", tmp_path / "a.parquet").code == 0

    def must_not_build(*_: object, **__: object) -> pd.DataFrame:
        raise AssertionError("the pipeline ran again for the same data and spec")

    monkeypatch.setattr("features.frames.build", must_not_build)
    again = cli(*args, "--out", tmp_path / "b.parquet")
    assert again.code == 0, again.err
    assert "hit" in again.out
    pd.testing.assert_frame_equal(
        read_feature_file(tmp_path / "a.parquet")[0], read_feature_file(tmp_path / "b.parquet")[0]
    )


def test_build_with_a_spec_file_and_errors(
    cli: Callable[..., CliResult], userdir: Path, tmp_path: Path
) -> None:
    spec = tmp_path / "spec.toml"
    spec.write_text('[[features]]\nkind = "rsi"\nwindows = [7]\n')
    out = tmp_path / "rsi.parquet"
    result = cli(
        "features",
        "build",
        "--pair",
        "BTC/USDT",
        "--timeframe",
        "1h",
        "--userdir",
        userdir,
        "--spec",
        spec,
        "--out",
        out,
    )
    assert result.code == 0, result.err
    assert read_feature_file(out)[1].columns == ["%-rsi_7"]

    spec.write_text('[[features]]\nkind = "rsi"\nwindow = [7]\n')
    bad = cli(
        "features",
        "build",
        "--pair",
        "BTC/USDT",
        "--timeframe",
        "1h",
        "--userdir",
        userdir,
        "--spec",
        spec,
        "--out",
        tmp_path / "x.parquet",
    )
    assert bad.code == 2 and "features[0].rsi.window: Extra inputs are not permitted" in bad.err
    assert not (tmp_path / "x.parquet").exists()

    missing = cli(
        "features",
        "build",
        "--pair",
        "ETH/USDT",
        "--timeframe",
        "1h",
        "--userdir",
        userdir,
        "--out",
        tmp_path / "y.parquet",
    )
    assert missing.code == 2 and "no ETH/USDT 1h candles" in missing.err
