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


# Field names that hold credentials anywhere in a Freqtrade config (exchange, ccxt_config,
# ccxt_async_config, telegram, api_server, ...), compared without case and underscores.
SECRET_FIELDS = frozenset(
    {
        "key",
        "apikey",
        "secret",
        "password",
        "uid",
        "accountid",
        "walletaddress",
        "privatekey",
        "token",
        "jwtsecretkey",
        "wstoken",
        "webhookurl",
    }
)


class PaperError(TradingbotError):
    """The paper/live wrapper refused to start."""


def secrets_in_config(path: Path, settings: object, *, depth: int = 0) -> list[str]:
    """``file: dotted.path`` of every non-empty secret field in a config and in the
    files it pulls in through ``add_config_files`` (resolved as Freqtrade does,
    against the including file's directory). Values are never part of the answer."""
    found = [f"{path}: {where}" for where in _secret_paths(settings, "")]
    includes = settings.get("add_config_files", []) if isinstance(settings, dict) else []
    for name in includes if isinstance(includes, list) else []:
        included = (path.resolve().parent / str(name)).resolve()
        if depth > 10 or not included.exists():
            continue  # Freqtrade itself reports a missing or circular file
        try:
            nested = json.loads(included.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise PaperError(
                f"{included} (from add_config_files in {path}): not valid JSON ({exc})"
            ) from exc
        found += secrets_in_config(included, nested, depth=depth + 1)
    return found


def _secret_paths(value: object, prefix: str) -> list[str]:
    if isinstance(value, dict):
        paths = []
        for key, item in value.items():
            where = f"{prefix}{key}"
            if str(key).replace("_", "").lower() in SECRET_FIELDS and item not in ("", None):
                paths.append(where)
            else:
                paths += _secret_paths(item, f"{where}.")
        return paths
    if isinstance(value, list):
        return [p for i, item in enumerate(value) for p in _secret_paths(item, f"{prefix}{i}.")]
    return []


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
    written = secrets_in_config(config, settings)
    if written:
        raise PaperError(
            f"secrets are written in the config: {', '.join(written)}",
            hint="remove them (keep empty strings) and export them instead, e.g. "
            "FREQTRADE__EXCHANGE__KEY / FREQTRADE__EXCHANGE__SECRET; "
            "keys come from the environment only",
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
