"""Shared by every command: the Typer app, the console, option types, progress display."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console

from common.context import RunContext
from common.layout import UserDir

if TYPE_CHECKING:
    from mlflow import MlflowClient

    from common.executors import Executor
    from experiments.spec import ExperimentSpec


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
    rich_markup_mode=None,
    help="Tradingbot: regime detection and ML models for Freqtrade.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


data_app = typer.Typer(
    rich_markup_mode=None, help="Import and check market data.", no_args_is_help=True
)


features_app = typer.Typer(
    rich_markup_mode=None, help="Build causal feature frames.", no_args_is_help=True
)


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


# where independent jobs run (whitelist pairs, scorecard markets): common.executors
Jobs = Annotated[
    int | None,
    typer.Option(
        "--jobs",
        min=1,
        help="Jobs at once (pairs, markets): worker processes, or Ray workers with --executor ray. "
        "Default: the spec's [compute] jobs, else 1.",
    ),
]


ExecutorOption = Annotated[
    str | None,
    typer.Option(
        "--executor",
        help="local (processes on this machine) or ray (RAY_ADDRESS's cluster, else a local one). "
        "Default: the spec's [compute] executor; ray when RAY_ADDRESS is set; else local.",
    ),
]


# what a local pool's workers start with (see experiments/preload.py)
TRAINING_WORKER: tuple[str, ...] = ("experiments.preload",)


@contextmanager
def compute(
    executor: str | None,
    jobs: int | None,
    context: RunContext,
    spec: ExperimentSpec,
    preload: tuple[str, ...] = TRAINING_WORKER,
) -> Iterator[Executor]:
    """The executor a command asked for (options, then the spec's ``[compute]``, then
    ``RAY_ADDRESS``), released when the command ends; a local pool's workers start with
    the modules ``preload`` names."""
    from common.executors import EXECUTOR_NAMES, executor_for
    from ml.models import forecaster_class

    if executor is not None and executor not in EXECUTOR_NAMES:
        raise typer.BadParameter(
            f"{executor!r}: choose {' or '.join(EXECUTOR_NAMES)}", param_hint="--executor"
        )
    section = spec.compute
    chosen = executor_for(
        executor,
        jobs or (section.jobs if section else None) or 1,
        context.environment,
        spec_executor=section.executor if section else None,
        # torch models' jobs ask a Ray cluster for a GPU where it has one
        gpu_jobs=forecaster_class(spec.model.kind).uses_torch,
        preload=preload,
    )
    with chosen:
        yield chosen


def run_context(userdir: Path) -> RunContext:
    """The one place a command reads the process environment: the run context of
    ``userdir`` (MLflow's own MLFLOW_TRACKING_URI wins over the user dir's store)."""
    return RunContext.resolve(userdir, os.environ)


def tracking_uri(userdir: Path) -> str:
    """The tracking URI of :func:`run_context`."""
    return run_context(userdir).tracking_uri


def tracking_client(userdir: Path) -> MlflowClient:
    """An MLflow client on the store of :func:`run_context` (created when new)."""
    from ml import tracking

    context = run_context(userdir)
    return tracking.configure(context.tracking_uri, context.layout)


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


def _require_data(userdir: Path, exchange: str, pairs: Sequence[str], timeframe: str) -> None:
    """Name a bad timeframe or missing candles (every missing pair at once) before the
    heavy imports (torch, MLflow, Freqtrade), so a typo is reported in about a second."""
    from features.data.importer import check_pair
    from features.data.store import require_pairs
    from features.timeframes import timeframe_to_seconds

    timeframe_to_seconds(timeframe)
    for pair in pairs:  # a malformed pair is named as such, not as candles to import
        check_pair(pair)
    require_pairs(UserDir(userdir), exchange, pairs, timeframe)
