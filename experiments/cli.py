"""The `tradingbot` command line: parse, call one library function, render.

Errors a user can cause print one clear message (what, where, how to fix) and
exit with status 2, without a traceback.
"""

from __future__ import annotations

import errno
import os
import sqlite3
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import TaskID

from common.errors import TradingbotError
from common.layout import UserDir
from experiments.cli_journal import journal_app


def _flags_take_no_value() -> None:
    """Typer prints a value type after every option, flags too (``--live <bool>``), as if
    ``--live`` took a value; a flag's help shows the flag alone, as Click's does."""
    import typer.core

    shown = typer.core.TyperOption.display_type_rich

    def display_type_rich(self: typer.core.TyperOption, ctx: Any) -> str | None:
        return None if self.is_flag else shown(self, ctx)

    typer.core.TyperOption.display_type_rich = display_type_rich  # type: ignore[method-assign]


_flags_take_no_value()

app = typer.Typer(
    help="Tradingbot: regime detection and ML models for Freqtrade.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
data_app = typer.Typer(help="Import and check market data.", no_args_is_help=True)
features_app = typer.Typer(help="Build causal feature frames.", no_args_is_help=True)
app.add_typer(data_app, name="data")


def _print_version(value: bool) -> None:
    if value:
        import importlib.metadata

        typer.echo(f"tradingbot {importlib.metadata.version('tradingbot')}")
        raise typer.Exit()


@app.callback()
def _options(
    log_json: Annotated[
        bool,
        typer.Option(
            "--log-json",
            envvar="TRADINGBOT_LOG_JSON",
            help="Logs as JSON lines with correlation_id and run_id.",
        ),
    ] = False,
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_print_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """Tradingbot: regime detection and ML models for Freqtrade."""
    if log_json:
        from ml.observability import configure_json_logging

        configure_json_logging()


app.add_typer(features_app, name="features")

console = Console(highlight=False)
# Progress goes to stderr so that stdout stays clean for results (e.g. --json).
progress_console = Console(stderr=True, highlight=False)

Userdir = Annotated[
    Path,
    typer.Option(
        "--userdir",
        help="Directory holding all state of a run (data, caches, later MLflow and Optuna).",
        file_okay=False,
    ),
]
Pair = Annotated[str, typer.Option("--pair", help="Trading pair, e.g. BTC/USDT.")]
Timeframe = Annotated[str, typer.Option("--timeframe", help="Candle timeframe, e.g. 1h, 5m.")]
Exchange = Annotated[str, typer.Option("--exchange", help="Exchange name (data sub-directory).")]
# `train` and `tune`: the data options override the spec's [data]
SpecPair = Annotated[str | None, typer.Option("--pair", help="Override the spec's pair.")]
SpecTimeframe = Annotated[
    str | None, typer.Option("--timeframe", help="Override the spec's timeframe.")
]
SpecTimerange = Annotated[
    str | None,
    typer.Option("--timerange", help="Override the spec's timerange, YYYYMMDD-YYYYMMDD."),
]
AsJson = Annotated[
    bool, typer.Option("--json", help="Print the report as JSON instead of a table.")
]


def tracking_uri(userdir: Path) -> str:
    """MLflow's own MLFLOW_TRACKING_URI wins; else the embedded SQLite store of the user dir."""
    from ml.tracking import default_tracking_uri

    return os.environ.get("MLFLOW_TRACKING_URI") or default_tracking_uri(userdir)


@contextmanager
def progress_bar(description: str, total: int) -> Iterator[Callable[[str], None]]:
    """A progress bar on stderr; the yielded function advances it with a status text."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        console=progress_console,
        transient=False,
    ) as bar:
        task = bar.add_task(description, total=total)

        def advance(text: str) -> None:
            bar.update(task, advance=1, description=f"{description}: {text}")

        yield advance
        bar.update(task, completed=total)


@contextmanager
def stage(description: str) -> Iterator[None]:
    """Show a spinner while a step runs, then a tick."""
    with progress_console.status(description):
        yield
    progress_console.print(f"[green]done[/] {description}")


@data_app.command("import")
def data_import(
    path: Annotated[
        Path,
        typer.Argument(help="CryptoDataDownload/generic CSV (.gz), Freqtrade feather or json."),
    ],
    pair: Pair,
    timeframe: Timeframe,
    exchange: Exchange = "binance",
    userdir: Userdir = Path("user_data"),
    fill_gaps: Annotated[
        bool, typer.Option("--fill-gaps", help="Insert flat volume-0 candles into gaps (listed).")
    ] = False,
    repair: Annotated[
        bool, typer.Option("--repair", help="Repair bad ticks and OHLC violations (each listed).")
    ] = False,
    duplicates: Annotated[
        str, typer.Option("--duplicates", help="Duplicate policy: most-precise, first or last.")
    ] = "most-precise",
    bad_tick_threshold: Annotated[
        float, typer.Option(help="Flag prices with |log(price / neighbours' median)| above this.")
    ] = 0.5,
    as_json: AsJson = False,
) -> None:
    """Import candles into <userdir>/data/<exchange>/ in Freqtrade's feather layout."""
    from experiments.render import quality_report
    from features.data import DuplicatePolicy, ImportOptions, import_candles

    try:
        policy = DuplicatePolicy(duplicates)
    except ValueError:
        raise typer.BadParameter(
            f"{duplicates!r} is not one of most-precise, first, last", param_hint="--duplicates"
        ) from None
    options = ImportOptions(
        duplicate_policy=policy,
        fill_gaps=fill_gaps,
        repair=repair,
        bad_tick_log_threshold=bad_tick_threshold,
    )
    with stage(f"importing {path}"):
        result = import_candles(
            path,
            pair=pair,
            timeframe=timeframe,
            exchange=exchange,
            userdir=userdir,
            options=options,
        )
    if as_json:
        typer.echo(result.report.model_dump_json(indent=2))
        return
    quality_report(console, result.report, title=f"import report: {pair} {timeframe}")
    console.print(f"wrote {result.candles_path}\nwrote {result.report_path}")


@data_app.command("check")
def data_check(
    pair: Pair,
    timeframe: Timeframe,
    exchange: Exchange = "binance",
    userdir: Userdir = Path("user_data"),
    as_json: AsJson = False,
) -> None:
    """Print the quality report of candles already imported."""
    from experiments.render import quality_report
    from features.data import check_candles

    report = check_candles(pair=pair, timeframe=timeframe, exchange=exchange, userdir=userdir)
    if as_json:
        typer.echo(report.model_dump_json(indent=2))
        return
    quality_report(console, report, title=f"data check: {pair} {timeframe}")


@features_app.command("build")
def features_build(
    pair: Pair,
    timeframe: Timeframe,
    out: Annotated[Path, typer.Option("--out", help="Output parquet file.", dir_okay=False)],
    spec: Annotated[
        Path | None, typer.Option("--spec", help="Feature spec (TOML or JSON); default: built-in.")
    ] = None,
    exchange: Exchange = "binance",
    userdir: Userdir = Path("user_data"),
) -> None:
    """Build the feature frame of imported candles and write it as parquet."""
    from experiments.features import build_feature_file
    from experiments.render import feature_summary

    with stage(f"building features for {pair} {timeframe}"):
        result = build_feature_file(
            pair=pair,
            timeframe=timeframe,
            exchange=exchange,
            userdir=userdir,
            spec_path=spec,
            out=out,
        )
    feature_summary(console, result.meta, out=str(out), cache_hit=result.cache_hit)


def _require_data(userdir: Path, exchange: str, pairs: Sequence[str], timeframe: str) -> None:
    """Name a bad timeframe or missing candles (every missing pair at once) before the
    heavy imports (torch, MLflow, Freqtrade), so a typo is reported in about a second."""
    from features.data.store import require_pairs
    from features.timeframes import timeframe_to_seconds

    timeframe_to_seconds(timeframe)
    require_pairs(userdir, exchange, pairs, timeframe)


@app.command("train")
def train_command(
    spec: Annotated[
        Path,
        typer.Argument(help="Experiment spec (TOML), e.g. experiments/specs/btc_1h_lightgbm.toml."),
    ],
    pair: SpecPair = None,
    timeframe: SpecTimeframe = None,
    timerange: SpecTimerange = None,
    jobs: Annotated[
        int,
        typer.Option("--jobs", min=1, help="Whitelist pairs trained at once, in worker processes."),
    ] = 1,
    userdir: Userdir = Path("user_data"),
) -> None:
    """Train an experiment spec with walk-forward evaluation; record and register it in
    MLflow. A spec with a whitelist ([data] pairs) trains one model per pair
    (<spec>__<BASE>_<QUOTE>); --pair trains one of them."""
    from experiments.spec import load_experiment

    experiment = load_experiment(spec).with_overrides(
        pair=pair, timeframe=timeframe, timerange=timerange
    )
    data = experiment.data
    _require_data(userdir, data.exchange, data.whitelist, data.timeframe)
    from experiments.render import train_summary, whitelist_summary
    from experiments.train import progress_steps, train, train_whitelist

    steps = progress_steps(experiment)
    spec_text = spec.read_text(encoding="utf-8")
    if experiment.is_whitelist:
        label = f"training {experiment.name} ({len(data.whitelist)} pairs)"
        with progress_bar(label, steps * len(data.whitelist)) as advance:
            results = train_whitelist(
                experiment,
                userdir=userdir,
                tracking_uri=tracking_uri(userdir),
                spec_text=spec_text,
                progress=advance,
                jobs=jobs,
            )
        whitelist_summary(console, results, tracking_uri(userdir))
        return
    with progress_bar(f"training {experiment.name}", steps) as advance:
        result = train(
            experiment,
            userdir=userdir,
            tracking_uri=tracking_uri(userdir),
            spec_text=spec_text,
            progress=advance,
        )
    train_summary(console, result, tracking_uri(userdir))


@app.command("retrain")
def retrain_command(
    spec: Annotated[Path, typer.Argument(help="Experiment spec (TOML) of a registered model.")],
    userdir: Userdir = Path("user_data"),
) -> None:
    """Refit a spec on every candle imported so far, register it @challenger, and promote
    it only if it is not worse than the champion on candles neither has seen (for a
    timer: cron, systemd, the compose retrain service). Whitelist specs: every pair."""
    from experiments.spec import load_experiment

    experiment = load_experiment(spec)
    data = experiment.data
    _require_data(userdir, data.exchange, data.whitelist, data.timeframe)
    from experiments.retrain import RULE, retrain
    from experiments.train import progress_steps

    console.print(f"rule: {RULE}")
    specs = [experiment.for_pair(p) for p in data.whitelist]
    for one in specs:
        steps = progress_steps(one)
        with progress_bar(f"retraining {one.name}", steps) as advance:
            result = retrain(
                one, userdir=userdir, tracking_uri=tracking_uri(userdir), progress=advance
            )
        verdict = "[green]promoted[/]" if result.promoted else "[yellow]champion kept[/]"
        console.print(f"{one.name} v{result.trained.version}: {verdict} ({escape(result.reason)})")


@app.command("tune")
def tune_command(
    spec: Annotated[
        Path,
        typer.Argument(
            help="Experiment spec (TOML) with a \\[tune] section, e.g. experiments/specs/btc_1h_lightgbm.toml."
        ),
    ],
    trials: Annotated[
        int,
        typer.Option(
            "--trials", min=1, help="Trials the study should have in all (resumes count)."
        ),
    ] = 20,
    jobs: Annotated[
        int, typer.Option("--jobs", min=1, help="Worker processes on this machine.")
    ] = 1,
    study: Annotated[
        str | None,
        typer.Option("--study", help="Study name (default: the spec's name); same name = resume."),
    ] = None,
    storage: Annotated[
        str | None,
        typer.Option(
            "--storage",
            help="Optuna storage URL (sqlite:///..., postgresql://...); default: a journal file under the user dir.",
        ),
    ] = None,
    timeout: Annotated[
        float | None, typer.Option("--timeout", min=1, help="Start no new trial after S seconds.")
    ] = None,
    pair: SpecPair = None,
    timeframe: SpecTimeframe = None,
    timerange: SpecTimerange = None,
    userdir: Userdir = Path("user_data"),
) -> None:
    """Tune model and strategy parameters with Optuna on walk-forward folds; refit and register the best."""
    from experiments.spec import load_experiment

    experiment = load_experiment(spec).with_overrides(
        pair=pair, timeframe=timeframe, timerange=timerange
    )
    # the [tune] section is checked before the data (tune does both): errors in the spec first
    from experiments.render import tune_summary
    from experiments.tune import TuneRequest, tune

    request = TuneRequest(
        spec=experiment,
        userdir=userdir,
        tracking_uri=tracking_uri(userdir),
        trials=trials,
        jobs=jobs,
        study=study,
        storage=storage,
        timeout=timeout,
        spec_text=spec.read_text(encoding="utf-8"),
    )
    with tune_progress(request.study_name, trials) as progress:
        result = tune(request, progress=progress)
    tune_summary(console, result, tracking_uri(userdir))


@contextmanager
def tune_progress(
    study: str, trials: int, console: Console | None = None
) -> Iterator[Callable[..., None]]:
    """Trials done, pruned and failed, the best value so far, and the fold each running
    trial is in, on stderr. The study's name is printed once above the bar, and the
    columns are short, so the elapsed time stays on an 80-column line. The bar appears
    with the first report, after the spec and data checks have passed."""
    from contextlib import ExitStack

    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from experiments.tune import Counts

    out = console or progress_console
    with ExitStack() as stack:
        shown: list[tuple[Progress, TaskID]] = []

        def update(counts: Counts, best: float | None, running: str = "") -> None:
            if not shown:
                out.print(f"tuning study {study}: {trials} trials")
                bar = stack.enter_context(
                    Progress(
                        TimeElapsedColumn(),
                        BarColumn(bar_width=12),
                        TextColumn("{task.completed}/{task.total}"),
                        TextColumn("{task.fields[detail]}"),
                        console=out,
                    )
                )
                shown.append((bar, bar.add_task("tune", total=trials, detail="")))
            bar, task = shown[0]
            best_text = "-" if best is None else f"{best:.4g}"
            failed = f" failed {counts.failed}" if counts.failed else ""
            bar.update(
                task,
                completed=min(counts.finished, trials),
                detail=f"best {best_text} pruned {counts.pruned}{failed}"
                + (f" | {running}" if running else ""),
            )

        yield update


@app.command("promote")
def promote_command(
    name: Annotated[
        str,
        typer.Argument(
            help="Registered model name (the spec's name); a whitelist spec's name promotes "
            "each pair's model (<spec>__<BASE>_<QUOTE>)."
        ),
    ],
    reason: Annotated[str, typer.Option("--reason", help="Why: recorded with the decision.")],
    version: Annotated[
        int | None,
        typer.Option("--version", help="Model version to promote (default: the @challenger)."),
    ] = None,
    userdir: Userdir = Path("user_data"),
) -> None:
    """Move alias `champion` to a model version and record who, when, why and key metrics."""
    from ml import tracking
    from ml.registry import promote, whitelist_models

    client = tracking.configure(tracking_uri(userdir), userdir)
    names = whitelist_models(client, name)
    if len(names) > 1 and version is not None:
        raise typer.BadParameter(
            f"{name} is a whitelist of {len(names)} models: promote their challengers "
            "(no --version), or one model by its own name",
            param_hint="--version",
        )
    for model in names:
        decision = promote(client, model, version, reason)
        console.print(f"models:/{model}@champion -> version {decision['version']}")
        for key, value in decision.items():
            if key != "version":
                console.print(f"  {key}: {value}")


@app.command("ui")
def ui_command(
    userdir: Userdir = Path("user_data"),
    port: Annotated[int, typer.Option("--port", help="Port on 127.0.0.1.")] = 5000,
) -> None:
    """Serve the MLflow UI for this user dir's store on 127.0.0.1 (Ctrl-C stops it cleanly)."""
    from experiments.ui import serve_ui

    serve_ui(tracking_uri(userdir), userdir, port=port, say=console.print)


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
    from experiments.regimes import REGIME_STAGES, parse_day, run_regimes
    from experiments.render import regime_summary

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
    help="Exchange market snapshots for offline Freqtrade runs.", no_args_is_help=True
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


@app.command("backtest")
def backtest_command(
    spec: Annotated[
        Path | None,
        typer.Argument(
            help="Experiment spec: backtest its champion over its [backtest] timerange."
        ),
    ] = None,
    strategy: Annotated[
        str, typer.Option("--strategy", help="Strategy class in user_data/strategies.")
    ] = "RegimeStrategy",
    pair: Annotated[str | None, typer.Option("--pair", help="Pair (default: the spec's).")] = None,
    timeframe: Annotated[
        str | None, typer.Option("--timeframe", help="Timeframe (default: the spec's).")
    ] = None,
    timerange: Annotated[str | None, typer.Option("--timerange", help="YYYYMMDD-YYYYMMDD.")] = None,
    model: Annotated[
        str | None, typer.Option("--model", help="Registered model as NAME@alias or NAME/version.")
    ] = None,
    exchange: Exchange = "binance",
    no_cache: Annotated[
        bool, typer.Option("--no-cache", help="Run Freqtrade even if the result is cached.")
    ] = False,
    walk_forward: Annotated[
        bool,
        typer.Option(
            "--walk-forward",
            help="Use the model's fold bundles, each on its own out-of-sample window.",
        ),
    ] = False,
    pairs: Annotated[
        str | None,
        typer.Option(
            "--pairs",
            help="A whitelist, comma-separated (default: a whitelist spec's pairs); each "
            "pair is served by NAME__<BASE>_<QUOTE>@alias.",
        ),
    ] = None,
    max_open_trades: Annotated[
        int | None,
        typer.Option("--max-open-trades", min=1, help="Freqtrade's (default: one per pair)."),
    ] = None,
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
        timerange = timerange or experiment.backtest.timerange
        strategy = experiment.backtest.strategy if strategy == "RegimeStrategy" else strategy
    pair = pair or (whitelist[0] if whitelist else None)
    if pair is None or timeframe is None or (timerange is None and not walk_forward):
        raise typer.BadParameter("give a SPEC.toml, or --pair, --timeframe and --timerange")
    if len(set(whitelist)) != len(whitelist):
        raise typer.BadParameter("a pair is listed twice", param_hint="--pairs")
    _require_data(userdir, exchange, whitelist or [pair], timeframe)
    from experiments.backtest import BACKTEST_STAGES, backtest
    from experiments.render import backtest_summary

    market = f"{len(whitelist)} pairs" if len(whitelist) > 1 else pair
    with progress_bar(
        f"backtest {strategy} {market} {timeframe} {timerange or 'walk-forward'}",
        len(BACKTEST_STAGES),
    ) as advance:
        summary = backtest(
            strategy=strategy,
            pair=pair,
            timeframe=timeframe,
            exchange=exchange,
            timerange=timerange or "",
            model=model,
            userdir=userdir,
            tracking_uri=tracking_uri(userdir),
            use_cache=not no_cache,
            walk_forward=walk_forward,
            progress=advance,
            pairs=whitelist or None,
            max_open_trades=max_open_trades,
        )
    backtest_summary(console, summary)


risk_app = typer.Typer(
    help="The risk manager: circuit breaker and incidents.", no_args_is_help=True
)
app.add_typer(risk_app, name="risk")


def _risk(userdir: Path):  # type: ignore[no-untyped-def]
    from strategies.risk import RiskManager, RiskSettings

    return RiskManager(RiskSettings.from_env(os.environ, userdir))


@risk_app.command("status")
def risk_status(userdir: Userdir = Path("user_data")) -> None:
    """Circuit breaker, limits in force and the latest incidents."""
    manager = _risk(userdir)
    decision = manager.breaker_decision()
    state = "[green]clear[/]" if decision.allowed else f"[bold red]BLOCKING[/] ({decision.reason})"
    console.print(f"circuit breaker ({manager.settings.circuit_breaker_file}): {state}")
    settings = manager.settings.model_dump(exclude={"state_dir", "circuit_breaker_file", "db_path"})
    console.print("limits: " + ", ".join(f"{k}={v}" for k, v in settings.items()))
    for incident in manager.incidents(limit=10):
        console.print(
            f"  #{incident['id']} {incident['created_utc']} {incident['severity']} {incident['code']}: "
            f"{incident['description']}"
        )


@risk_app.command("enable")
def risk_enable(
    reason: Annotated[str, typer.Option("--reason", help="Why trading is paused.")],
    minutes: Annotated[float | None, typer.Option("--minutes", help="Pause for this long.")] = None,
    until: Annotated[
        str | None, typer.Option("--until", help="Pause until this UTC time (ISO 8601).")
    ] = None,
    userdir: Userdir = Path("user_data"),
) -> None:
    """Activate the circuit breaker: no new entries, no backtests."""
    from datetime import datetime

    if minutes is None and until is None:
        raise typer.BadParameter("give --minutes M or --until ISO")
    until_dt = None
    if until is not None:
        try:
            until_dt = datetime.fromisoformat(until.replace("Z", "+00:00"))
        except ValueError:
            raise typer.BadParameter(
                f"{until!r} is not an ISO 8601 time", param_hint="--until"
            ) from None
    breaker = _risk(userdir).enable_breaker(reason, minutes=minutes, until=until_dt)
    console.print(f"circuit breaker ACTIVE until {breaker.until_iso}: {breaker.reason}")


@risk_app.command("disable")
def risk_disable(userdir: Userdir = Path("user_data")) -> None:
    """Deactivate the circuit breaker."""
    _risk(userdir).disable_breaker()
    console.print("circuit breaker disabled")


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
    from experiments.render import scorecard_summary
    from experiments.scorecard import scorecard
    from experiments.spec import load_experiment

    experiment = load_experiment(spec)
    with stage(f"scorecard of {experiment.name} on {len(pairs)} market(s)"):
        card = scorecard(
            experiment,
            pairs,
            userdir=userdir,
            tracking_uri=tracking_uri(userdir),
            timeframe=timeframe,
            timerange=timerange,
            progress=lambda text: progress_console.print(f"  {text}"),
        )
    scorecard_summary(console, card)


@app.command("paper")
def paper_command(
    config: Annotated[Path, typer.Option("--config", help="Freqtrade config.")] = Path(
        "user_data/config.dryrun.json"
    ),
    strategy: Annotated[
        str | None, typer.Option("--strategy", help="Strategy class (default: the config's).")
    ] = None,
    model: Annotated[
        str | None,
        typer.Option("--model", help="Model URI, e.g. models:/btc_1h_hmm_lstm@champion."),
    ] = None,
    live: Annotated[
        bool, typer.Option("--live", help="Trade real money (also needs --i-understand-live-risk).")
    ] = False,
    i_understand_live_risk: Annotated[
        bool, typer.Option("--i-understand-live-risk", hidden=True)
    ] = False,
    replay: Annotated[
        bool,
        typer.Option(
            "--replay",
            help="Offline: Freqtrade's bot loop on the imported candles of --timerange, "
            "served one by one as if live; then compared with a backtest of them.",
        ),
    ] = False,
    timerange: Annotated[
        str | None, typer.Option("--timerange", help="YYYYMMDD-YYYYMMDD (with --replay).")
    ] = None,
    speed: Annotated[
        float | None,
        typer.Option(
            "--speed", min=1, help="Replayed seconds per second (default: as fast as it goes)."
        ),
    ] = None,
    userdir: Userdir = Path("user_data"),
) -> None:
    """Paper trading (dry-run) with Freqtrade's bot loop; live only with explicit opt-in."""
    import subprocess

    from experiments.paper import PaperError, trade_command

    if replay:
        if live:
            raise PaperError("--replay is paper trading: it cannot be combined with --live")
        if not timerange:
            raise typer.BadParameter("--replay needs --timerange", param_hint="--timerange")
        _paper_replay(config, userdir, timerange, strategy, model, speed)
        return
    if live and not i_understand_live_risk:
        raise PaperError("--live also needs --i-understand-live-risk: real orders, real money")
    command, environment = trade_command(
        config=config,
        userdir=userdir,
        strategy=strategy,
        model=model,
        live=live,
        tracking_uri=tracking_uri(userdir),
    )
    mode = "[bold red]LIVE[/]" if live else "dry-run (paper)"
    console.print(f"starting freqtrade trade in {mode}: {' '.join(command[1:])}")
    raise typer.Exit(subprocess.call(command, env=environment))


def _paper_replay(
    config: Path,
    userdir: Path,
    timerange: str,
    strategy: str | None,
    model: str | None,
    speed: float | None,
) -> None:
    from experiments.paper import replay_paper
    from experiments.render import replay_summary

    with stage(f"replaying {timerange} through Freqtrade's bot loop (dry-run, offline)"):
        result, summary, compared = replay_paper(
            config=config,
            userdir=userdir,
            timerange=timerange,
            strategy=strategy,
            model=model,
            tracking_uri=tracking_uri(userdir),
            speed=speed,
            quiet=True,
        )
    replay_summary(console, result, summary, compared)


@app.command("backup")
def backup_command(
    out: Annotated[
        Path | None,
        typer.Option("--out", help="Backup folder (default <userdir>/backups/<UTC time>)."),
    ] = None,
    userdir: Userdir = Path("user_data"),
) -> None:
    """Back up MLflow (database and artefacts), the registry, Optuna storage and backtest results."""
    from experiments.backup import backup

    with stage(f"backing up {userdir}"):
        target, manifest = backup(userdir, out)
    for component, paths in manifest.components.items():
        console.print(f"  {component}: {', '.join(paths)}")
    console.print(f"wrote {target} ({len(manifest.sha256)} files, sha256 in manifest.json)")


@app.command("restore")
def restore_command(
    backup_dir: Annotated[Path, typer.Argument(help="A folder written by tradingbot backup.")],
    only: Annotated[
        list[str] | None,
        typer.Option(
            "--only", help="mlflow, registry, optuna, backtests, data or strategies (repeatable)."
        ),
    ] = None,
    userdir: Userdir = Path("user_data"),
) -> None:
    """Restore a verified backup (every checksum is checked before anything changes)."""
    from experiments.backup import restore

    with stage(f"restoring {backup_dir} into {userdir}"):
        restored = restore(backup_dir, userdir, only)
    console.print("restored: " + ", ".join(restored))


@app.command("report")
def report_command(
    out: Annotated[
        Path | None, typer.Option("--out", help="Folder (default <userdir>/reports).")
    ] = None,
    userdir: Userdir = Path("user_data"),
) -> None:
    """Markdown and self-contained HTML: leaderboards, equity vs buy-and-hold, regimes, drawdown."""
    from experiments.report import build_report

    with stage("writing the report"):
        report = build_report(userdir, tracking_uri(userdir), out)
    console.print(f"wrote {report.markdown}\nwrote {report.html} ({len(report.images)} pictures)")


strategies_app = typer.Typer(
    help="The strategy registry (read from the strategy files).", no_args_is_help=True
)
idea_app = typer.Typer(
    help="Ideas, their experiments and the decisions about them.", no_args_is_help=True
)
app.add_typer(strategies_app, name="strategies")
app.add_typer(idea_app, name="idea")
app.add_typer(journal_app, name="journal")
REPO = Path(__file__).resolve().parents[1]


def _registry_db(userdir: Path) -> Path:
    return UserDir(userdir).registry_db


@strategies_app.command("sync")
def strategies_sync(
    docs: Annotated[
        Path | None,
        typer.Option(
            "--docs",
            help="Where STRATEGY_CATALOGUE.md and the JSON registry go (default: <userdir>/docs).",
        ),
    ] = None,
    userdir: Userdir = Path("user_data"),
) -> None:
    """Read user_data/strategies into the registry; write STRATEGY_CATALOGUE.md (in the user dir)."""
    from strategies.registry import sync

    docs = docs or UserDir(userdir).docs
    found = sync(REPO / "user_data" / "strategies", docs, _registry_db(userdir))
    console.print(f"{len(found)} strategies: " + ", ".join(s.name for s in found))
    console.print(f"wrote {docs / 'STRATEGY_CATALOGUE.md'}")


@idea_app.command("create")
def idea_create(
    title: Annotated[str, typer.Option("--title")],
    hypothesis: Annotated[
        str, typer.Option("--hypothesis", help="What you expect, and how you will know.")
    ],
    strategy: Annotated[str | None, typer.Option("--strategy")] = None,
    experiment: Annotated[
        str | None, typer.Option("--experiment", help="Spec name (MLflow experiment).")
    ] = None,
    userdir: Userdir = Path("user_data"),
) -> None:
    """Record an idea to test."""
    from experiments.ideas import create

    if experiment is not None:
        from ml import tracking

        client = tracking.configure(tracking_uri(userdir), userdir)
        if client.get_experiment_by_name(experiment) is None:
            known = sorted(e.name for e in client.search_experiments() if e.name != "Default")
            raise TradingbotError(
                f"no MLflow experiment named {experiment!r} in {userdir}",
                hint="an experiment is a spec's name once it has been trained; known: "
                + (", ".join(known) if known else "none yet"),
            )
    idea = create(
        _registry_db(userdir),
        title=title,
        hypothesis=hypothesis,
        strategy=strategy,
        experiment=experiment,
    )
    console.print(f"idea #{idea} recorded")


@idea_app.command("list")
def idea_list(userdir: Userdir = Path("user_data")) -> None:
    """Ideas and their status."""
    from experiments.ideas import list_ideas

    for idea in list_ideas(_registry_db(userdir)):
        line = f"#{idea['id']} [{idea['status']}] {idea['title']} ({idea['experiment'] or '-'})"
        console.print(escape(line))  # brackets are text here, not rich markup


@idea_app.command("decide")
def idea_decide(
    idea_id: Annotated[int, typer.Argument(help="Idea number.")],
    decision: Annotated[str, typer.Option("--decision", help="promote, reject or park")],
    rationale: Annotated[str, typer.Option("--rationale")],
    results: Annotated[
        Path | None,
        typer.Option(
            "--results", help="RESULTS.md to regenerate (default: <userdir>/docs/RESULTS.md)."
        ),
    ] = None,
    userdir: Userdir = Path("user_data"),
) -> None:
    """Promote, reject or park an idea; record why; regenerate RESULTS.md (in the user dir)."""
    from experiments.ideas import decide, write_results
    from ml import tracking

    results = results or UserDir(userdir).docs / "RESULTS.md"
    client = tracking.configure(tracking_uri(userdir), userdir)
    decide(_registry_db(userdir), idea_id, decision.lower(), rationale, client)  # type: ignore[arg-type]
    console.print(
        f"idea #{idea_id}: {decision.lower()}; wrote {write_results(_registry_db(userdir), client, results)}"
    )


@idea_app.command("results")
def idea_results(
    results: Annotated[
        Path | None,
        typer.Option("--results", help="RESULTS.md to write (default: <userdir>/docs/RESULTS.md)."),
    ] = None,
    userdir: Userdir = Path("user_data"),
) -> None:
    """Regenerate RESULTS.md from the ideas, decisions and MLflow (in the user dir)."""
    from experiments.ideas import write_results
    from ml import tracking

    results = results or UserDir(userdir).docs / "RESULTS.md"
    client = tracking.configure(tracking_uri(userdir), userdir)
    console.print(f"wrote {write_results(_registry_db(userdir), client, results)}")


@app.command()
def demo(
    userdir: Userdir = Path("user_data"),
    shared_data: Annotated[
        Path,
        typer.Option(
            "--shared-data",
            envvar="TRADINGBOT_SHARED_DATA",
            help="Folder with the real market data; a seeded synthetic market is used without it.",
        ),
    ] = Path("../shared/data"),
) -> None:
    """Run the main job on embedded defaults: data -> features -> training -> champion -> backtest."""
    from experiments.demo import run_demo

    run_demo(console, userdir=userdir, shared_data=shared_data, tracking_uri=tracking_uri(userdir))


def run(argv: Sequence[str] | None = None) -> int:
    """Run the CLI and return its exit status (testable without a subprocess)."""
    # Users run offline: MLflow telemetry stays off unless they opt in explicitly.
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    from ml.observability import bind, new_correlation_id

    try:
        with bind(correlation=new_correlation_id()):  # one id for everything this call logs
            result = app(
                args=list(argv) if argv is not None else None,
                standalone_mode=False,
                prog_name="tradingbot",
            )
    except TradingbotError as exc:
        typer.echo(f"error: {exc}", err=True)
        return exc.exit_code
    except (typer.Abort, KeyboardInterrupt):
        typer.echo("interrupted", err=True)
        return 130
    except typer.exceptions.TyperException as exc:  # usage errors: typer prints them itself
        show = getattr(exc, "show", None)
        if callable(show):
            show()
        return int(getattr(exc, "exit_code", 2))
    except Exception as exc:
        message = storage_problem(exc)
        if message is None:
            raise
        typer.echo(f"error: {message}", err=True)
        return 2
    return result if isinstance(result, int) else 0


WRITE_ERRNOS = frozenset({errno.EROFS, errno.EACCES, errno.EPERM, errno.ENOSPC, errno.EDQUOT})


def storage_problem(exc: BaseException) -> str | None:
    """One line for a failure of the disk under the user dir (read-only, no permission,
    full, not a directory), found anywhere in the exception's chain; None otherwise."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) and current.errno in WRITE_ERRNOS | {errno.ENOTDIR}:
            where = str(current.filename or "the user dir")
            if Path(where).name.startswith(".") and where.endswith(".tmp"):
                where = str(Path(where).parent)  # a temporary file beside the real target
            return (
                f"cannot write {where}: {current.strerror}\n"
                "  hint: the user dir and everything under it must be writable "
                "(fix its permissions or free space, or pick another with --userdir)"
            )
        text = str(current)
        if isinstance(current, sqlite3.Error) and (
            "readonly database" in text or "unable to open database" in text
        ):
            return (
                f"a database under the user dir cannot be written ({text})\n"
                "  hint: the user dir and everything under it must be writable "
                "(fix its permissions, or pick another with --userdir)"
            )
        current = current.__cause__ or current.__context__
    return None


def main() -> None:
    sys.exit(run(sys.argv[1:]))


if __name__ == "__main__":
    main()
