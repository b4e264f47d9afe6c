"""`tradingbot paper`: Freqtrade's own bot loop (`freqtrade trade`) in dry-run, by default.

Live trading needs both ``--live`` and ``--i-understand-live-risk`` and exchange
keys in the environment (``FREQTRADE__EXCHANGE__KEY``/``SECRET``): keys are never
read from files by this wrapper, never written, never printed. Needs network
(the exchange's prices); backtests do not. The config is checked first
(:mod:`strategies.trading_config`: no written credential, the exchange reachable).

Everything the bot writes stays in the user dir: Freqtrade runs with ``--userdir``,
finds the strategies installed there (with their tuned ``<Strategy>.json``), and
its trade database is ``<userdir>/tradesv3.dryrun.sqlite`` (``.live`` for live)
unless the config names an absolute or non-SQLite ``db_url``; a relative SQLite
path in the config is taken relative to the user dir, not the working directory.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from common.context import RunContext
from common.layout import UserDir
from strategies.runner import ensure_freqtrade_userdir
from strategies.trading_config import (
    DB_URL_VARIABLE,
    KEY_VARIABLES,
    PaperError,
    check_exchange_reachable,
    database_url,
    load_config,
)


def trade_command(
    *,
    config: Path,
    context: RunContext,
    strategy: str | None,
    model: str | None,
    live: bool,
    check_exchange: bool = True,
) -> tuple[list[str], dict[str, str]]:
    """The ``freqtrade trade`` command line and environment for this run (the bot
    inherits the context's environment)."""
    layout, environment = context.layout, context.environment
    settings = load_config(config)
    if live and not all(environment.get(name) for name in KEY_VARIABLES):
        raise PaperError(
            "live trading needs FREQTRADE__EXCHANGE__KEY and FREQTRADE__EXCHANGE__SECRET in the environment"
        )
    if not live and settings.get("dry_run") is False:
        raise PaperError(
            f"{config} sets dry_run false: pass --live --i-understand-live-risk to trade for real"
        )
    ensure_freqtrade_userdir(layout)  # also installs the strategies Freqtrade loads
    if check_exchange:
        check_exchange_reachable(settings)
    command = [
        sys.executable,
        "-m",
        "freqtrade",
        "trade",
        "--config",
        str(config),
        "--userdir",
        str(layout.root),
    ]
    if not live:
        command.append("--dry-run")
    if strategy:
        command += ["--strategy", strategy]
    # the database URL (it may hold a password) travels in the environment, never on the
    # command line, which every user of the machine can read in the process list
    bot_environment = {
        **environment,
        "MLFLOW_TRACKING_URI": context.tracking_uri,
        DB_URL_VARIABLE: database_url(settings, layout, environment, live=live),
    }
    bot_environment.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    if model:
        bot_environment["FREQTRADE__TRADINGBOT__MODEL_URI"] = model
    return command, bot_environment


def backtest_model(model_uri: str) -> tuple[str, bool]:
    """``models:/NAME@alias`` -> ("NAME@alias", False); a whitelist template
    ``models:/NAME__{pair}@alias`` -> ("NAME@alias", True): what ``backtest`` takes."""
    name = model_uri.removeprefix("models:/")
    if "__{pair}" in name:
        return name.replace("__{pair}", ""), True
    return name, False


def _replay_model(model: str | None, settings: dict[str, Any]) -> str:
    """The model a replay serves: ``--model``, else the config's, as a ``models:/`` URI."""
    model_uri = model or settings.get("tradingbot", {}).get("model_uri")
    if not model_uri:
        raise PaperError("no model: pass --model models:/NAME@champion or set tradingbot.model_uri")
    return str(model_uri if model_uri.startswith("models:/") else f"models:/{model_uri}")


def _require_registered(
    model_uri: str, settings: dict[str, Any], layout: UserDir, tracking_uri: str
) -> None:
    """Resolve the replay's model (every pair's, for a whitelist) before Freqtrade starts:
    a model that is not registered is named at once, not after the bot's start-up."""
    from ml.serving.served import serve
    from ml.tracking import configure

    name, per_pair = backtest_model(model_uri)
    pairs = tuple(settings.get("exchange", {}).get("pair_whitelist", []))
    serve(configure(tracking_uri, layout), name, pairs if per_pair or len(pairs) > 1 else ())


def _same_backtest(
    settings: dict[str, Any],
    model_uri: str,
    strategy: str,
    timerange: str,
    context: RunContext,
) -> Any:
    """The backtest a replay is compared with: same candles, strategy, model and slots."""
    from experiments.backtesting.run import backtest

    pairs = list(settings.get("exchange", {}).get("pair_whitelist", []))
    name, per_pair = backtest_model(model_uri)
    summary = backtest(
        strategy=strategy,
        pair=pairs[0],
        pairs=pairs if per_pair or len(pairs) > 1 else None,
        timeframe=str(settings.get("timeframe", "1h")),
        exchange=str(settings.get("exchange", {}).get("name", "binance")),
        timerange=timerange,
        model=name,
        context=context,
        max_open_trades=int(settings.get("max_open_trades", 1)),
    )
    # the report charts backtests asked for themselves, not this comparison by default
    from ml import tracking

    client = tracking.configure(context.tracking_uri, context.layout)
    client.set_tag(summary.run_id, tracking.PURPOSE_TAG, "paper replay comparison")
    return summary


def replay_paper(
    *,
    config: Path,
    context: RunContext,
    timerange: str,
    strategy: str | None,
    model: str | None,
    speed: float | None = None,
    on_step: Any = None,
    quiet: bool = False,
) -> tuple[Any, Any, Any]:
    """Paper trading on a replayed market (``strategies.paper_replay``), then a backtest
    of the same candles, strategy and model, and the two compared trade by trade.
    Returns (replay result, backtest summary, comparison)."""
    layout, tracking_uri = context.layout, context.tracking_uri
    from features.timerange import TimeRange
    from strategies.journal_sources import journal_database
    from strategies.paper_replay import replay_config, run_replay
    from strategies.replay_comparison import compare_trades
    from strategies.results import parse_result_zip

    window = TimeRange.parse(timerange)
    start, end = window.start, window.end
    if start is None or end is None:
        raise PaperError(
            f"--timerange {timerange!r} needs both ends for a replay", hint="e.g. 20210301-20210315"
        )
    settings = load_config(config)
    model_uri = _replay_model(model, settings)
    _require_registered(model_uri, settings, layout, tracking_uri)
    strategy_name = strategy or settings.get("strategy", "RegimeStrategy")
    timeframe = str(settings.get("timeframe", "1h"))
    replay_settings = replay_config(
        settings,
        layout=layout,
        pairs=list(settings.get("exchange", {}).get("pair_whitelist", [])),
        timeframe=timeframe,
        strategy=strategy_name,
        model_uri=model_uri,
        tracking_uri=tracking_uri,
        database=context.layout.replay_trades_db.resolve(),
        fee=0.001,  # the backtests' fee, so the two runs pay the same
    )
    result = run_replay(
        replay_settings,
        layout=layout,
        exchange=str(settings.get("exchange", {}).get("name", "binance")),
        start=start,
        end=end,
        speed=speed,
        on_step=on_step,
        quiet=quiet,
    )
    summary = _same_backtest(settings, model_uri, strategy_name, timerange, context)
    traded = parse_result_zip(summary.result_zip, strategy_name).trades
    journal_database(  # the replay's trades, as a paper bot's
        layout, f"sqlite:///{result.database}", mode="paper", strategy=strategy_name,
        model_uri=model_uri, name=f"paper/{strategy_name}/replay-{timerange}",
    )  # fmt: skip
    return result, summary, compare_trades(result.trades, traded, timeframe, end)
