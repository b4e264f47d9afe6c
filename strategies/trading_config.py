"""A Freqtrade config for paper or live trading, checked before the bot starts: no
credential written in it (keys come from the environment only), its trade database
under the user dir, and its exchange reachable within seconds (Freqtrade itself logs
"Could not load markets" and then waits forever)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from common.errors import TradingbotError
from common.layout import UserDir

REACHABILITY_TIMEOUT_S = 5.0

KEY_VARIABLES = ("FREQTRADE__EXCHANGE__KEY", "FREQTRADE__EXCHANGE__SECRET")
DB_URL_VARIABLE = "FREQTRADE__DB_URL"


# Field names that hold credentials anywhere in a Freqtrade config (exchange, ccxt_config
# and its headers, telegram, api_server, webhook, ...), compared in lower case without
# "_" and "-": these exactly, and any name containing one of SECRET_PARTS
# (X-MBX-APIKEY, API-KEY, jwt_secret_key, ws_token, ...).
SECRET_FIELDS = frozenset(
    {
        "key",
        "uid",
        "login",
        "twofa",
        "accountid",
        "walletaddress",
        "webhookurl",
    }
)
SECRET_PARTS = ("apikey", "secret", "password", "passwd", "token", "privatekey")
# sections whose every URL carries a credential (a webhook's URL is its token)
URL_SECRET_SECTIONS = frozenset({"webhook", "discord"})


def is_secret_field(name: object) -> bool:
    normal = str(name).replace("_", "").replace("-", "").lower()
    return normal in SECRET_FIELDS or any(part in normal for part in SECRET_PARTS)


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
        section = prefix.rstrip(".").rsplit(".", 1)[-1].lower()
        for key, item in value.items():
            where = f"{prefix}{key}"
            if item in ("", None):
                continue
            if is_secret_field(key) or (section in URL_SECRET_SECTIONS and "url" in str(key)):
                paths.append(where)
            elif str(key) == "db_url" and _has_password(item):
                paths.append(f"{where} (its password)")
            else:
                paths += _secret_paths(item, f"{where}.")
        return paths
    if isinstance(value, list):
        return [p for i, item in enumerate(value) for p in _secret_paths(item, f"{prefix}{i}.")]
    return []


def _has_password(url: object) -> bool:
    from sqlalchemy.engine import make_url

    try:
        return make_url(str(url)).password is not None
    except Exception:
        return False


def database_url(
    settings: dict[str, object], layout: UserDir, environment: Mapping[str, str], *, live: bool
) -> str:
    """The trade database of a bot: ``FREQTRADE__DB_URL`` of its ``environment`` (where a
    database password belongs), else the config's ``db_url``; by default
    ``<userdir>/tradesv3.dryrun.sqlite`` (``.live`` for live). A relative SQLite path is
    taken relative to the user dir, not the working directory."""
    configured = environment.get(DB_URL_VARIABLE) or settings.get("db_url")
    default = layout.trades_db(live=live).resolve()
    if not isinstance(configured, str) or not configured:
        return f"sqlite:///{default}"
    prefix = "sqlite:///"
    if not configured.startswith(prefix) or configured[len(prefix) :].startswith("/"):
        return configured  # absolute SQLite, in-memory or another database: as written
    relative = Path(configured[len(prefix) :])
    if relative.parts and relative.parts[0] == "user_data":  # the shipped config's spelling
        relative = Path(*relative.parts[1:])
    return f"{prefix}{layout.root.resolve() / relative}"


def check_exchange_reachable(
    settings: dict[str, object], *, timeout_s: float = REACHABILITY_TIMEOUT_S
) -> None:
    """Raise PaperError unless the config's exchange answers within ``timeout_s``."""
    import ccxt

    exchange_settings = settings.get("exchange")
    if not isinstance(exchange_settings, dict) or not exchange_settings.get("name"):
        raise PaperError(
            "the config has no exchange.name", hint='e.g. "exchange": {"name": "binance"}'
        )
    name = str(exchange_settings["name"]).lower()
    if not hasattr(ccxt, name):
        raise PaperError(f"exchange {name!r} is not known to ccxt", hint="check exchange.name")
    options = dict(exchange_settings.get("ccxt_config") or {})  # proxies etc.; never keys
    exchange = getattr(ccxt, name)({**options, "timeout": int(timeout_s * 1000)})
    try:
        if exchange.has.get("fetchTime"):
            exchange.fetch_time()
        else:
            exchange.load_markets()
    except Exception as exc:  # any failure means Freqtrade cannot start
        reason = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
        raise PaperError(
            f"exchange {name} is not reachable within {timeout_s:g} s ({reason})",
            hint="paper trading needs the exchange's live prices: check the network or proxy; "
            "backtests (tradingbot backtest) run offline",
        ) from exc


def load_config(config: Path) -> dict[str, Any]:
    """A Freqtrade config for paper or live trading, refused when missing, not JSON, or
    holding a credential (see :func:`secrets_in_config`)."""
    if not config.exists():
        raise PaperError(
            f"{config}: config not found", hint="the default is user_data/config.dryrun.json"
        )
    try:
        settings: dict[str, Any] = json.loads(config.read_text(encoding="utf-8"))
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
    return settings
