"""`tradingbot regimes`, `markets`, `backtest` and `scorecard`."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from common.context import RunContext
    from experiments.backtesting.options import BacktestOptions
    from strategies.freqtrade_process import FreqtradeProcess

from common.layout import UserDir
from tradingbot._app import (
    TRAINING_WORKER,
    Exchange,
    ExecutorOption,
    Jobs,
    Pair,
    SpecTimeframe,
    SpecTimerange,
    Timeframe,
    Userdir,
    _require_data,
    app,
    compute,
    console,
    progress_bar,
    progress_console,
    run_context,
    stage,
)


@app.command("regimes")
def regimes_command(
    pair: Pair,
    timeframe: Timeframe,
    out: Annotated[
        Path, typer.Option("--out", help="Output CSV; a PNG is written beside it.", dir_okay=False)
    ],
    states: Annotated[
        str, typer.Option("--states", help="Number of regimes, or 'auto' (BIC).")
    ] = "3",
    train_end: Annotated[
        str | None,
        typer.Option("--train-end", help="Fit on candles before this date (default: first 70%)."),
    ] = None,
    exchange: Exchange = "binance",
    userdir: Userdir = Path("user_data"),
) -> None:
    """Fit the regime HMM on the past and write filtered (causal) regimes for every candle."""
    from experiments.training.regimes import REGIME_STAGES, parse_day, run_regimes
    from tradingbot.render import regime_summary

    if states != "auto" and not states.isdigit():
        raise typer.BadParameter(
            f"{states!r} is neither a number nor 'auto'", param_hint="--states"
        )
    with progress_bar(f"regimes {pair} {timeframe}", len(REGIME_STAGES)) as advance:
        summary = run_regimes(
            pair=pair,
            timeframe=timeframe,
            exchange=exchange,
            layout=UserDir(userdir),
            states=states,
            train_end=parse_day(train_end),
            out=out,
            progress=advance,
        )
    regime_summary(console, summary)


markets_app = typer.Typer(
    rich_markup_mode=None,
    help="Exchange market snapshots for offline Freqtrade runs.",
    no_args_is_help=True,
)


app.add_typer(markets_app, name="markets")


@markets_app.command("snapshot")
def markets_snapshot(
    exchange: Exchange = "binance",
    online: Annotated[
        bool, typer.Option("--online", help="Download the real markets (needs network).")
    ] = False,
    userdir: Userdir = Path("user_data"),
) -> None:
    """Write <userdir>/markets/<exchange>.json: from the exchange (--online) or for the imported pairs."""
    from strategies.markets import fetch_snapshot, generate_snapshot, load_snapshot

    layout = UserDir(userdir)
    path = fetch_snapshot(layout, exchange) if online else generate_snapshot(layout, exchange)
    markets = load_snapshot(path)
    source = "downloaded from the exchange" if online else "generated for the imported pairs"
    console.print(f"wrote {path}: {len(markets)} markets, {source}")


BacktestSpec = Annotated[
    Path | None,
    typer.Argument(help="Experiment spec: backtest its champion over its [backtest] timerange."),
]
StrategyName = Annotated[
    str | None,
    typer.Option(
        "--strategy",
        help="Strategy class in user_data/strategies (default: the spec's [backtest] "
        "strategy, else the one the model's kind is traded by).",
    ),
]
PairOverride = Annotated[str | None, typer.Option("--pair", help="Pair (default: the spec's).")]
TimeframeOverride = Annotated[
    str | None, typer.Option("--timeframe", help="Timeframe (default: the spec's).")
]
Timerange = Annotated[str | None, typer.Option("--timerange", help="YYYYMMDD-YYYYMMDD.")]
ModelName = Annotated[
    str | None, typer.Option("--model", help="Registered model as NAME@alias or NAME/version.")
]
NoCache = Annotated[
    bool, typer.Option("--no-cache", help="Run Freqtrade even if the result is cached.")
]
WalkForward = Annotated[
    bool,
    typer.Option(
        "--walk-forward", help="Use the model's fold bundles, each on its own out-of-sample window."
    ),
]
Pairs = Annotated[
    str | None,
    typer.Option(
        "--pairs",
        help="A whitelist, comma-separated (default: a whitelist spec's pairs); each "
        "pair is served by NAME__<BASE>_<QUOTE>@alias.",
    ),
]
LivePredictions = Annotated[
    str | None,
    typer.Option(
        "--live-predictions",
        metavar="BOT",
        help="Trade what running bot BOT served (its Freqtrade bot_name; a replay's is "
        "'replay'), over the span it recorded, and compare it with the registry's versions.",
    ),
]
MaxOpenTrades = Annotated[
    int | None,
    typer.Option("--max-open-trades", min=1, help="Freqtrade's (default: one per pair)."),
]


@app.command("backtest")
def backtest_command(
    spec: BacktestSpec = None,
    strategy: StrategyName = None,
    pair: PairOverride = None,
    timeframe: TimeframeOverride = None,
    timerange: Timerange = None,
    model: ModelName = None,
    exchange: Exchange = "binance",
    no_cache: NoCache = False,
    walk_forward: WalkForward = False,
    pairs: Pairs = None,
    max_open_trades: MaxOpenTrades = None,
    live_predictions: LivePredictions = None,
    userdir: Userdir = Path("user_data"),
) -> None:
    """Backtest on the real Freqtrade engine with no network; record it in MLflow."""
    from strategies.freqtrade_process import StartedFreqtrade

    context = run_context(userdir)
    # Freqtrade's process imports while this one does (what follows imports MLflow, pandas)
    with StartedFreqtrade(context.environment) as started:
        from experiments.backtesting.options import BacktestOptions
        from experiments.spec import load_experiment

        asked = BacktestOptions(
            spec=load_experiment(spec) if spec is not None else None,
            strategy=strategy,
            pair=pair,
            timeframe=timeframe,
            timerange=timerange,
            model=model,
            exchange=exchange,
            walk_forward=walk_forward,
            pairs=tuple(p.strip() for p in pairs.split(",") if p.strip()) if pairs else (),
            max_open_trades=max_open_trades,
            live_predictions=live_predictions,
        )
        run_and_show_backtest(asked, context, started, use_cache=not no_cache)


def run_and_show_backtest(
    asked: BacktestOptions,
    context: RunContext,
    started: FreqtradeProcess,
    *,
    use_cache: bool,
) -> None:
    """Resolve ``asked``, run it in the Freqtrade process ``started`` (which the command
    started first thing) and print its summary: ``tradingbot backtest``, and ``tradingbot
    train --backtest`` after the training."""
    from experiments.backtesting.options import resolve_backtest

    plan = resolve_backtest(asked, context.layout)
    for note in plan.notes:
        console.print(f"[yellow]note[/]: {note}")
    _require_data(context.userdir, plan.exchange, plan.markets, plan.timeframe)
    # after the checks: a missing pair is named before MLflow and Freqtrade are imported
    from experiments.backtesting.run import BACKTEST_STAGES, backtest
    from tradingbot.render_backtest import backtest_summary

    market = f"{len(plan.pairs)} pairs" if plan.pairs else plan.pair
    window = plan.timerange or (
        f"as bot {plan.live_predictions} served" if plan.live_predictions else "walk-forward"
    )
    title = f"backtest {plan.strategy or plan.model} {market} {plan.timeframe} {window}"
    with progress_bar(title, len(BACKTEST_STAGES)) as advance:
        summary = backtest(
            strategy=plan.strategy,
            pair=plan.pair,
            timeframe=plan.timeframe,
            exchange=plan.exchange,
            timerange=plan.timerange,
            model=plan.model,
            context=context,
            use_cache=use_cache,
            walk_forward=plan.walk_forward,
            progress=advance,
            pairs=plan.pairs or None,
            max_open_trades=plan.max_open_trades,
            live_predictions=plan.live_predictions,
            started=started,
        )
    backtest_summary(console, summary)


@app.command("scorecard")
def scorecard_command(
    spec: Annotated[Path, typer.Argument(help="Experiment spec (TOML).")],
    pairs: Annotated[
        list[str],
        typer.Option("--pair", help="An imported pair (repeat the option for each market)."),
    ],
    timeframe: SpecTimeframe = None,
    timerange: SpecTimerange = None,
    jobs: Jobs = None,
    executor: ExecutorOption = None,
    userdir: Userdir = Path("user_data"),
) -> None:
    """The spec, unchanged, walk-forward on each market: trained, backtested on the engine, beside the baselines."""
    from experiments.spec import load_experiment
    from tradingbot.render import scorecard_summary

    experiment = load_experiment(spec)
    context = run_context(userdir)
    with (
        # a market's job trains and backtests: its workers start with both
        compute(
            executor,
            jobs,
            context,
            experiment,
            preload=(*TRAINING_WORKER, "experiments.backtesting.scorecard"),
        ) as workers,
        stage(f"scorecard of {experiment.name} on {len(pairs)} market(s)"),
    ):
        workers.warm()
        # imported while a pool's fork server imports the same, not before it starts
        from experiments.backtesting.scorecard import scorecard

        card = scorecard(
            experiment,
            pairs,
            context=context,
            timeframe=timeframe,
            timerange=timerange,
            progress=lambda text: progress_console.print(f"  {text}"),
            executor=workers,
        )
    scorecard_summary(console, card)
