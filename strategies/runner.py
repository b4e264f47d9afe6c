"""Run the real Freqtrade backtesting engine offline, reproducibly, with our own cache.

Freqtrade runs in a subprocess (``python -m strategies.freqtrade_offline``) with
markets from the snapshot, its own result cache disabled (``--cache none``: it
ignores data and markets, so it can return stale results), and a config written
for the run. Our cache key covers what determines the result: the candles'
sha256, the market snapshot, the strategy file, the parameters and the model
version. A hit returns the stored result without running Freqtrade.
"""

from __future__ import annotations

import hashlib
import json
import shlex
import shutil
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, model_validator

from common.atomic import atomic_path, write_text_atomic
from common.errors import TradingbotError
from common.layout import FREQTRADE_SUBDIRS, UserDir
from features.candles import data_window
from features.data.store import load_candles
from strategies.composition import composition_error
from strategies.freqtrade_process import (
    OFFLINE_FREQTRADE,
    FreqtradeProcess,
    StartedFreqtrade,
)
from strategies.install import SHIPPED_STRATEGIES, install_strategies, shipped_dir
from strategies.markets import generate_snapshot, load_snapshot, snapshot_path, snapshot_sha256

REPO_STRATEGIES = SHIPPED_STRATEGIES
FREQAI_MODELS = shipped_dir("freqaimodels")
FREQAI_CONFIG = SHIPPED_STRATEGIES.parent / "config.freqai.json"


def freqai_section(**model_parameters: object) -> dict[str, object]:
    """The shipped FreqAI section (``user_data/config.freqai.json``), model parameters overridden."""
    section: dict[str, object] = json.loads(FREQAI_CONFIG.read_text(encoding="utf-8"))["freqai"]
    params = dict(section["model_training_parameters"])  # type: ignore[call-overload]
    section["model_training_parameters"] = {**params, **model_parameters}
    return section


class BacktestError(TradingbotError):
    """Freqtrade could not run the backtest."""


class BacktestRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    strategy: str = "RegimeStrategy"
    pair: str = "BTC/USDT"
    pairs: tuple[str, ...] = ()  # a whitelist (one backtest over all of them); else ``pair``
    timeframe: str = "1h"
    exchange: str = "binance"
    timerange: str
    model_uri: str | None = None
    model_version: str | None = None  # resolved version (part of the cache key)
    # a whitelist's exact version per pair (models:/NAME__BASE_QUOTE/3), handed to Freqtrade
    model_uris: dict[str, str] | None = None
    tracking_uri: str | None = None
    starting_balance: Decimal = Decimal("1000")
    max_open_trades: int = Field(default=1, ge=1)
    fee: float = Field(default=0.001, ge=0, lt=0.1)
    strategy_dir: Path = REPO_STRATEGIES
    predictions: Path | None = None  # stitched walk-forward predictions (see ml.serving)
    freqai: dict[str, object] | None = None  # a FreqAI config section: run FreqAI's own loop
    freqaimodel: str | None = None  # e.g. TradingbotLightGBM or FreqAI's LightGBMRegressor
    # walk-forward predictions of a whitelist, one stitched file per pair
    predictions_by_pair: dict[str, Path] | None = None

    @property
    def whitelist(self) -> tuple[str, ...]:
        return self.pairs or (self.pair,)

    @model_validator(mode="after")
    def _one_quote(self) -> BacktestRequest:
        quotes = sorted({pair.split("/")[-1].split(":")[0] for pair in self.whitelist})
        if len(quotes) > 1:
            raise ValueError(
                f"a whitelist trades from one stake currency; these pairs quote {', '.join(quotes)}"
            )
        return self


@dataclass(frozen=True)
class BacktestRun:
    key: str
    directory: Path
    result_zip: Path
    config: Path
    log: Path
    guard_report: Path
    cache_hit: bool
    inputs: dict[str, str]


def strategy_source_dir(request: BacktestRequest, layout: UserDir) -> Path:
    """Where the strategy's source is read: the user dir's installed copies (see
    ``strategies.install``) for the shipped strategies, else the request's folder."""
    if request.strategy_dir == REPO_STRATEGIES:
        return layout.strategies
    return request.strategy_dir


def _strategy_file(request: BacktestRequest, layout: UserDir) -> Path:
    folder = strategy_source_dir(request, layout)
    for path in sorted(folder.glob("*.py")):
        if f"class {request.strategy}(" in path.read_text(encoding="utf-8", errors="replace"):
            return path
    broken = composition_error(folder, request.strategy)
    if broken is not None:  # a composition that is there but invalid: say why
        raise broken
    raise BacktestError(
        f"strategy {request.strategy!r} not found in {folder}",
        hint="the shipped strategies (RegimeStrategy, RegimeRulesStrategy, "
        "RegimeAllocationStrategy) are installed into <userdir>/strategies/",
    )


def freqtrade_config(
    request: BacktestRequest, layout: UserDir, guard_report: Path
) -> dict[str, object]:
    quote = request.whitelist[0].split("/")[1].split(":")[0]
    settings: dict[str, object] = {"guard_report": str(guard_report)}
    if request.model_uri:
        settings["model_uri"] = request.model_uri
    if request.model_uris:
        settings["model_uris"] = dict(request.model_uris)
    if request.tracking_uri:
        settings["tracking_uri"] = request.tracking_uri
    if request.predictions is not None:
        settings["predictions"] = str(request.predictions.resolve())
    if request.predictions_by_pair:
        settings["predictions"] = {
            p: str(f.resolve()) for p, f in request.predictions_by_pair.items()
        }
    config: dict[str, object] = {
        "max_open_trades": request.max_open_trades,
        "stake_currency": quote,
        "stake_amount": "unlimited",
        "tradable_balance_ratio": 0.99,
        "dry_run": True,
        "dry_run_wallet": float(request.starting_balance),
        "timeframe": request.timeframe,
        "trading_mode": "spot",
        "margin_mode": "",
        "fee": request.fee,
        "dataformat_ohlcv": "feather",
        "user_data_dir": str(layout.root.resolve()),
        "exchange": {
            "name": request.exchange,
            "key": "",
            "secret": "",
            "pair_whitelist": list(request.whitelist),
            "pair_blacklist": [],
        },
        "pairlists": [{"method": "StaticPairList"}],
        "entry_pricing": {"price_side": "same", "use_order_book": False},
        "exit_pricing": {"price_side": "same", "use_order_book": False},
        "tradingbot": settings,
    }
    if request.freqai is not None:
        config["freqai"] = request.freqai
    return config


def tuned_params_file(request: BacktestRequest, layout: UserDir) -> Path | None:
    """The strategy's tuned parameter file: ``<userdir>/strategies/<Strategy>.json`` (where
    ``tradingbot tune`` writes it), else one next to the strategy's source; None: defaults."""
    for folder in (layout.strategies, strategy_source_dir(request, layout)):
        path = folder / f"{request.strategy}.json"
        if path.exists():
            return path
    return None


def strategy_dir_for_run(request: BacktestRequest, layout: UserDir, directory: Path) -> Path:
    """Where Freqtrade loads the strategy from: the strategy sources with the user dir's
    tuned parameter file beside them (Freqtrade reads ``<Strategy>.json`` next to the
    strategy's file only), so a backtest with any ``--userdir`` trades the tuned values."""
    sources = strategy_source_dir(request, layout)
    params = tuned_params_file(request, layout)
    if params is None or params.parent == sources:
        return sources
    folder = directory / "strategies"
    folder.mkdir(parents=True, exist_ok=True)
    for source in sources.glob("*.py"):  # strategies import one another
        shutil.copyfile(source, folder / source.name)
    shutil.copyfile(params, folder / params.name)
    return folder


def whitelist_candles(request: BacktestRequest, layout: UserDir) -> dict[str, pd.DataFrame]:
    """The candles of every pair ``request`` trades, read once for a whole backtest."""
    return {
        pair: load_candles(layout, request.exchange, pair, request.timeframe)
        for pair in request.whitelist
    }


def _data_sha256(request: BacktestRequest, candles: Mapping[str, pd.DataFrame]) -> str:
    """The candles' sha256: of the one pair, or of every pair's sha256 in whitelist order."""
    shas = [
        data_window(candles[pair], pair, request.timeframe).sha256 for pair in request.whitelist
    ]
    return shas[0] if not request.pairs else hashlib.sha256(",".join(shas).encode()).hexdigest()


def cache_key(
    request: BacktestRequest, layout: UserDir, candles: Mapping[str, pd.DataFrame]
) -> tuple[str, dict[str, str]]:
    snapshot = snapshot_path(layout, request.exchange)
    predictions = sorted((request.predictions_by_pair or {}).items())
    inputs = {
        "data_sha256": _data_sha256(request, candles),
        "markets_sha256": snapshot_sha256(snapshot),
        "strategy_sha256": hashlib.sha256(_strategy_file(request, layout).read_bytes()).hexdigest(),
        "strategy_params_sha256": _strategy_params_sha(request, layout),
        "predictions_sha256": hashlib.sha256(request.predictions.read_bytes()).hexdigest()
        if request.predictions is not None
        else ",".join(f"{p}:{hashlib.sha256(f.read_bytes()).hexdigest()}" for p, f in predictions)
        or "none",
        "request": request.model_dump_json(
            exclude={"strategy_dir", "tracking_uri", "predictions", "predictions_by_pair"}
        ),
    }
    return hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()[:20], inputs


def _strategy_params_sha(request: BacktestRequest, layout: UserDir) -> str:
    params = tuned_params_file(request, layout)
    return hashlib.sha256(params.read_bytes()).hexdigest() if params is not None else "defaults"


def ensure_freqtrade_userdir(layout: UserDir) -> None:
    """Freqtrade's folders under the user dir and the shipped strategies in its strategies/."""
    for sub in FREQTRADE_SUBDIRS:
        (layout.root / sub).mkdir(parents=True, exist_ok=True)
    install_strategies(layout)


def run_backtest(
    request: BacktestRequest,
    layout: UserDir,
    *,
    environment: Mapping[str, str],
    use_cache: bool = True,
    candles: Mapping[str, pd.DataFrame] | None = None,
    started: FreqtradeProcess | None = None,
) -> BacktestRun:
    """The real Freqtrade backtest of ``request``, offline; a cached result of the same
    inputs (every input hashed into the key) is returned as it is unless ``use_cache``
    is off. ``environment``: the caller's, which Freqtrade's process inherits (less what
    :func:`strategies.freqtrade_process.backtest_environment` leaves out). ``candles``:
    every traded pair's (:func:`whitelist_candles`), when the caller has read them
    already. ``started``: a Freqtrade process the caller started early (with the same
    ``environment``), which then runs the backtest; else one starts here."""
    ensure_freqtrade_userdir(layout)
    snapshot = _market_snapshot(request, layout)
    key, inputs = cache_key(request, layout, candles or whitelist_candles(request, layout))
    directory = layout.backtests / key
    run = BacktestRun(
        key=key,
        directory=directory,
        result_zip=directory / "result.zip",
        config=directory / "config.json",
        log=directory / "freqtrade.log",
        guard_report=directory / "guard.json",
        cache_hit=False,
        inputs=inputs,
    )
    if use_cache and run.result_zip.exists():
        return BacktestRun(**{**run.__dict__, "cache_hit": True})
    if directory.exists():
        shutil.rmtree(directory)
    export = directory / "freqtrade"
    export.mkdir(parents=True)
    strategy_path = strategy_dir_for_run(request, layout, directory)
    write_text_atomic(
        run.config, json.dumps(freqtrade_config(request, layout, run.guard_report), indent=2)
    )
    command = _command(request, layout, run, snapshot, strategy_path, export)
    write_text_atomic(run.directory / RERUN_SCRIPT, rerun_script(command))
    arguments = command[len(OFFLINE_FREQTRADE) :]
    if started is not None:
        completed = started.run(arguments)
    else:
        with StartedFreqtrade(environment) as started_here:
            completed = started_here.run(arguments)
    zips = sorted(export.glob("*.zip"))
    if completed.returncode != 0 or not zips:
        tail = "\n".join((completed.stdout + completed.stderr).strip().splitlines()[-15:])
        raise BacktestError(
            f"freqtrade backtesting failed (exit {completed.returncode}) for {request.strategy} "
            f"{request.pair} {request.timerange}:\n{tail}",
            hint=f"full log: {run.log}",
        )
    with atomic_path(run.result_zip) as tmp:  # the cache trusts only complete results
        store_result(zips[-1], tmp, run.result_zip.stem)
    return run


def _market_snapshot(request: BacktestRequest, layout: UserDir) -> Path:
    """The exchange's frozen markets, extended with pairs imported after it was taken."""
    snapshot = snapshot_path(layout, request.exchange)
    if not snapshot.exists():
        generate_snapshot(layout, request.exchange)
    else:
        known = load_snapshot(snapshot)
        new = [p for p in request.whitelist if p not in known]
        if new:
            generate_snapshot(layout, request.exchange, new)
    return snapshot


RERUN_SCRIPT = "rerun.sh"


def rerun_script(command: list[str]) -> str:
    """A shell script that runs the same Freqtrade backtest again, from the repository
    (every path in it explicit; the markets come from the frozen snapshot, offline).
    docs/BACKTESTING.md says how to run it in plain Freqtrade instead."""
    repository = Path(__file__).resolve().parents[1]
    # the new result zip lands beside the original (Freqtrade names its files by time)
    lines = [
        "#!/bin/sh",
        "# The Freqtrade backtest of this folder, again: same config, strategy, candles,",
        "# markets (a frozen snapshot, no network) and timerange. Written by tradingbot.",
        "set -e",
        f"cd {shlex.quote(str(repository))}",
        shlex.join(command),
    ]
    return "\n".join(lines) + "\n"


def _command(
    request: BacktestRequest,
    layout: UserDir,
    run: BacktestRun,
    snapshot: Path,
    strategy_path: Path,
    export: Path,
) -> list[str]:
    """``freqtrade backtesting`` through our offline wrapper, every path explicit."""
    command = [
        *OFFLINE_FREQTRADE,
        "--markets",
        str(snapshot),
        "backtesting",
        "--config",
        str(run.config),
        "--strategy",
        request.strategy,
        "--strategy-path",
        str(strategy_path),
        "--datadir",
        str(layout.data(request.exchange)),
        "--userdir",
        str(layout.root),
        "--timerange",
        request.timerange,
        "--cache",
        "none",
        "--export",
        "trades",
        "--backtest-directory",
        str(export),
        "--logfile",
        str(run.log),
    ]
    if request.freqaimodel:
        command += ["--freqaimodel", request.freqaimodel, "--freqaimodel-path", str(FREQAI_MODELS)]
    return command


def store_result(source: Path, target: Path, stem: str) -> None:
    """Copy Freqtrade's result zip, renaming its entries after the zip's own name.

    Freqtrade finds the files in a result zip by the zip's name (``result.zip`` holds
    ``result.json``, ``result_market_change.feather``, ...), so its own tools
    (``freqtrade backtesting-show --backtest-filename .../result.zip``) open ours."""
    with (
        zipfile.ZipFile(source) as original,
        zipfile.ZipFile(target, "w", compression=zipfile.ZIP_DEFLATED) as copy,
    ):
        for entry in original.infolist():
            copy.writestr(entry.filename.replace(source.stem, stem, 1), original.read(entry))
