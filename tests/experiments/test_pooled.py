"""Pooled models: one model over a whitelist, causal across pairs, served to each pair."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from common.errors import SpecError
from common.layout import UserDir
from experiments.spec import parse_experiment
from features.data import load_candles
from ml.bundle import BundleError
from ml.serving.served import logged_folds
from ml.tracking import configure, default_tracking_uri
from tests.conftest import CliResult, import_synthetic, local_context

PAIRS = ("ETH/USDT", "XRP/USDT", "ADA/USDT")
SPEC = """
name = "pool"
seed = 5

[data]
pairs = ["ETH/USDT", "XRP/USDT", "ADA/USDT"]
pooling = "pooled"
timeframe = "1h"
timerange = "-20210301"

[backtest]
timerange = "20210301-20210322"

[regime]
n_restarts = 1
n_iter = 20

[model]
kind = "lightgbm"
params = { n_estimators = 20, num_leaves = 7, min_child_samples = 20 }

[walk_forward]
folds = 2
test_size = 300
"""


@pytest.fixture(scope="module")
def pooled(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, str]:
    """Three synthetic pairs with different starts and price levels, and a pooled model
    trained on them through the CLI."""
    from tradingbot import run

    tmp = tmp_path_factory.mktemp("pooled")
    userdir = tmp / "ud"
    for index, pair in enumerate(PAIRS):
        scale = 10.0**index  # 1x, 10x, 100x prices: per-pair scaling has work to do

        def rescale(frame: pd.DataFrame, scale: float = scale) -> None:
            frame[["open", "high", "low", "close"]] *= scale

        start = f"2021-01-0{1 + index}"  # the pairs' calendars differ
        import_synthetic(
            userdir, pair, candles=2000 - 40 * index, seed=21 + index, start=start, change=rescale
        )
    spec_path = tmp / "pool.toml"
    spec_path.write_text(SPEC)
    assert run(["train", str(spec_path), "--userdir", str(userdir)]) == 0
    return userdir, spec_path, default_tracking_uri(userdir)


def test_one_model_is_registered_for_the_whitelist_with_every_pair_scored(
    pooled: tuple[Path, Path, str], tmp_path: Path
) -> None:
    userdir, _, uri = pooled
    client = configure(uri, UserDir(userdir))
    version = client.get_model_version_by_alias("pool", "challenger")
    assert version.tags["pooled_pairs"] == ",".join(PAIRS)
    for pair in PAIRS:  # no model per pair
        assert not client.search_registered_models(f"name = 'pool__{pair.replace('/', '_')}'")
    run = client.get_run(str(version.run_id))
    metrics = run.data.metrics
    per_pair = [metrics[f"overall.{p.replace('/', '_')}.total_return"] for p in PAIRS]
    assert metrics["overall.total_return"] == pytest.approx(np.mean(per_pair))
    assert run.data.tags["overall.aggregate"].startswith("mean of the pairs' figures")
    assert {"baseline.always_long.total_return", "baseline.sma50_daily.max_drawdown"} <= set(
        metrics
    )
    assert "overall.calmar" not in metrics  # 25 days out of sample: too short to annualise
    folds = logged_folds(client, run.info.run_id, tmp_path)
    assert len(folds) == 2 and all("ETH_USDT.accuracy" in f["metrics"] for f in folds)
    per_fold = client.get_metric_history(run.info.run_id, "fold.ETH_USDT.accuracy")
    assert sorted(m.step for m in per_fold) == [0, 1]


def test_folds_are_cut_on_the_common_calendar(pooled: tuple[Path, Path, str]) -> None:
    """No pair trains on a candle at or after the first candle any pair is tested on."""
    from experiments.training.data import training_job

    userdir, spec_path, _ = pooled
    from experiments.spec import load_experiment

    spec = load_experiment(spec_path)
    job = training_job(spec, UserDir(userdir), None, lambda _text: None)
    folds = job.folds()
    for fold in folds:
        trained = job.rows(fold.train_start, fold.train_end)
        tested = job.rows(fold.test_start, fold.test_end)
        last_trained = max(
            d.candles["date"].iloc[trained[d.pair]].max()
            for d in job.markets
            if len(d.candles.iloc[trained[d.pair]])
        )
        first_tested = min(d.candles["date"].iloc[tested[d.pair]].min() for d in job.markets)
        assert last_trained < first_tested
        assert all(tested[d.pair].stop > tested[d.pair].start for d in job.markets)


def test_a_pairs_predictions_are_causal_and_use_its_own_scaling(
    pooled: tuple[Path, Path, str],
) -> None:
    from ml.model_source import load_bundle

    userdir, _, _ = pooled
    bundle = load_bundle("models:/pool@challenger")
    assert bundle.pooled and bundle.metadata.pairs == list(PAIRS)
    xrp = load_candles(UserDir(userdir), "binance", "XRP/USDT", "1h")
    bound = bundle.for_pair("XRP/USDT")
    full = bound.predict(xrp)
    prefix = bound.predict(xrp.iloc[:1500])
    columns = [c for c in full.columns if c.startswith("p_") or c == "prediction"]
    np.testing.assert_array_equal(
        prefix[columns].to_numpy(dtype="float64"), full[columns].iloc[:1500].to_numpy("float64")
    )
    scaled = bound.features(xrp)
    # the pair's training rows were scaled to mean 0 and std 1, whatever its price level
    trained = scaled[scaled["date"] <= pd.Timestamp(bundle.metadata.train_window.last)]
    assert abs(np.nanmean(trained["%-close_zscore_24"])) < 0.5
    eth = bundle.for_pair("ETH/USDT").features(
        load_candles(UserDir(userdir), "binance", "ETH/USDT", "1h")
    )
    assert not np.allclose(
        eth["%-log_volume_zscore_24"].iloc[-50:], scaled["%-log_volume_zscore_24"].iloc[-50:]
    )
    with pytest.raises(BundleError, match="not trained on BTC/USDT"):
        bundle.for_pair("BTC/USDT")
    with pytest.raises(BundleError, match="for_pair"):
        bundle.predict(xrp)  # which pair's scaling? never guessed
    # the MLflow pyfunc is asked for a pair the same way
    import mlflow

    pyfunc = mlflow.pyfunc.load_model("models:/pool@challenger")
    tail = xrp.iloc[-300:].reset_index(drop=True)
    served = pyfunc.predict(tail, params={"pair": "XRP/USDT"})
    np.testing.assert_array_equal(
        served["prediction"].to_numpy(), bound.predict(tail)["prediction"].to_numpy()
    )


def test_the_adapter_serves_each_pair_and_refuses_others(pooled: tuple[Path, Path, str]) -> None:
    from ml.serving import ModelAdapter

    userdir, _, uri = pooled
    adapter = ModelAdapter("models:/pool@challenger", tracking_uri=uri)
    for pair in PAIRS:
        served = adapter.populate(load_candles(UserDir(userdir), "binance", pair, "1h"), pair)
        assert served["do_predict"].sum() > 0, pair
    # live, one candle at a time: the same values as the batch, with the pair's scaling
    xrp = load_candles(UserDir(userdir), "binance", "XRP/USDT", "1h")
    xrp["date"] = xrp["date"].astype("datetime64[ms, UTC]")  # as Freqtrade hands it over
    batch = ModelAdapter("models:/pool@challenger", tracking_uri=uri).populate(xrp, "XRP/USDT")
    live = ModelAdapter("models:/pool@challenger", tracking_uri=uri)
    live.populate(xrp.iloc[:1600].copy(), "XRP/USDT", live=True)
    columns = ["&-prediction", "&-p_up", *[c for c in batch.columns if c.startswith("&-p_")]]
    for end in range(1601, 1611):
        out = live.populate(xrp.iloc[end - 1200 : end].copy(), "XRP/USDT", live=True)
        np.testing.assert_allclose(
            out[columns].to_numpy(dtype="float64")[-1],
            batch[columns].to_numpy(dtype="float64")[end - 1],
            rtol=1e-7,
            atol=1e-9,
        )
        assert out["&-regime"].iloc[-1] == batch["&-regime"].iloc[end - 1]
    other = load_candles(UserDir(userdir), "binance", "ETH/USDT", "1h")
    refused = adapter.populate(other, "BTC/USDT")
    assert (refused["do_predict"] == 0).all()
    assert "not BTC/USDT" in adapter.guard.unavailable["BTC/USDT"]


def test_a_whitelist_backtest_serves_every_pair_from_the_pooled_model(
    pooled: tuple[Path, Path, str], cli: Callable[..., CliResult], tmp_path: Path
) -> None:
    userdir, spec_path, uri = pooled
    client = configure(uri, UserDir(userdir))
    assert (
        cli("promote", "pool", "--reason", "pooled test", "--force", "--userdir", userdir).code == 0
    )
    done = cli("backtest", spec_path, "--userdir", userdir)
    assert done.code == 0, done.err
    backtests = client.get_experiment_by_name("backtests")
    assert backtests is not None
    run = client.search_runs([backtests.experiment_id], order_by=["attributes.start_time DESC"])[0]
    assert run.data.tags["whitelist"] == ",".join(PAIRS)
    assert {"pair.ETH_USDT.trades", "baseline.always_long.total_return"} <= set(run.data.metrics)
    guard = json.loads(
        Path(
            client.download_artifacts(run.info.run_id, "results/guard.json", str(tmp_path))
        ).read_text()
    )
    assert guard["model_uri"] == "models:/pool/1"
    assert all(guard["trusted"][pair] > 0 for pair in PAIRS)
    reported = cli("report", "--userdir", userdir, "--out", tmp_path / "report")
    assert reported.code == 0, reported.err
    report = (tmp_path / "report" / "report.md").read_text()
    assert "pool" in report and "3 pairs 1h" in report


def test_a_walk_forward_backtest_trades_each_pairs_out_of_sample_predictions(
    pooled: tuple[Path, Path, str], cli: Callable[..., CliResult], tmp_path: Path
) -> None:
    """The folds' predictions of each pair, as training scored them, drive one Freqtrade
    backtest of the whitelist."""
    userdir, spec_path, uri = pooled
    client = configure(uri, UserDir(userdir))
    if not client.get_registered_model("pool").aliases.get("champion"):
        assert (
            cli("promote", "pool", "--reason", "pooled test", "--force", "--userdir", userdir).code
            == 0
        )
    done = cli("backtest", spec_path, "--walk-forward", "--userdir", userdir)
    assert done.code == 0, done.err
    backtests = client.get_experiment_by_name("backtests")
    assert backtests is not None
    run = client.search_runs([backtests.experiment_id], order_by=["attributes.start_time DESC"])[0]
    assert run.data.tags["walk_forward"] == "true" and run.data.tags["walk_forward.folds"] == "2"
    guard = json.loads(
        Path(
            client.download_artifacts(run.info.run_id, "results/guard.json", str(tmp_path))
        ).read_text()
    )
    # every pair's candles in the folds' test blocks are out of sample, and traded
    assert all(guard["trusted"][pair] > 0 for pair in PAIRS)
    assert all(guard["in_training_window"][pair] == 0 for pair in PAIRS)
    assert guard["model_uri_by_pair"] == {pair: "models:/pool/1" for pair in PAIRS}


def test_bad_pooled_specs_say_why(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="two or more pairs"):
        parse_experiment({"name": "p", "data": {"pooling": "pooled"}}, source="t")
    spec = parse_experiment(
        {
            "name": "p",
            "data": {"pairs": ["ETH/USDT", "XRP/USDT"], "pooling": "pooled"},
            "model": {"kind": "lstm", "params": {"sequence_length": 8, "max_epochs": 1}},
        },
        source="t",
    )
    from experiments.training import train

    userdir = tmp_path / "ud"
    for seed, pair in enumerate(("ETH/USDT", "XRP/USDT"), start=3):
        import_synthetic(userdir, pair, candles=900, seed=seed)
    uri = default_tracking_uri(userdir)
    with pytest.raises(SpecError, match="cannot be pooled"):
        train(spec, context=local_context(userdir, uri))
    assert not (userdir / "mlflow.db").exists()  # said before anything was recorded


def test_retrain_and_tune_of_a_pooled_spec_say_they_are_not_available(
    pooled: tuple[Path, Path, str], cli: Callable[..., CliResult], tmp_path: Path
) -> None:
    """Both work per pair; on a pooled spec they would train a per-pair model under the
    pooled model's name, so they refuse instead."""
    userdir, spec_path, _ = pooled
    retrained = cli("retrain", spec_path, "--userdir", userdir)
    assert retrained.code == 2 and "pooled" in retrained.err
    tunable = tmp_path / "pool_tune.toml"
    tunable.write_text(
        spec_path.read_text()
        + '\n[tune]\n[tune.space]\n"model.params.num_leaves" = { type = "int", low = 7, high = 15 }\n'
    )
    tuned = cli("tune", tunable, "--trials", "1", "--userdir", userdir)
    assert tuned.code == 2 and "pooled" in tuned.err


def test_the_pooled_summary_shows_each_pair_and_labels_the_mean() -> None:
    """Issue 24 item 5: 'model +2499%, Calmar 4.24' was the mean of the pairs' figures,
    unlabelled, without the pairs' own rows."""
    from rich.console import Console

    from experiments.training import TrainResult
    from ml.fold_training import Scores
    from tradingbot.render import train_summary

    def figures(total: float, calmar: float) -> dict[str, float]:
        return {"total_return": total, "max_drawdown": 0.5, "calmar": calmar}

    hold = {"always_long": figures(1.0, 1.0)}
    result = TrainResult(
        run_id="r",
        experiment_id="e",
        model_name="pool",
        version=1,
        metrics=figures(24.99, 4.24),
        baselines=hold,
        folds=2,
        per_pair={
            "BTC/USDT": Scores(figures(5.49, 2.0), hold),
            "BNB/USDT": Scores(figures(44.49, 6.48), hold),
        },
    )
    console = Console(record=True, width=160)
    train_summary(console, result, "sqlite:///x")
    text = console.export_text()
    assert "BTC/USDT model" in text and "BNB/USDT always_long" in text and "+549%" in text
    assert "model (mean of 2 pairs)" in text and "not one portfolio's" in text
