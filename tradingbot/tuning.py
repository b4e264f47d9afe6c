"""`tradingbot tune` and its progress display."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import TaskID

from tradingbot._app import (
    ExecutorOption,
    SpecPair,
    SpecTimeframe,
    SpecTimerange,
    Userdir,
    app,
    compute,
    console,
    progress_console,
    run_context,
)

TuneSpec = Annotated[
    Path,
    typer.Argument(
        help="Experiment spec (TOML) with a [tune] section, e.g. experiments/specs/btc_1h_lightgbm.toml."
    ),
]
Trials = Annotated[
    int,
    typer.Option("--trials", min=1, help="Trials the study should have in all (resumes count)."),
]
Jobs = Annotated[
    int,
    typer.Option(
        "--jobs", min=1, help="Optuna workers: processes here, or tasks with --executor ray."
    ),
]
StudyName = Annotated[
    str | None,
    typer.Option("--study", help="Study name (default: the spec's name); same name = resume."),
]
Storage = Annotated[
    str | None,
    typer.Option(
        "--storage",
        help="Optuna storage URL (sqlite:///..., postgresql://...); default: a journal file under the user dir.",
    ),
]
Timeout = Annotated[
    float | None, typer.Option("--timeout", min=1, help="Start no new trial after S seconds.")
]


@app.command("tune")
def tune_command(
    spec: TuneSpec,
    trials: Trials = 20,
    jobs: Jobs = 1,
    study: StudyName = None,
    storage: Storage = None,
    timeout: Timeout = None,
    pair: SpecPair = None,
    timeframe: SpecTimeframe = None,
    timerange: SpecTimerange = None,
    executor: ExecutorOption = None,
    force: Annotated[
        str | None,
        typer.Option(
            "--force",
            metavar="REASON",
            help="Give the result alias @challenger and write its parameter file even when "
            "it does worse than buy and hold on the test window (REASON is recorded).",
        ),
    ] = None,
    userdir: Userdir = Path("user_data"),
) -> None:
    """Tune model and strategy parameters with Optuna on walk-forward folds; refit and register the best.

    The result becomes @challenger, and its strategy values the parameter file, only if
    it does at least as well as buy and hold on the test window (or with --force)."""
    from experiments.spec import load_experiment

    experiment = load_experiment(spec).with_overrides(
        pair=pair, timeframe=timeframe, timerange=timerange
    )
    # the [tune] section is checked before the data (tune does both): errors in the spec first
    from experiments.tuning.request import TuneRequest
    from experiments.tuning.study import tune
    from tradingbot.render import tune_summary

    context = run_context(userdir)
    request = TuneRequest(
        spec=experiment,
        context=context,
        trials=trials,
        jobs=jobs,
        study=study,
        storage=storage,
        timeout=timeout,
        spec_text=spec.read_text(encoding="utf-8"),
        force_reason=force,
    )
    with (
        compute(executor, jobs, context, experiment) as workers,
        tune_progress(request.study_name, trials) as progress,
    ):
        # on Ray: --jobs Optuna workers as the cluster's tasks (docs/TUNING.md)
        result = tune(request, progress=progress, executor=workers)
    tune_summary(console, result, request.context.tracking_uri)


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

    from experiments.tuning.request import Counts

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
