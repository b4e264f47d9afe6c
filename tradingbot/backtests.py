"""`tradingbot regimes`, `markets`, `backtest` and `scorecard`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from tradingbot._app import (
    Exchange,
    Pair,
    SpecTimeframe,
    SpecTimerange,
    Timeframe,
    Userdir,
    _require_data,
    app,
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
            userdir=userdir,
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

    path = fetch_snapshot(userdir, exchange) if online else generate_snapshot(userdir, exchange)
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
    userdir: Userdir = Path("user_data"),
) -> None:
    """Backtest on the real Freqtrade engine with no network; record it in MLflow."""
    from experiments.spec import load_experiment

    whitelist = [p.strip() for p in pairs.split(",") if p.strip()] if pairs else []
    if spec is not None:
        experiment = load_experiment(spec)
        if not whitelist and not pair and experiment.is_whitelist:
            whitelist = list(experiment.data.pairs)
        pair = pair or experiment.data.whitelist[0]
        timeframe = timeframe or experiment.data.timeframe
        exchange = experiment.data.exchange
        model = model or f"{experiment.name}@champion"
        # a spec's [backtest] window is for its champion; walking forward, the folds'
        # out-of-sample span is the window unless --timerange narrows it
        timerange = timerange or (None if walk_forward else experiment.backtest.timerange)
        declared = "strategy" in experiment.backtest.model_fields_set
        strategy = strategy or (experiment.backtest.strategy if declared else None)
    timeframe = _composition_timeframe(userdir, strategy, timeframe)
    pair = pair or (whitelist[0] if whitelist else None)
    if pair is None or timeframe is None or (timerange is None and not walk_forward):
        raise typer.BadParameter("give a SPEC.toml, or --pair, --timeframe and --timerange")
    if len(set(whitelist)) != len(whitelist):
        raise typer.BadParameter("a pair is listed twice", param_hint="--pairs")
    _require_data(userdir, exchange, whitelist or [pair], timeframe)
    from experiments.backtesting.run import BACKTEST_STAGES, backtest
    from tradingbot.render_backtest import backtest_summary

    market = f"{len(whitelist)} pairs" if len(whitelist) > 1 else pair
    title = f"backtest {strategy or model} {market} {timeframe} {timerange or 'walk-forward'}"
    with progress_bar(title, len(BACKTEST_STAGES)) as advance:
        summary = backtest(
            strategy=strategy,
            pair=pair,
            timeframe=timeframe,
            exchange=exchange,
            timerange=timerange or "",
            model=model,
            context=run_context(userdir),
            use_cache=not no_cache,
            walk_forward=walk_forward,
            progress=advance,
            pairs=whitelist or None,
            max_open_trades=max_open_trades,
        )
    backtest_summary(console, summary)


def _composition_timeframe(
    userdir: Path, strategy: str | None, timeframe: str | None
) -> str | None:
    """A composed strategy's declared timeframe when --timeframe is not given; a note when
    it is given and differs (Freqtrade runs the strategy at the asked one)."""
    from common.layout import UserDir
    from strategies.composition import compositions_in
    from strategies.install import SHIPPED_STRATEGIES

    if not strategy:
        return timeframe
    installed = UserDir(userdir).strategies
    folder = installed if (installed / "compositions").is_dir() else SHIPPED_STRATEGIES
    composition = compositions_in(folder).get(strategy)
    if composition is None:
        return timeframe
    if timeframe is None:
        return composition.timeframe
    if timeframe != composition.timeframe:
        console.print(
            f"[yellow]note[/]: {strategy} is composed for {composition.timeframe}; it runs at "
            f"{timeframe} as --timeframe asks (its windows count {timeframe} candles)"
        )
    return timeframe


@app.command("scorecard")
def scorecard_command(
    spec: Annotated[Path, typer.Argument(help="Experiment spec (TOML).")],
    pairs: Annotated[
        list[str],
        typer.Option("--pair", help="An imported pair (repeat the option for each market)."),
    ],
    timeframe: SpecTimeframe = None,
    timerange: SpecTimerange = None,
    userdir: Userdir = Path("user_data"),
) -> None:
    """The spec, unchanged, walk-forward on each market: trained, backtested on the engine, beside the baselines."""
    from experiments.backtesting.scorecard import scorecard
    from experiments.spec import load_experiment
    from tradingbot.render import scorecard_summary

    experiment = load_experiment(spec)
    with stage(f"scorecard of {experiment.name} on {len(pairs)} market(s)"):
        card = scorecard(
            experiment,
            pairs,
            context=run_context(userdir),
            timeframe=timeframe,
            timerange=timerange,
            progress=lambda text: progress_console.print(f"  {text}"),
        )
    scorecard_summary(console, card)
