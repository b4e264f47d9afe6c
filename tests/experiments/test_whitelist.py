"""Whitelist specs: one model per pair, one parent run, one naming rule."""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

from common.errors import SpecError
from common.layout import UserDir
from experiments.spec import load_experiment, parse_experiment
from ml.model_uris import model_name
from ml.tracking import configure, default_tracking_uri
from tests.conftest import CliResult, import_synthetic, local_context

PAIRS = ("ETH/USDT", "XRP/USDT")
SPEC = """
name = "wl_lgbm"
seed = 3

[data]
pairs = ["ETH/USDT", "XRP/USDT"]
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
folds = 1
test_size = 400
"""


def _import(userdir: Path, tmp: Path, pair: str, seed: int, candles: int = 2000) -> None:
    import_synthetic(userdir, pair, candles=candles, seed=seed)


def test_spec_pairs_are_checked_and_name_one_model_each(tmp_path: Path) -> None:
    spec = parse_experiment(
        {"name": "w", "data": {"pairs": list(PAIRS)}, "model": {"kind": "lightgbm"}},
        source="t",
    )
    assert spec.data.whitelist == PAIRS and spec.is_whitelist
    assert type(spec).model_validate_json(spec.model_dump_json()) == spec  # a dump reloads
    one = spec.for_pair("XRP/USDT")
    assert one.name == model_name("w", "XRP/USDT") == "w__XRP_USDT"
    assert one.data.pair == "XRP/USDT" and not one.is_whitelist
    assert spec.with_overrides(pair="ETH/USDT").name == "w__ETH_USDT"
    with pytest.raises(SpecError, match="not in the whitelist"):
        spec.for_pair("BTC/USDT")
    for data, message in (
        ({"pair": "BTC/USDT", "pairs": ["ETH/USDT"]}, "either pair or pairs"),
        ({"pair": "BTC/USDT", "pairs": ["ETH/USDT", "BTC/USDT"]}, "either pair or pairs"),
        ({"pairs": ["ETH/USDT", "ETH/USDT"]}, "ETH/USDT more than once"),
        ({"pairs": ["ETHUSDT"]}, "not a pair: write BASE/QUOTE"),
    ):
        with pytest.raises(SpecError, match=message):
            parse_experiment({"name": "w", "data": data, "model": {"kind": "lightgbm"}}, source="t")
    # a single-pair spec keeps its hash (studies and caches made before whitelists)
    single = parse_experiment(
        {"name": "s", "data": {"pair": "BTC/USDT"}, "model": {"kind": "lightgbm"}}, source="t"
    )
    assert single.hash == "7571377927f38e96"  # computed by the code before whitelists


@pytest.mark.parametrize("options", [(), ("--jobs", "2", "--backtest")], ids=["plain", "pool"])
def test_a_missing_pair_is_named_before_anything_is_recorded(
    tmp_path: Path,
    cli: Callable[..., CliResult],
    monkeypatch: pytest.MonkeyPatch,
    options: tuple[str, ...],
) -> None:
    """Also with a pool and a backtest: the error comes before Freqtrade's process is
    forked from the pool's fork server, which would wait for the server's imports."""
    from strategies import freqtrade_process

    forked: list[object] = []
    monkeypatch.setattr(freqtrade_process, "ForkedFreqtrade", lambda *args: forked.append(args))
    userdir = tmp_path / "ud"
    _import(userdir, tmp_path, "ETH/USDT", seed=1, candles=600)
    spec = tmp_path / "wl.toml"
    spec.write_text(SPEC)
    result = cli("train", spec, *options, "--userdir", userdir)
    assert result.code == 2 and "XRP/USDT" in result.err and "ETH/USDT" not in result.err
    assert not (userdir / "mlflow.db").exists()
    assert forked == []


def _fork_servers_in_group(group: int) -> list[int]:
    """The processes of process group ``group`` that are multiprocessing fork servers."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            command = (entry / "cmdline").read_bytes()
        except (OSError, ValueError):
            continue  # not a process, or one that ended while it was read
        if int(fields[2]) == group and b"multiprocessing.forkserver" in command:
            found.append(int(entry.name))
    return found


def test_a_command_that_fails_before_its_pool_runs_leaves_no_fork_server(
    tmp_path: Path,
) -> None:
    """The fork server a command with --jobs starts first thing imports for seconds; an
    error before any job (a missing pair) ends the command, and the server with it: a
    caller reading the command's output through a pipe does not wait for its imports."""
    import subprocess
    import sys
    from contextlib import suppress

    from tests.conftest import ROOT

    userdir = tmp_path / "ud"
    _import(userdir, tmp_path, "ETH/USDT", seed=1, candles=600)
    spec = tmp_path / "wl.toml"
    spec.write_text(SPEC)
    command = [sys.executable, "-m", "tradingbot", "train", str(spec), "--jobs", "2"]
    process = subprocess.Popen(
        [*command, "--backtest", "--userdir", str(userdir)],
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        process.wait(timeout=600)  # the command's own end, not its output's
        left = _fork_servers_in_group(process.pid)
        _out, err = process.communicate(timeout=600)
    finally:
        with suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
    assert process.returncode == 2 and b"XRP/USDT" in err
    assert left == []


@pytest.mark.slow
def test_train_fits_one_model_per_pair_under_one_parent_run(
    tmp_path: Path, cli: Callable[..., CliResult]
) -> None:
    userdir = tmp_path / "ud"
    for seed, pair in enumerate(PAIRS, start=11):
        _import(userdir, tmp_path, pair, seed)
    spec_path = tmp_path / "wl.toml"
    spec_path.write_text(SPEC)
    # a process per pair; then the challengers walk forward on Freqtrade, in one command
    result = cli("train", spec_path, "--jobs", "2", "--backtest", "--userdir", userdir)
    assert result.code == 0, result.err
    assert "wl_lgbm__ETH_USDT" in result.out and "wl_lgbm__XRP_USDT" in result.out
    assert "by pair" in result.out  # the backtest's summary follows the training's

    client = configure(default_tracking_uri(userdir), UserDir(userdir))
    backtests = client.get_experiment_by_name("backtests")
    (walked,) = client.search_runs([backtests.experiment_id])
    assert walked.data.tags["walk_forward"] == "true"
    assert walked.data.tags["whitelist"] == "ETH/USDT,XRP/USDT"
    assert walked.data.tags["model_version"] == "ETH/USDT:1,XRP/USDT:1"  # the new challengers
    experiment = client.get_experiment_by_name("wl_lgbm")
    runs = client.search_runs([experiment.experiment_id])
    parents = [r for r in runs if r.data.tags.get("whitelist") == "ETH/USDT,XRP/USDT"]
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    parent = parents[0]
    pair_runs = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert sorted(r.data.tags["pair"] for r in pair_runs) == list(PAIRS)
    assert {"ETH_USDT.total_return", "XRP_USDT.return_over_drawdown"} <= set(parent.data.metrics)
    for pair in PAIRS:
        name = model_name("wl_lgbm", pair)
        version = client.get_model_version_by_alias(name, "challenger")
        run = client.get_run(version.run_id)
        assert run.data.tags["pair"] == pair and run.info.experiment_id == experiment.experiment_id

    # the whitelist's name promotes every pair's challenger
    promoted = cli(
        "promote", "wl_lgbm", "--reason", "first whitelist", "--force", "--userdir", userdir
    )
    assert promoted.code == 0, promoted.err
    for pair in PAIRS:
        champion = client.get_model_version_by_alias(model_name("wl_lgbm", pair), "champion")
        assert champion.tags["promotion_reason"] == "first whitelist"
    refused = cli("promote", "wl_lgbm", "--version", "1", "--reason", "x", "--userdir", userdir)
    assert refused.code == 2 and "whitelist of 2 models" in refused.err
    # --pair trains one pair of the whitelist under its own name
    assert load_experiment(spec_path).with_overrides(pair="XRP/USDT").name == "wl_lgbm__XRP_USDT"

    # one Freqtrade backtest over the whitelist, each pair served by its own model
    done = cli("backtest", spec_path, "--userdir", userdir)
    assert done.code == 0, done.err
    assert "by pair" in done.out
    backtests = client.get_experiment_by_name("backtests")
    run = client.search_runs([backtests.experiment_id], order_by=["attributes.start_time DESC"])[0]
    assert run.data.tags["whitelist"] == "ETH/USDT,XRP/USDT"
    assert run.data.params["max_open_trades"] == "2"
    assert {"pair.ETH_USDT.trades", "pair.XRP_USDT.buy_and_hold"} <= set(run.data.metrics)
    assert {"mtm.total_return", "baseline.always_long.max_drawdown"} <= set(run.data.metrics)
    guard = json.loads(
        Path(
            client.download_artifacts(run.info.run_id, "results/guard.json", str(tmp_path))
        ).read_text()
    )
    # Freqtrade is handed the exact versions the run records, not the alias, which a
    # promotion could move between resolving and trading
    assert guard["model_uri_by_pair"] == {
        pair: f"models:/wl_lgbm__{pair.replace('/', '_')}/1" for pair in PAIRS
    }
    assert run.data.tags["model_version"] == "ETH/USDT:1,XRP/USDT:1"
    assert guard["trusted"]["ETH/USDT"] > 0 and guard["trusted"]["XRP/USDT"] > 0
    assert guard["unavailable"] == {}

    # the report lists the whitelist backtest as one row (its curves need a single market)
    reported = cli("report", "--userdir", userdir, "--out", tmp_path / "report")
    assert reported.code == 0, reported.err
    assert "2 pairs 1h" in (tmp_path / "report" / "report.md").read_text()

    # a pair whose model is missing is named before Freqtrade runs
    missing = cli(
        "backtest",
        "--pairs",
        "ETH/USDT,BTC/USDT",
        "--model",
        "wl_lgbm@champion",
        "--timeframe",
        "1h",
        "--timerange",
        "20210301-20210322",
        "--userdir",
        userdir,
    )
    assert missing.code == 2 and "BTC/USDT" in missing.err


def test_a_model_serves_only_the_pair_it_was_trained_on(tmp_path: Path) -> None:
    """Before: a second pair of the whitelist was traded with the first pair's model."""
    from experiments.training import train
    from ml.registry import promote
    from ml.serving import ModelAdapter

    userdir = tmp_path / "ud"
    for seed, pair in enumerate(PAIRS, start=11):
        _import(userdir, tmp_path, pair, seed)
    spec = parse_experiment(
        {
            "name": "eth_only",
            "data": {"pair": "ETH/USDT", "timerange": "-20210301"},
            "regime": {"n_restarts": 1, "n_iter": 20},
            "model": {"kind": "lightgbm", "params": {"n_estimators": 20, "num_leaves": 7}},
            "walk_forward": {"folds": 1, "test_size": 400},
        },
        source="t",
    )
    uri = default_tracking_uri(userdir)
    result = train(spec, context=local_context(userdir, uri))
    promote(
        configure(uri, UserDir(userdir)), "eth_only", result.version, "t", user="pytest", force=True
    )
    adapter = ModelAdapter("models:/eth_only@champion", tracking_uri=uri)
    from features.data import load_candles

    xrp = load_candles(UserDir(userdir), "binance", "XRP/USDT", "1h")
    served = adapter.populate(xrp, "XRP/USDT")
    assert (served["do_predict"] == 0).all()
    assert "trained on ETH/USDT, not XRP/USDT" in adapter.guard.unavailable["XRP/USDT"]
    eth = adapter.populate(load_candles(UserDir(userdir), "binance", "ETH/USDT", "1h"), "ETH/USDT")
    assert eth["do_predict"].sum() > 0


@pytest.mark.slow
def test_the_same_whitelist_gives_the_same_figures_in_process_in_processes_and_on_ray(
    tmp_path: Path,
) -> None:
    """Issue 27: where a pair's job runs never changes its result, to the last digit
    (seeds are the job's, not the worker's)."""
    pytest.importorskip("ray", reason="Ray is the optional extra .[ray]: not installed here")
    from common.executors import InProcess, ProcessPool, RayCluster
    from experiments.training import train_whitelist
    from tradingbot._app import TRAINING_WORKER

    spec = load_experiment(_write(tmp_path / "wl.toml", SPEC))
    figures = {}
    for label, make in (
        ("here", InProcess),
        ("processes", lambda: ProcessPool(2, TRAINING_WORKER)),
        ("ray", lambda: RayCluster(workers=2)),
    ):
        userdir = tmp_path / label
        for seed, pair in enumerate(PAIRS, start=11):
            _import(userdir, tmp_path, pair, seed)
        with make() as executor:
            result = train_whitelist(spec, context=local_context(userdir), executor=executor)
        figures[label] = {
            pair: (trained.metrics, trained.baselines, trained.out_of_sample)
            for pair, trained in result.pairs.items()
        }
    for label in ("processes", "ray"):
        for pair in PAIRS:
            metrics, baselines, predictions = figures[label][pair]
            expected_metrics, expected_baselines, expected_predictions = figures["here"][pair]
            # to the last digit; frames compare NaN with NaN as equal, as a dict does not
            assert pd.Series(metrics).equals(pd.Series(expected_metrics)), label
            assert pd.DataFrame(baselines).equals(pd.DataFrame(expected_baselines)), label
            pd.testing.assert_frame_equal(predictions, expected_predictions, check_exact=True)


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path
