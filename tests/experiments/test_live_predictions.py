"""What a running bot served, recorded and backtested (`backtest --live-predictions BOT`,
FreqAI's backtest on live models): a replayed paper bot records each candle's columns; a
backtest trades them and says where they differ from the registry's versions."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from common.layout import UserDir
from experiments.spec import parse_experiment
from experiments.training import train
from ml.registry import promote
from ml.serving.prediction_log import PredictionLog, PredictionLogError, log_path, open_log
from ml.tracking import configure, default_tracking_uri
from tests.conftest import CliResult, import_synthetic, local_context

ROOT = Path(__file__).resolve().parents[2]


def test_the_log_keeps_each_candle_once_and_names_the_bots_it_has(tmp_path: Path) -> None:
    layout = UserDir(tmp_path / "ud")
    log = PredictionLog(log_path(layout, "my bot/1"))
    assert log.path.name == "my_bot_1.sqlite"
    dates = pd.date_range("2021-01-01", periods=3, freq="1h", tz="UTC")
    served = pd.DataFrame(
        {"date": dates, "&-prediction": [1.0, 0.0, 1.0], "&-p_up": [0.6, 0.4, float("nan")]}
    )
    served["&-regime"] = "bull"
    served["do_predict"] = [1, 1, 0]
    log.record("BTC/USDT", served.iloc[:2], "models:/m/1")
    log.record("BTC/USDT", served.iloc[:2], "models:/m/1")  # the same candle again: once
    log.record("BTC/USDT", served, "models:/m/2")
    frame = PredictionLog(log.path).frame("BTC/USDT")
    assert list(frame["date"]) == list(dates[1:])  # the newest candle of each call only
    assert list(frame["model_version"]) == ["models:/m/1", "models:/m/2"]
    assert frame["p_up"].iloc[0] == 0.4 and pd.isna(frame["p_up"].iloc[1])
    assert list(frame["do_predict"]) == [1, 0] and list(frame["regime"]) == ["bull", "bull"]
    with pytest.raises(PredictionLogError, match="bots with a log: my_bot_1"):
        open_log(layout, "other")
    # a log that cannot be written is skipped, never raised: the bot keeps trading
    blocked = tmp_path / "blocked.sqlite"
    blocked.mkdir()
    assert PredictionLog(blocked).record("BTC/USDT", served, "models:/m/2") is False


@pytest.fixture(scope="module")
def replayed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    from experiments.paper import replay_paper
    from strategies.catalogue import introspect
    from strategies.install import install_strategies
    from strategies.params import default_params, with_values
    from strategies.runner import REPO_STRATEGIES

    root = tmp_path_factory.mktemp("live")
    userdir = root / "ud"
    import_synthetic(userdir, "BTC/USDT", candles=3000, seed=5)
    uri = default_tracking_uri(userdir)
    spec = {
        "name": "lp",
        "seed": 1,
        "data": {"timerange": "-20210301"},
        "regime": {"n_restarts": 1, "n_iter": 20},
        "model": {"kind": "lightgbm", "params": {"n_estimators": 20, "num_leaves": 7}},
        "walk_forward": {"folds": 1, "test_size": 300},
    }
    result = train(parse_experiment(spec, source="t"), context=local_context(userdir, uri))
    promote(configure(uri, UserDir(userdir)), "lp", result.version, "t", user="t", force=True)
    install_strategies(UserDir(userdir))
    info = {i.name: i for i in introspect(REPO_STRATEGIES)}["RegimeStrategy"]
    values = {"entry_threshold": 0.5, "exit_threshold": 0.48}
    with_values(default_params(info), values).write(userdir / "strategies")
    config = json.loads((ROOT / "user_data" / "config.dryrun.json").read_text())
    config["tradingbot"]["model_uri"] = "models:/lp@champion"
    (root / "config.json").write_text(json.dumps(config))
    replay, _, _ = replay_paper(
        config=root / "config.json",
        context=local_context(userdir, uri),
        timerange="20210305-20210319",
        strategy=None,
        model=None,
    )
    spec_path = root / "lp.toml"
    spec_path.write_text(
        'name = "lp"\n[data]\ntimerange = "-20210301"\n[model]\nkind = "lightgbm"\n'
        '[backtest]\nstrategy = "RegimeStrategy"\ntimerange = "20210305-20210319"\n'
    )
    return {"userdir": userdir, "uri": uri, "replay": replay, "spec": spec_path}


@pytest.mark.slow
def test_a_backtest_on_what_the_replay_served_matches_the_registry_and_the_model_backtest(
    replayed: dict[str, Any],
) -> None:
    from experiments.backtesting.run import backtest

    userdir = replayed["userdir"]
    log = open_log(UserDir(userdir), "replay")
    frame = log.frame("BTC/USDT")
    assert len(frame) == replayed["replay"].steps  # one row per candle the bot acted on
    assert set(frame["model_version"]) == {"models:/lp/1"}
    context = local_context(userdir, replayed["uri"])
    common: dict[str, Any] = {
        "strategy": "RegimeStrategy",
        "pair": "BTC/USDT",
        "timeframe": "1h",
        "exchange": "binance",
        "model": "lp@champion",
        "context": context,
        "use_cache": False,
    }
    served = backtest(timerange="", live_predictions="replay", **common)
    [compared] = served.live
    assert compared.recorded == compared.compared == len(frame)
    assert compared.differing == 0 and compared.max_abs_difference < 1e-9
    client = configure(replayed["uri"], UserDir(userdir))
    tags = client.get_run(served.run_id).data.tags
    assert tags["live_predictions.bot"] == "replay" and tags["live_predictions.differing"] == "0"
    model = backtest(timerange=tags["timerange"], **common)
    assert served.metrics.trades == model.metrics.trades > 0  # the same forecasts, the same trades

    # a candle the bot served otherwise than the registry predicts: named, with both values
    with sqlite3.connect(log.path) as db:
        candle = int(frame["date"].iloc[10].value)
        stored = json.loads(
            db.execute("SELECT columns FROM predictions WHERE candle = ?", (candle,)).fetchone()[0]
        )
        stored["p_up"] = 0.99
        db.execute(
            "UPDATE predictions SET columns = ? WHERE candle = ?", (json.dumps(stored), candle)
        )
    changed = backtest(timerange="", live_predictions="replay", **common)
    [compared] = changed.live
    assert compared.differing == 1
    assert compared.first_differences[0][0] == frame["date"].iloc[10].isoformat()
    assert compared.first_differences[0][1] == 0.99


def test_the_command_names_a_bot_without_a_log_and_refuses_two_kinds_of_predictions(
    replayed: dict[str, Any], cli: Callable[..., CliResult]
) -> None:
    userdir = replayed["userdir"]
    ghost = cli("backtest", replayed["spec"], "--live-predictions", "ghost", "--userdir", userdir)
    assert ghost.code == 2 and "no predictions recorded by bot 'ghost'" in ghost.err
    assert "bots with a log: replay" in ghost.err
    both = cli(
        "backtest",
        replayed["spec"],
        "--live-predictions",
        "replay",
        "--walk-forward",
        "--userdir",
        userdir,
    )
    assert both.code == 2 and "choose one" in both.err
    done = cli("backtest", replayed["spec"], "--live-predictions", "replay", "--userdir", userdir)
    assert done.code == 0, done.err
    assert "what the bot served against" in " ".join(done.out.split())
