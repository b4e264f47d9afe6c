"""`tradingbot paper`: Freqtrade's own bot loop (`freqtrade trade`) in dry-run, by default.

Live trading needs both ``--live`` and ``--i-understand-live-risk`` and exchange
keys in the environment (``FREQTRADE__EXCHANGE__KEY``/``SECRET``): keys are never
read from files by this wrapper, never written, never printed. Needs network
(the exchange's prices); backtests do not.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from features.errors import TradingbotError
from strategies.runner import ensure_freqtrade_userdir

KEY_VARIABLES = ("FREQTRADE__EXCHANGE__KEY", "FREQTRADE__EXCHANGE__SECRET")


class PaperError(TradingbotError):
    """The paper/live wrapper refused to start."""


def trade_command(
    *,
    config: Path,
    userdir: Path,
    strategy: str | None,
    model: str | None,
    live: bool,
    tracking_uri: str,
) -> tuple[list[str], dict[str, str]]:
    """The ``freqtrade trade`` command line and environment for this run."""
    if not config.exists():
        raise PaperError(
            f"{config}: config not found", hint="the default is user_data/config.dryrun.json"
        )
    try:
        settings = json.loads(config.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise PaperError(f"{config}: not valid JSON ({exc})") from exc
    exchange = settings.get("exchange", {})
    if exchange.get("key") or exchange.get("secret"):
        raise PaperError(
            f"{config}: exchange keys are written in the file",
            hint="remove them and export FREQTRADE__EXCHANGE__KEY / FREQTRADE__EXCHANGE__SECRET instead",
        )
    if live and not all(os.environ.get(name) for name in KEY_VARIABLES):
        raise PaperError(
            "live trading needs FREQTRADE__EXCHANGE__KEY and FREQTRADE__EXCHANGE__SECRET in the environment"
        )
    if not live and settings.get("dry_run") is False:
        raise PaperError(
            f"{config} sets dry_run false: pass --live --i-understand-live-risk to trade for real"
        )
    ensure_freqtrade_userdir(userdir)
    command = [
        sys.executable,
        "-m",
        "freqtrade",
        "trade",
        "--config",
        str(config),
        "--userdir",
        str(userdir),
    ]
    if not live:
        command.append("--dry-run")
    if strategy:
        command += ["--strategy", strategy]
    environment = {**os.environ, "MLFLOW_TRACKING_URI": tracking_uri}
    environment.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    if model:
        environment["FREQTRADE__TRADINGBOT__MODEL_URI"] = model
    return command, environment
