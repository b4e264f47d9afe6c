"""Real Freqtrade backtests, offline and reproducible, recorded in MLflow."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from common.layout import UserDir
from experiments.backtesting.run import backtest
from experiments.spec import parse_experiment
from experiments.training import train
from features.data import import_candles, load_candles
from ml.registry import promote
from ml.serving.served import logged_folds
from ml.tracking import configure, default_tracking_uri
from strategies.catalogue import introspect
from strategies.params import default_params, with_file
from strategies.replay import replay
from strategies.results import parse_result_zip
from strategies.runner import REPO_STRATEGIES
from tests.conftest import (
    BTC_1H,
    FREQTRADE_TESTDATA,
    import_synthetic,
    local_context,
    requires_shared,
)

pytestmark = [requires_shared, pytest.mark.shared_data, pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[2]
CAN_UNSHARE = (
    shutil.which("unshare") is not None
    and subprocess.run(["unshare", "-n", "true"], capture_output=True).returncode == 0
)


def _strategy_info(name: str):  # type: ignore[no-untyped-def]
    return {info.name: info for info in introspect(REPO_STRATEGIES)}[name]


def _train_and_promote(userdir: Path, name: str, pair: str, timeframe: str, timerange: str) -> None:
    spec = parse_experiment(
        {
            "name": name,
            "seed": 3,
            "data": {"pair": pair, "timeframe": timeframe, "timerange": timerange},
            "regime": {"n_states": 3, "n_restarts": 1, "n_iter": 40},
            "model": {
                "kind": "lightgbm",
                "params": {"n_estimators": 60, "num_leaves": 7, "min_child_samples": 100},
            },
            "walk_forward": {"folds": 2},
        },
        source="test",
    )
    uri = default_tracking_uri(userdir)
    # the fold bundles and predictions kept, to compare the stitching with them
    result = train(spec, context=local_context(userdir, uri), keep_folds=True)
    promote(
        configure(uri, UserDir(userdir)),
        name,
        result.version,
        "backtest test",
        user="pytest",
        force=True,
    )


@pytest.fixture(scope="module")
def btc(tmp_path_factory: pytest.TempPathFactory) -> Path:
    userdir = tmp_path_factory.mktemp("bt") / "ud"
    import_candles(
        BTC_1H, pair="BTC/USDT", timeframe="1h", exchange="binance", layout=UserDir(userdir)
    )
    _train_and_promote(userdir, "bt_btc_lgbm", "BTC/USDT", "1h", "20180101-20200101")
    return userdir


def test_model_trained_to_2020_backtests_offline_on_freqtrade_and_is_recorded(
    btc: Path, tmp_path: Path
) -> None:
    env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true"}
    env.pop("MLFLOW_TRACKING_URI", None)  # the store is the user dir's own
    command = [
        sys.executable,
        "-m",
        "tradingbot",
        "backtest",
        "--pair",
        "BTC/USDT",
        "--timeframe",
        "1h",
        "--timerange",
        "20200101-20210601",
        "--model",
        "bt_btc_lgbm@champion",
        "--userdir",
        str(btc),
    ]
    if CAN_UNSHARE:  # a network namespace with no interfaces: any network call would fail
        command = ["unshare", "-n", *command]
    completed = subprocess.run(
        command, capture_output=True, text=True, env=env, cwd=ROOT, timeout=900
    )
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    assert "Sharpe (daily wallet balance)" in completed.stdout

    client = MlflowClient(default_tracking_uri(btc))
    experiment = client.get_experiment_by_name("backtests")
    runs = client.search_runs([experiment.experiment_id])
    assert len(runs) == 1
    run = runs[0]
    assert run.info.status == "FINISHED"
    assert run.data.tags["model"] == "bt_btc_lgbm@champion"
    version = client.get_model_version_by_alias("bt_btc_lgbm", "champion")
    assert run.data.tags["model_version"] == str(version.version)
    assert run.data.tags["model_run_id"] == version.run_id
    for key in (
        "profit_total",
        "cagr",  # annualised: recorded, as the window is 17 months long
        "sharpe_trades",
        "sharpe_wallet",
        "sortino",
        "max_drawdown_account",
        "trades",
        "winrate",
        "profit_factor",
        "expectancy",
        "exposure",
        "avg_trade_duration_s",
    ):
        assert f"closed.{key}" in run.data.metrics, key  # Freqtrade's closed-trade figures
    assert run.data.metrics["closed.trades"] > 0
    assert run.data.metrics["guard.excluded_candles"] == 0  # the timerange starts after training
    files = {a.path for a in client.list_artifacts(run.info.run_id, "results")}
    assert {
        "results/result.zip",
        "results/per_regime.csv",
        "results/guard.json",
        "results/config.json",
    } <= files
    local = Path(
        client.download_artifacts(run.info.run_id, "results/per_regime.csv", str(tmp_path))
    )
    table = pd.read_csv(local)
    assert list(table.columns) == ["regime", "trades", "profit_total_abs", "profit_mean", "winrate"]
    assert table["trades"].sum() == run.data.metrics["closed.trades"]
    assert set(table["regime"]) <= {"bull", "sideways", "bear", "unknown"}


def test_golden_master_real_btc_same_inputs_same_metrics(btc: Path) -> None:
    uri = default_tracking_uri(btc)
    kwargs = dict(
        strategy="RegimeStrategy",
        pair="BTC/USDT",
        timeframe="1h",
        exchange="binance",
        timerange="20200601-20200901",
        model="bt_btc_lgbm@champion",
        context=local_context(btc, uri),
    )
    first = backtest(**kwargs, use_cache=False)  # type: ignore[arg-type]
    second = backtest(**kwargs, use_cache=False)  # type: ignore[arg-type]
    assert not first.cache_hit and not second.cache_hit
    assert first.metrics == second.metrics
    pd.testing.assert_frame_equal(first.per_regime, second.per_regime)
    trades_a = parse_result_zip(first.result_zip, "RegimeStrategy").trades
    assert len(trades_a) == first.metrics.trades
    cached = backtest(**kwargs)  # type: ignore[arg-type]
    assert cached.cache_hit and cached.metrics == first.metrics


def test_overlapping_timerange_is_guarded(btc: Path) -> None:
    from experiments.backtesting.run import BACKTEST_STAGES

    stages: list[str] = []
    summary = backtest(
        strategy="RegimeStrategy",
        pair="BTC/USDT",
        timeframe="1h",
        exchange="binance",
        timerange="20191201-20200115",
        model="bt_btc_lgbm@champion",
        context=local_context(btc, default_tracking_uri(btc)),
        progress=stages.append,
    )
    assert stages == list(BACKTEST_STAGES)
    excluded = summary.guard["in_training_window"]["BTC/USDT"]  # type: ignore[index]
    assert 700 <= excluded <= 744  # December 2019, up to the last training candle
    # buy and hold and the trend rules are compared on the candles the strategy could trade
    train_end = pd.Timestamp(summary.guard["train_window_last"])  # type: ignore[arg-type]
    assert summary.compared_from is not None
    assert train_end < summary.compared_from <= train_end + pd.Timedelta(hours=1)
    client = configure(default_tracking_uri(btc), UserDir(btc))
    run = client.get_run(summary.run_id)
    assert pd.Timestamp(run.data.tags["guard.compared_from"]) == summary.compared_from
    assert all(
        pd.Timestamp(t) > pd.Timestamp("2019-12-31T22:00Z")
        for t in parse_result_zip(summary.result_zip, "RegimeStrategy").trades["open_date"]
    )


def test_golden_master_on_freqtrade_test_candles(tmp_path: Path) -> None:
    userdir = tmp_path / "ud"
    import_candles(
        FREQTRADE_TESTDATA / "ETH_BTC-5m.feather",
        pair="ETH/BTC",
        timeframe="5m",
        exchange="binance",
        layout=UserDir(userdir),
    )
    _train_and_promote(userdir, "bt_eth_lgbm", "ETH/BTC", "5m", "20180110-20180122")
    kwargs = dict(
        strategy="RegimeStrategy",
        pair="ETH/BTC",
        timeframe="5m",
        exchange="binance",
        timerange="20180122-20180130",
        model="bt_eth_lgbm@champion",
        context=local_context(userdir, default_tracking_uri(userdir)),
    )
    first = backtest(**kwargs, use_cache=False)  # type: ignore[arg-type]
    second = backtest(**kwargs, use_cache=False)  # type: ignore[arg-type]
    assert first.metrics == second.metrics
    assert first.metrics.start == pd.Timestamp("2018-01-22", tz="UTC")
    # the result folder's rerun.sh runs the same Freqtrade backtest again, outside tradingbot
    import subprocess

    from strategies.freqtrade_process import backtest_environment
    from strategies.results import parse_result_zip

    folder = second.result_zip.parent
    before = set(folder.rglob("*.zip"))
    done = subprocess.run(
        ["sh", str(folder / "rerun.sh")],
        capture_output=True, text=True, timeout=600, env=backtest_environment(os.environ),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    (rerun,) = set(folder.rglob("*.zip")) - before
    assert parse_result_zip(rerun, "RegimeStrategy").metrics == second.metrics


def test_walk_forward_backtest_uses_each_fold_bundle_on_its_own_window(
    btc: Path, tmp_path: Path
) -> None:
    uri = default_tracking_uri(btc)
    summary = backtest(
        strategy="RegimeStrategy",
        pair="BTC/USDT",
        timeframe="1h",
        exchange="binance",
        timerange="",
        model="bt_btc_lgbm@champion",
        context=local_context(btc, uri),
        walk_forward=True,
    )
    client = MlflowClient(uri)
    run = client.get_run(summary.run_id)
    assert run.data.tags["walk_forward"] == "true" and run.data.tags["walk_forward.folds"] == "2"

    model_run = run.data.tags["model_run_id"]
    folds = logged_folds(client, model_run, tmp_path / "folds")
    windows = sorted(
        (pd.Timestamp(f["out_of_sample"]["first"]), pd.Timestamp(f["out_of_sample"]["last"]))
        for f in folds
    )
    stitched = pd.read_parquet(
        next(
            (btc / "backtest_results" / "tradingbot" / "walk_forward").rglob(
                "walk_forward_predictions.parquet"
            )
        )
    )
    assert stitched["date"].min() == windows[0][0] and stitched["date"].max() == windows[-1][1]
    # the stitched predictions are exactly what each fold's bundle predicted out of sample in training
    logged = (
        pd.concat(
            pd.read_parquet(
                client.download_artifacts(
                    model_run,
                    f"walk_forward/fold_{f['fold']}/predictions.parquet",
                    str(tmp_path / str(f["fold"])),
                )
            )
            for f in folds
        )
        .sort_values("date")
        .reset_index(drop=True)
    )
    pd.testing.assert_series_equal(
        stitched["p_up"].reset_index(drop=True), logged["p_up"], check_exact=True
    )
    trades = parse_result_zip(summary.result_zip, "RegimeStrategy").trades
    assert len(trades) > 0
    assert trades["open_date"].min() >= windows[0][0]
    assert trades["open_date"].max() <= windows[-1][1]

    # The replay that scores tuning trials, on the same predictions and candles, finds the
    # same trades as the real engine (measured agreement; see docs/TUNING.md).
    candles = load_candles(UserDir(btc), "binance", "BTC/USDT", "1h")
    window = candles[candles["date"].between(stitched["date"].min(), stitched["date"].max())]
    window = window.reset_index(drop=True)
    predictions = stitched.set_index("date").reindex(window["date"]).reset_index(drop=True)
    replayed = replay(
        window,
        predictions,
        # what Freqtrade trades with: the source's defaults, or a tuned parameter file
        with_file(default_params(_strategy_info("RegimeStrategy")), REPO_STRATEGIES),
        fee=0.001,
        timeframe="1h",
    ).trades
    ours = {
        (window["date"][t.entry_index], window["date"][t.exit_index], t.exit_reason)
        for t in replayed.itertuples()
    }
    engine_reasons = ("roi", "stop_loss", "trailing_stop_loss", "force_exit")
    theirs = {  # an exit signal's reason is the strategy's exit tag
        (
            t.open_date,
            t.close_date,
            t.exit_reason if t.exit_reason in engine_reasons else "exit_signal",
        )
        for t in trades.itertuples()
    }
    agreement = len(ours & theirs) / max(len(ours | theirs), 1)
    print(f"replay vs Freqtrade: {len(ours)} vs {len(theirs)} trades, agreement {agreement:.3f}")
    assert agreement >= 0.9, sorted(ours ^ theirs)[:10]
    replayed["open_date"] = window["date"][replayed["entry_index"]].to_numpy()
    matched = trades.merge(replayed, on="open_date", suffixes=("", "_replay"))
    gap = (matched["profit_ratio"] - matched["profit_ratio_replay"]).abs()
    print(f"profit ratio per trade: max difference {gap.max():.2e}")
    assert gap.max() < 1e-4


def test_a_backtest_reads_its_candles_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The cache key (the candles' sha256) and the evaluation (the rules on the same
    candles) share one read; Freqtrade reads its own copy in its own process."""
    import sys

    import features.data
    import features.data.store
    import ml.serving.served
    import strategies.runner

    userdir = tmp_path / "ud"
    import_synthetic(userdir, "BTC/USDT", candles=1200, seed=5)
    reads: list[str] = []
    original = features.data.store.load_candles

    def counted(userdir: Path, exchange: str, pair: str, timeframe: str) -> pd.DataFrame:
        reads.append(pair)
        return original(userdir, exchange, pair, timeframe)

    # (``experiments.backtesting.run`` is also the name of the package's function: by its key)
    backtest_module = sys.modules["experiments.backtesting.run"]
    readers = (features.data.store, features.data, strategies.runner, ml.serving.served)
    for module in (*readers, backtest_module):
        monkeypatch.setattr(module, "load_candles", counted, raising=False)
    backtest(
        strategy="TrendPullbackStrategy",
        pair="BTC/USDT",
        timeframe="1h",
        exchange="binance",
        timerange="",
        model=None,
        context=local_context(userdir, default_tracking_uri(userdir)),
        use_cache=False,
    )
    assert reads == ["BTC/USDT"], reads
