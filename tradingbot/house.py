"""`tradingbot ui`, `backup`, `restore`, `report`, `strategies`, `idea` and `demo`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from common.errors import TradingbotError
from common.layout import UserDir
from tradingbot._app import (
    Userdir,
    app,
    console,
    run_context,
    stage,
    tracking_client,
)


@app.command("ui")
def ui_command(
    userdir: Userdir = Path("user_data"),
    port: Annotated[int, typer.Option("--port", help="Port on 127.0.0.1.")] = 5000,
) -> None:
    """Serve the MLflow UI for this user dir's store on 127.0.0.1 (Ctrl-C stops it cleanly)."""
    from experiments.reporting.ui import serve_ui

    # links are long: never wrapped, so they stay clickable and copyable
    serve_ui(
        run_context(userdir),
        port=port,
        say=lambda text: console.print(text, soft_wrap=True),
    )


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
        target, manifest = backup(UserDir(userdir), out)
    for component, paths in manifest.components.items():
        console.print(f"  {component}: {', '.join(paths)}")
    console.print(f"wrote {target} ({len(manifest.sha256)} files, sha256 in manifest.json)")


@app.command("restore")
def restore_command(
    backup_dir: Annotated[Path, typer.Argument(help="A folder written by tradingbot backup.")],
    only: Annotated[
        list[str] | None,
        typer.Option(
            "--only",
            help="mlflow, registry, optuna, backtests, data, strategies, journal or trades (repeatable).",
        ),
    ] = None,
    userdir: Userdir = Path("user_data"),
) -> None:
    """Restore a verified backup (every checksum is checked before anything changes)."""
    from experiments.backup import restore

    with stage(f"restoring {backup_dir} into {userdir}"):
        restored = restore(backup_dir, UserDir(userdir), only)
    console.print("restored: " + ", ".join(restored))


@app.command("report")
def report_command(
    out: Annotated[
        Path | None, typer.Option("--out", help="Folder (default <userdir>/reports).")
    ] = None,
    backtest: Annotated[
        str | None,
        typer.Option(
            "--backtest",
            help="Run id (or its first characters) of the backtest to chart (default: the "
            "newest single-pair backtest that is not a paper replay's comparison).",
        ),
    ] = None,
    training: Annotated[
        str | None,
        typer.Option(
            "--training",
            help="Run id (or its first characters) of a training run: its out-of-sample "
            "regimes per market, drawn from the predictions it logged.",
        ),
    ] = None,
    userdir: Userdir = Path("user_data"),
) -> None:
    """Markdown and self-contained HTML: leaderboards, equity vs buy-and-hold, regimes, drawdown."""
    from experiments.reporting.report import build_report

    with stage("writing the report"):
        context = run_context(userdir)
        report = build_report(context.layout, context.tracking_uri, out, backtest, training)
    console.print(f"wrote {report.markdown}\nwrote {report.html} ({len(report.images)} pictures)")


strategies_app = typer.Typer(
    rich_markup_mode=None,
    help="The strategy registry (read from the strategy files).",
    no_args_is_help=True,
)


idea_app = typer.Typer(
    rich_markup_mode=None,
    help="Ideas, their experiments and the decisions about them.",
    no_args_is_help=True,
)


app.add_typer(strategies_app, name="strategies")


app.add_typer(idea_app, name="idea")


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
    """Read the user dir's strategies (shipped and your compositions) into the registry;
    write STRATEGY_CATALOGUE.md (in the user dir)."""
    from strategies.catalogue import sync
    from strategies.install import install_strategies

    layout = UserDir(userdir)
    docs = docs or layout.docs
    install_strategies(layout)  # the shipped files, and a class for each composition
    found = sync(layout.strategies, docs, layout.registry_db)
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
        client = tracking_client(userdir)
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

    results = results or UserDir(userdir).docs / "RESULTS.md"
    client = tracking_client(userdir)
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

    results = results or UserDir(userdir).docs / "RESULTS.md"
    client = tracking_client(userdir)
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
    from tradingbot.demo import run_demo

    run_demo(console, context=run_context(userdir), shared_data=shared_data)
