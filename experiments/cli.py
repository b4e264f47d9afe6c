"""The `tradingbot` command line: parse, call one library function, render.

Errors a user can cause print one clear message (what, where, how to fix) and
exit with status 2, without a traceback.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from features.errors import TradingbotError

app = typer.Typer(
    help="Tradingbot: regime detection and ML models for Freqtrade.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
data_app = typer.Typer(help="Import and check market data.", no_args_is_help=True)
features_app = typer.Typer(help="Build causal feature frames.", no_args_is_help=True)
app.add_typer(data_app, name="data")
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
AsJson = Annotated[
    bool, typer.Option("--json", help="Print the report as JSON instead of a table.")
]


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
    """Run the main job on embedded defaults: data -> features (more stages as they land)."""
    from experiments.demo import run_demo

    run_demo(console, userdir=userdir, shared_data=shared_data)


def run(argv: Sequence[str] | None = None) -> int:
    """Run the CLI and return its exit status (testable without a subprocess)."""
    try:
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
    return result if isinstance(result, int) else 0


def main() -> None:
    sys.exit(run(sys.argv[1:]))
