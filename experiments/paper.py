"""`tradingbot paper`: Freqtrade's own bot loop (`freqtrade trade`) in dry-run, by default.

Live trading needs both ``--live`` and ``--i-understand-live-risk`` and exchange
keys in the environment (``FREQTRADE__EXCHANGE__KEY``/``SECRET``): keys are never
read from files by this wrapper, never written, never printed. Needs network
(the exchange's prices); backtests do not. The exchange is asked for its time
first, so an unreachable one is a clear error within seconds (Freqtrade itself
logs "Could not load markets" and then waits forever).

Everything the bot writes stays in the user dir: Freqtrade runs with ``--userdir``,
finds the strategies installed there (with their tuned ``<Strategy>.json``), and
its trade database is ``<userdir>/tradesv3.dryrun.sqlite`` (``.live`` for live)
unless the config names an absolute or non-SQLite ``db_url``; a relative SQLite
path in the config is taken relative to the user dir, not the working directory.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

from common.errors import TradingbotError
from common.layout import UserDir
from strategies.runner import ensure_freqtrade_userdir

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


def database_url(settings: dict[str, object], userdir: Path, *, live: bool) -> str:
    """The trade database for this run (see the module doc): ``FREQTRADE__DB_URL`` of the
    environment (where a database password belongs), else the config's ``db_url``."""
    configured = os.environ.get(DB_URL_VARIABLE) or settings.get("db_url")
    default = UserDir(userdir.resolve()).trades_db(live=live)
    if not isinstance(configured, str) or not configured:
        return f"sqlite:///{default}"
    prefix = "sqlite:///"
    if not configured.startswith(prefix) or configured[len(prefix) :].startswith("/"):
        return configured  # absolute SQLite, in-memory or another database: as written
    relative = Path(configured[len(prefix) :])
    if relative.parts and relative.parts[0] == "user_data":  # the shipped config's spelling
        relative = Path(*relative.parts[1:])
    return f"{prefix}{userdir.resolve() / relative}"


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


def trade_command(
    *,
    config: Path,
    userdir: Path,
    strategy: str | None,
    model: str | None,
    live: bool,
    tracking_uri: str,
    check_exchange: bool = True,
) -> tuple[list[str], dict[str, str]]:
    """The ``freqtrade trade`` command line and environment for this run."""
    settings = load_config(config)
    if live and not all(os.environ.get(name) for name in KEY_VARIABLES):
        raise PaperError(
            "live trading needs FREQTRADE__EXCHANGE__KEY and FREQTRADE__EXCHANGE__SECRET in the environment"
        )
    if not live and settings.get("dry_run") is False:
        raise PaperError(
            f"{config} sets dry_run false: pass --live --i-understand-live-risk to trade for real"
        )
    ensure_freqtrade_userdir(userdir)  # also installs the strategies Freqtrade loads
    if check_exchange:
        check_exchange_reachable(settings)
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
    # the database URL (it may hold a password) travels in the environment, never on the
    # command line, which every user of the machine can read in the process list
    environment = {
        **os.environ,
        "MLFLOW_TRACKING_URI": tracking_uri,
        DB_URL_VARIABLE: database_url(settings, userdir, live=live),
    }
    environment.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    if model:
        environment["FREQTRADE__TRADINGBOT__MODEL_URI"] = model
    return command, environment


def backtest_model(model_uri: str) -> tuple[str, bool]:
    """``models:/NAME@alias`` -> ("NAME@alias", False); a whitelist template
    ``models:/NAME__{pair}@alias`` -> ("NAME@alias", True): what ``backtest`` takes."""
    name = model_uri.removeprefix("models:/")
    if "__{pair}" in name:
        return name.replace("__{pair}", ""), True
    return name, False


def _replay_model(model: str | None, settings: dict[str, Any]) -> str:
    """The model a replay serves: ``--model``, else the config's, as a ``models:/`` URI."""
    model_uri = model or settings.get("tradingbot", {}).get("model_uri")
    if not model_uri:
        raise PaperError("no model: pass --model models:/NAME@champion or set tradingbot.model_uri")
    return str(model_uri if model_uri.startswith("models:/") else f"models:/{model_uri}")


def _require_registered(
    model_uri: str, settings: dict[str, Any], userdir: Path, tracking_uri: str
) -> None:
    """Resolve the replay's model (every pair's, for a whitelist) before Freqtrade starts:
    a model that is not registered is named at once, not after the bot's start-up."""
    from experiments.served_models import serve
    from ml.tracking import configure

    name, per_pair = backtest_model(model_uri)
    pairs = tuple(settings.get("exchange", {}).get("pair_whitelist", []))
    serve(configure(tracking_uri, userdir), name, pairs if per_pair or len(pairs) > 1 else ())


def _same_backtest(
    settings: dict[str, Any],
    model_uri: str,
    strategy: str,
    timerange: str,
    userdir: Path,
    tracking_uri: str,
) -> Any:
    """The backtest a replay is compared with: same candles, strategy, model and slots."""
    from experiments.backtest import backtest

    pairs = list(settings.get("exchange", {}).get("pair_whitelist", []))
    name, per_pair = backtest_model(model_uri)
    summary = backtest(
        strategy=strategy,
        pair=pairs[0],
        pairs=pairs if per_pair or len(pairs) > 1 else None,
        timeframe=str(settings.get("timeframe", "1h")),
        exchange=str(settings.get("exchange", {}).get("name", "binance")),
        timerange=timerange,
        model=name,
        userdir=userdir,
        tracking_uri=tracking_uri,
        max_open_trades=int(settings.get("max_open_trades", 1)),
    )
    # the report charts backtests asked for themselves, not this comparison by default
    from ml import tracking

    client = tracking.configure(tracking_uri, userdir)
    client.set_tag(summary.run_id, tracking.PURPOSE_TAG, "paper replay comparison")
    return summary


def replay_paper(
    *,
    config: Path,
    userdir: Path,
    timerange: str,
    strategy: str | None,
    model: str | None,
    tracking_uri: str,
    speed: float | None = None,
    on_step: Any = None,
    quiet: bool = False,
) -> tuple[Any, Any, Any]:
    """Paper trading on a replayed market (``strategies.paper_replay``), then a backtest
    of the same candles, strategy and model, and the two compared trade by trade.
    Returns (replay result, backtest summary, comparison)."""
    from features.timerange import TimeRange
    from strategies.journal_sources import journal_database
    from strategies.paper_replay import replay_config, run_replay
    from strategies.replay_comparison import compare_trades
    from strategies.results import parse_result_zip

    window = TimeRange.parse(timerange)
    start, end = window.start, window.end
    if start is None or end is None:
        raise PaperError(
            f"--timerange {timerange!r} needs both ends for a replay", hint="e.g. 20210301-20210315"
        )
    settings = load_config(config)
    model_uri = _replay_model(model, settings)
    _require_registered(model_uri, settings, userdir, tracking_uri)
    strategy_name = strategy or settings.get("strategy", "RegimeStrategy")
    timeframe = str(settings.get("timeframe", "1h"))
    replay_settings = replay_config(
        settings,
        userdir=userdir,
        pairs=list(settings.get("exchange", {}).get("pair_whitelist", [])),
        timeframe=timeframe,
        strategy=strategy_name,
        model_uri=model_uri,
        tracking_uri=tracking_uri,
        database=UserDir(userdir.resolve()).replay_trades_db,
        fee=0.001,  # the backtests' fee, so the two runs pay the same
    )
    result = run_replay(
        replay_settings,
        userdir=userdir,
        exchange=str(settings.get("exchange", {}).get("name", "binance")),
        start=start,
        end=end,
        speed=speed,
        on_step=on_step,
        quiet=quiet,
    )
    summary = _same_backtest(settings, model_uri, strategy_name, timerange, userdir, tracking_uri)
    traded = parse_result_zip(summary.result_zip, strategy_name).trades
    journal_database(  # the replay's trades, as a paper bot's
        userdir, f"sqlite:///{result.database}", mode="paper", strategy=strategy_name,
        model_uri=model_uri, name=f"paper/{strategy_name}/replay-{timerange}",
    )  # fmt: skip
    return result, summary, compare_trades(result.trades, traded, timeframe, end)
