"""A backtest with any --userdir trades the strategy values tuned into that user dir."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from common.layout import UserDir
from experiments.backtesting.run import backtest
from experiments.spec import parse_experiment
from experiments.training import train
from features.data import import_candles
from features.data.synthetic import generate
from ml.registry import promote
from ml.tracking import configure, default_tracking_uri
from strategies.catalogue import introspect
from strategies.params import default_params, with_values
from strategies.runner import REPO_STRATEGIES
from tests.conftest import local_context


@pytest.mark.slow
def test_the_user_dirs_tuned_values_reach_freqtrade(tmp_path: Path) -> None:
    candles, _ = generate(3000, seed=41)
    candles["date"] = pd.date_range("2021-01-01", periods=len(candles), freq="1h", tz="UTC").astype(
        "datetime64[ns, UTC]"
    )
    candles.to_feather(tmp_path / "c.feather")
    userdir = tmp_path / "ud"
    import_candles(
        tmp_path / "c.feather",
        pair="BTC/USDT",
        timeframe="1h",
        exchange="binance",
        layout=UserDir(userdir),
    )
    spec = parse_experiment(
        {
            "name": "tuned_lgbm",
            "data": {"timerange": "-20210301"},
            "regime": {"n_restarts": 1, "n_iter": 20},
            "model": {"kind": "lightgbm", "params": {"n_estimators": 20, "num_leaves": 7}},
            "walk_forward": {"folds": 1, "test_size": 200},
        },
        source="test",
    )
    uri = default_tracking_uri(userdir)
    result = train(spec, context=local_context(userdir, uri))
    promote(
        configure(uri, UserDir(userdir)),
        "tuned_lgbm",
        result.version,
        "test",
        user="pytest",
        force=True,
    )
    info = {i.name: i for i in introspect(REPO_STRATEGIES)}["RegimeStrategy"]
    tuned = with_values(default_params(info), {"entry_threshold": 0.61, "stoploss": -0.07})
    tuned.write(userdir / "strategies")

    summary = backtest(
        strategy="RegimeStrategy",
        pair="BTC/USDT",
        timeframe="1h",
        exchange="binance",
        timerange="20210305-20210420",
        model="tuned_lgbm@champion",
        context=local_context(userdir, uri),
    )
    log = next((userdir / "backtest_results" / "tradingbot").rglob("freqtrade.log")).read_text()
    assert "entry_threshold = 0.61" in log
    assert "Strategy Parameter(default): entry_threshold" not in log
    tags = configure(uri, UserDir(userdir)).get_run(summary.run_id).data.tags
    assert tags["strategy_params_sha256"] != "defaults"
    # the backtest says which parameter file it traded (before: silently)
    assert summary.params_file == userdir / "strategies" / "RegimeStrategy.json"
    from rich.console import Console

    from tradingbot.render_backtest import backtest_summary

    console = Console(record=True, width=200)
    backtest_summary(console, summary)
    text = " ".join(console.export_text().split())
    assert f"strategy parameters: {summary.params_file} (tuned values)" in text
    # two drawdowns, each saying what it measures (before: Freqtrade's had no label)
    assert "max drawdown (closed trades, account)" in text
    assert "Sortino (closed trades)" in text and "Calmar (closed" not in text  # one Calmar: mtm
    assert "marked to market at every close (drawdowns inside open trades count)" in text
    # ...and Freqtrade's own tools open what we stored
    import subprocess
    import sys

    shown = subprocess.run(
        [
            sys.executable,
            "-m",
            "freqtrade",
            "backtesting-show",
            "--backtest-filename",
            str(summary.result_zip),
            "--userdir",
            str(userdir),
            "-c",
            str(summary.result_zip.parent / "config.json"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert shown.returncode == 0, shown.stderr[-2000:]
    assert "RegimeStrategy" in shown.stdout
