"""Paper trading on a replayed market: Freqtrade's bot loop, offline, against a backtest."""

from __future__ import annotations

import json
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from common.layout import UserDir
from experiments.paper import replay_paper
from experiments.spec import parse_experiment
from experiments.training import train
from ml.registry import promote
from ml.tracking import configure, default_tracking_uri
from strategies.catalogue import introspect
from strategies.install import install_strategies
from strategies.params import default_params, with_values
from strategies.runner import REPO_STRATEGIES
from tests.conftest import CliResult, import_synthetic, local_context

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("replay")
    userdir = root / "ud"

    def gap(frame: pd.DataFrame) -> None:
        """A candle missing inside the replayed weeks, as real exchange data has them
        (Freqtrade fills it, in backtests and live alike; so must the replay)."""
        missing = frame.index[frame["date"] == pd.Timestamp("2021-03-08 05:00", tz="UTC")]
        frame.drop(index=missing, inplace=True)

    import_synthetic(userdir, "BTC/USDT", candles=3000, seed=5, change=gap)
    uri = default_tracking_uri(userdir)
    for seed in (1, 2):  # versions 1 and 2 of the same spec
        spec = parse_experiment(
            {
                "name": "rp",
                "seed": seed,
                "data": {"timerange": "-20210301"},
                "regime": {"n_restarts": 1, "n_iter": 20},
                "model": {"kind": "lightgbm", "params": {"n_estimators": 20, "num_leaves": 7}},
                "walk_forward": {"folds": 1, "test_size": 300},
            },
            source="test",
        )
        train(spec, context=local_context(userdir, uri))
    promote(configure(uri, UserDir(userdir)), "rp", 1, "replay test", user="pytest", force=True)
    # a lower entry threshold than the default, so that two weeks hold a few trades; the
    # replay and the backtest both read it from the user dir
    install_strategies(UserDir(userdir))
    info = {i.name: i for i in introspect(REPO_STRATEGIES)}["RegimeStrategy"]
    values = {"entry_threshold": 0.5, "exit_threshold": 0.48}
    with_values(default_params(info), values).write(userdir / "strategies")
    config = json.loads((ROOT / "user_data" / "config.dryrun.json").read_text())
    config["tradingbot"]["model_uri"] = "models:/rp@champion"
    (root / "config.json").write_text(json.dumps(config))
    return {"userdir": userdir, "uri": uri, "config": root / "config.json"}


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise OSError("network disabled: the replay must not need it")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


@pytest.mark.slow
def test_two_weeks_replayed_trade_as_the_backtest_does(
    world: dict[str, Any], no_network: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a running bot's telegram token in the environment once crashed the replay's config
    monkeypatch.setenv("FREQTRADE__TELEGRAM__TOKEN", "123456:replay-must-not-use-it")
    result, summary, compared = replay_paper(
        config=world["config"],
        context=local_context(world["userdir"], world["uri"]),
        timerange="20210305-20210319",
        strategy=None,
        model=None,
    )
    assert result.steps == 14 * 24
    assert result.database == world["userdir"].resolve() / "replay" / "tradesv3.replay.sqlite"
    assert result.database.exists()
    assert len(compared.matched) >= 1, (result.trades, compared)
    assert compared.unexplained.empty, compared.unexplained
    # the same entries: the next candle's open, in both
    assert compared.matched["entry_price_diff"].abs().max() < 1e-9  # (a 1e-8 price grid)
    # every trade of either run is matched or follows an intra-candle exit of the other
    traded = len(compared.matched) + len(compared.replay_only) + len(compared.backtest_only)
    assert len(compared.matched) / traded >= 0.5
    assert summary.metrics.trades == len(compared.matched) + len(compared.backtest_only)
    # the journal holds the paper bot's positions, read from its Freqtrade database
    from strategies.journal_stats import bots

    table = bots(UserDir(world["userdir"]).journal).set_index("bot")
    paper = table.loc["paper/RegimeStrategy/replay-20210305-20210319"]
    assert paper["positions"] == len(result.trades) and paper["window"].startswith("2021-03-")
    import os

    assert os.environ["FREQTRADE__TELEGRAM__TOKEN"] == "123456:replay-must-not-use-it"
    # the trade table shows each closed trade's profit and the total (before: neither)
    from rich.console import Console

    from tradingbot.render_backtest import replay_summary

    console = Console(record=True, width=220)
    replay_summary(console, result, summary, compared)
    text = console.export_text()
    closed = result.trades[~result.trades["is_open"]]
    assert "profit (stake)" in text and "closed trades, after fees" in text
    assert f"{closed['profit_abs'].sum():+.2f}" in text


@pytest.mark.slow
def test_a_promotion_during_a_replay_is_served_from_the_next_candle(
    world: dict[str, Any], no_network: None
) -> None:
    client = configure(world["uri"], UserDir(world["userdir"]))
    promote(client, "rp", 1, "back to v1", user="pytest", force=True)
    served: list[str | None] = []

    def on_step(step: int, bot: Any) -> None:
        served.append(bot.strategy.adapter.model_version)
        if step == 20:
            promote(client, "rp", 2, "promoted during the replay", user="pytest", force=True)

    from strategies.paper_replay import replay_config, run_replay

    config = replay_config(
        json.loads(world["config"].read_text()),
        layout=UserDir(world["userdir"]),
        pairs=["BTC/USDT"],
        timeframe="1h",
        strategy="RegimeStrategy",
        model_uri="models:/rp@champion",
        tracking_uri=world["uri"],
        database=world["userdir"].resolve() / "replay2" / "trades.sqlite",
        fee=0.001,
    )
    run_replay(
        config,
        layout=UserDir(world["userdir"]),
        exchange="binance",
        start=pd.Timestamp("2021-03-05", tz="UTC").to_pydatetime(),
        end=pd.Timestamp("2021-03-07", tz="UTC").to_pydatetime(),
        on_step=on_step,
    )
    assert served[:21] == ["1"] * 21
    assert served[21:] == ["2"] * (48 - 21)  # the very next candle
    promote(client, "rp", 1, "restore", user="pytest", force=True)


def test_replay_input_errors_are_one_line(
    world: dict[str, Any], cli: Callable[..., CliResult]
) -> None:
    ud = world["userdir"]
    missing = cli("paper", "--replay", "--userdir", ud)
    assert missing.code == 2 and "--replay needs --timerange" in missing.err
    open_ended = cli(
        "paper",
        "--replay",
        "--timerange",
        "20210305-",
        "--config",
        world["config"],
        "--userdir",
        ud,
    )
    assert open_ended.code == 2 and "needs both ends" in open_ended.err
    outside = cli(
        "paper",
        "--replay",
        "--timerange",
        "20250101-20250201",
        "--config",
        world["config"],
        "--userdir",
        ud,
    )
    assert (
        outside.code == 2
        and "no BTC/USDT 1h candles between 2025-01-01 and 2025-02-01" in outside.err
    )
    live = cli("paper", "--replay", "--live", "--timerange", "20210305-20210306", "--userdir", ud)
    assert live.code == 2 and "cannot be combined with --live" in live.err
    # a model that is not registered is named before Freqtrade starts (before: 22 s later)
    import time

    started = time.monotonic()
    ghost = cli(
        "paper", "--replay", "--timerange", "20210305-20210306", "--config", world["config"],
        "--model", "models:/ghost@champion", "--userdir", ud,
    )  # fmt: skip
    assert ghost.code == 2 and "model 'ghost@champion' is not in the registry" in ghost.err
    assert time.monotonic() - started < 10  # about 0.1 s; Freqtrade's start-up took 22
