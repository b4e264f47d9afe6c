"""`tradingbot risk` and `paper` (paper trading, live with opt-in, replays)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from common.layout import UserDir
from tradingbot._app import (
    Userdir,
    app,
    console,
    run_context,
    stage,
)

risk_app = typer.Typer(
    rich_markup_mode=None,
    help="The risk manager: circuit breaker and incidents.",
    no_args_is_help=True,
)


app.add_typer(risk_app, name="risk")


def _risk(userdir: Path):  # type: ignore[no-untyped-def]
    from strategies.risk import RiskManager, RiskSettings

    return RiskManager(RiskSettings.from_env(os.environ, UserDir(userdir)))


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


LiveFlag = Annotated[
    bool, typer.Option("--live", help="Trade real money (also needs --i-understand-live-risk).")
]
ReplayFlag = Annotated[
    bool,
    typer.Option(
        "--replay",
        help="Offline: Freqtrade's bot loop on the imported candles of --timerange, "
        "served one by one as if live; then compared with a backtest of them.",
    ),
]
ReplaySpeed = Annotated[
    float | None,
    typer.Option(
        "--speed", min=1, help="Replayed seconds per second (default: as fast as it goes)."
    ),
]


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
    live: LiveFlag = False,
    i_understand_live_risk: Annotated[
        bool, typer.Option("--i-understand-live-risk", hidden=True)
    ] = False,
    replay: ReplayFlag = False,
    timerange: Annotated[
        str | None, typer.Option("--timerange", help="YYYYMMDD-YYYYMMDD (with --replay).")
    ] = None,
    speed: ReplaySpeed = None,
    userdir: Userdir = Path("user_data"),
) -> None:
    """Paper trading (dry-run) with Freqtrade's bot loop; live only with explicit opt-in."""
    import subprocess

    from experiments.paper import trade_command
    from strategies.trading_config import PaperError

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
        context=run_context(userdir),
        strategy=strategy,
        model=model,
        live=live,
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
    from tradingbot.render_backtest import replay_summary

    with stage(f"replaying {timerange} through Freqtrade's bot loop (dry-run, offline)"):
        result, summary, compared = replay_paper(
            config=config,
            context=run_context(userdir),
            timerange=timerange,
            strategy=strategy,
            model=model,
            speed=speed,
            quiet=True,
        )
    replay_summary(console, result, summary, compared)
