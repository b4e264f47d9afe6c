"""Paper trading on a replayed market: Freqtrade's own bot loop, offline.

``FreqtradeBot`` runs in dry-run, with its own trade database, against a local market
that serves the imported candles one by one as if they were live. At step ``t`` the
clock (every ``datetime.now`` in the process, moved by ``time_machine``) stands one
second into candle ``t + 1``: candles up to ``t`` are closed and served as OHLCV, and
the ticker and the top of the order book are candle ``t + 1``'s open, the price a
backtest fills a signal of candle ``t`` at. Markets come from the user dir's frozen
snapshot; nothing touches the network.

The bot starts with the history a backtest of the same timerange starts with (the
strategy's ``startup_candle_count`` candles before the first step), which then grows
as live; missing candles are filled as Freqtrade fills them (flat, volume 0) and get
a step of their own. With the same candles in, the adapter's incremental path gives
the batch path's predictions, so the two runs can be compared trade by trade.

So the whole live path runs: the adapter's incremental updates (one new candle per
step), model refresh (the registry is asked at every step, so a promotion is served
from the next candle), the risk manager with its circuit breaker, entries, exits and
the trade database. What differs from a backtest is what happens inside a candle:
the replay sees one price per candle (its open), a backtest also its high and low
(stop-loss and ROI exits inside the candle).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd

from common.atomic import write_text_atomic
from common.errors import TradingbotError
from common.layout import UserDir
from features.data import load_candles
from features.timeframes import timeframe_to_seconds
from ml.serving.prediction_log import log_path
from strategies.freqtrade_offline import install_frozen_markets
from strategies.freqtrade_process import FREQTRADE_ENVIRONMENT
from strategies.markets import generate_snapshot, load_snapshot, snapshot_path
from strategies.runner import ensure_freqtrade_userdir

# Candles of history served at each step: enough for every shipped strategy's startup
# and the adapter's feature window, bounded so a step costs the same late in a replay.
SERVED_HISTORY = 1500
PRICE_DECIMALS = 8  # strategies.markets.DEFAULT_PRECISION's price tick


class ReplayError(TradingbotError):
    """The replay could not start."""


@dataclass(frozen=True)
class ReplayResult:
    trades: pd.DataFrame  # pair, open_date, open_rate, close_date, close_rate, exit_reason, ...
    steps: int
    wall_seconds: float
    database: Path


class ReplayMarket:
    """Imported candles of each pair, served up to the current step."""

    def __init__(
        self,
        frames: dict[str, pd.DataFrame],
        timeframe: str,
        more: Callable[[str], pd.DataFrame] | None = None,
    ) -> None:
        self.timeframe = timeframe
        # Missing candles filled as Freqtrade fills them, live and in backtests (flat at the
        # last close, volume 0): the strategy sees the frames a backtest sees.
        self.frames: dict[str, pd.DataFrame] = {p: self._filled(f, p) for p, f in frames.items()}
        # other pairs the bot asks for (a model's reference pairs), loaded when first asked
        self.more = more
        self.step_seconds = timeframe_to_seconds(timeframe)
        self.closed_until: pd.Timestamp | None = None  # open time of the last closed candle
        self.history_from: pd.Timestamp | None = None  # first candle ever served

    def now(self) -> datetime:
        """One second into the forming candle."""
        assert self.closed_until is not None
        forming = self.closed_until + pd.Timedelta(seconds=self.step_seconds)
        return (forming + pd.Timedelta(seconds=1)).to_pydatetime()

    def _filled(self, frame: pd.DataFrame, pair: str) -> pd.DataFrame:
        from freqtrade.data.converter import ohlcv_fill_up_missing_data

        filled: pd.DataFrame = ohlcv_fill_up_missing_data(
            frame.reset_index(drop=True), self.timeframe, pair
        )
        return filled

    def frame(self, pair: str) -> pd.DataFrame:
        if pair not in self.frames and self.more is not None:
            self.frames[pair] = self._filled(self.more(pair), pair)
        return self.frames[pair]

    def _served(self, pair: str) -> int:
        """How many of ``pair``'s candles are closed at the current step."""
        assert self.closed_until is not None
        dates = self.frame(pair)["date"].to_numpy(dtype="datetime64[ns]")
        return int(dates.searchsorted(self.closed_until.to_datetime64(), side="right"))

    def closed(self, pair: str) -> pd.DataFrame:
        frame = self.frame(pair)
        upto = self._served(pair)
        first = max(0, upto - SERVED_HISTORY)
        if self.history_from is not None:  # the bot started with this much history
            dates = frame["date"].to_numpy(dtype="datetime64[ns]")
            first = max(first, int(dates.searchsorted(self.history_from.to_datetime64())))
        served = frame.iloc[first:upto].reset_index(drop=True)
        served["date"] = served["date"].astype("datetime64[ms, UTC]")
        return served

    def price(self, pair: str) -> float:
        """The forming candle's open (the last close when the data ends)."""
        frame = self.frame(pair)
        at = self._served(pair)
        column = "open" if at < len(frame) else "close"
        # on the snapshot's price grid (1e-8): Freqtrade rounds an entry's limit to it, and a
        # limit below an off-grid ask would never fill
        return round(float(frame[column].iloc[min(at, len(frame) - 1)]), PRICE_DECIMALS)

    def install(self, exchange: Any) -> None:
        """Serve this market through ``exchange`` (a Freqtrade ``Exchange``) instead of
        the network: OHLCV, tickers and the order book's top."""
        from freqtrade.enums import CandleType

        def refresh_latest_ohlcv(pair_list: list[Any], **_: object) -> dict[Any, pd.DataFrame]:
            out = {}
            for pair, timeframe, *rest in pair_list:
                key = (pair, timeframe, rest[0] if rest else CandleType.SPOT)
                out[key] = exchange._klines[key] = self.closed(pair)
            return out

        def fetch_ticker(pair: str) -> dict[str, Any]:
            price = self.price(pair)
            return {"symbol": pair, "bid": price, "ask": price, "last": price}

        def fetch_l2_order_book(pair: str, limit: int = 100) -> dict[str, Any]:
            price = self.price(pair)
            return {"symbol": pair, "bids": [[price, 1e12]], "asks": [[price, 1e12]]}

        def get_tickers(symbols: list[str] | None = None, **_: object) -> dict[str, Any]:
            return {p: fetch_ticker(p) for p in (symbols or list(self.frames))}

        exchange.refresh_latest_ohlcv = refresh_latest_ohlcv
        exchange.fetch_ticker = fetch_ticker
        exchange.fetch_l2_order_book = fetch_l2_order_book
        exchange.get_tickers = get_tickers
        exchange.fetch_bids_asks = get_tickers


# A replay is offline, talks to nobody and is compared with a backtest of the same
# candles: like that backtest (strategies.freqtrade_process.backtest_environment) it ignores a
# running bot's FREQTRADE__* settings (telegram, API server, keys, limits), which
# Freqtrade would merge into its config (a telegram token alone breaks it).


@contextlib.contextmanager
def _without_environment(prefixes: tuple[str, ...]) -> Iterator[None]:
    """The process environment without the variables starting with ``prefixes``, restored
    afterwards (Freqtrade reads them while it builds its configuration)."""
    hidden = {name: value for name, value in os.environ.items() if name.startswith(prefixes)}
    for name in hidden:
        del os.environ[name]
    try:
        yield
    finally:
        os.environ.update(hidden)


REPLAY_BOT = "replay"  # a replay's bot_name: the name of its prediction log


def replay_config(
    base: dict[str, Any],
    *,
    layout: UserDir,
    pairs: list[str],
    timeframe: str,
    strategy: str | None,
    model_uri: str | None,
    tracking_uri: str,
    database: Path,
    fee: float,
) -> dict[str, Any]:
    """The dry-run config of a replay: ``base`` (a Freqtrade config) with the replay's
    pairs, its own trade database, the backtests' fee and model refresh at every step."""
    config: dict[str, Any] = json.loads(json.dumps(base))
    settings = dict(config.get("tradingbot", {}))
    settings.update({"tracking_uri": tracking_uri, "refresh_minutes": 0})
    if model_uri:
        settings["model_uri"] = model_uri
    config.update(
        {
            "dry_run": True,
            "db_url": f"sqlite:///{database}",
            "user_data_dir": str(layout.root.resolve()),
            "timeframe": timeframe,
            "fee": fee,
            "initial_state": "running",
            "tradingbot": settings,
            # what it serves is recorded under this name (backtest --live-predictions replay)
            "bot_name": REPLAY_BOT,
        }
    )
    if strategy:
        config["strategy"] = strategy
    config.setdefault("exchange", {})["pair_whitelist"] = pairs
    config["exchange"]["enable_ws"] = False  # candles come from the replay, never a socket
    config["pairlists"] = [{"method": "StaticPairList"}]
    config.pop("telegram", None)
    config.pop("api_server", None)
    return config


def _prepare_userdir(
    config: dict[str, Any], layout: UserDir, exchange: str, pairs: list[str]
) -> Path:
    """Markets snapshot installed, an empty trade database, the replay's config written;
    returns the config's path."""
    ensure_freqtrade_userdir(layout)
    snapshot = snapshot_path(layout, exchange)
    if not snapshot.exists() or any(p not in load_snapshot(snapshot) for p in pairs):
        generate_snapshot(layout, exchange, pairs)
    install_frozen_markets(load_snapshot(snapshot))
    database = Path(str(config["db_url"]).removeprefix("sqlite:///"))
    database.parent.mkdir(parents=True, exist_ok=True)
    for stale in database.parent.glob(database.name + "*"):  # a replay starts empty
        stale.unlink()
    log_path(layout, REPLAY_BOT).unlink(missing_ok=True)  # and so does its prediction log
    path = database.parent / "replay.config.json"
    write_text_atomic(path, json.dumps(config, indent=2))
    return path


def _drive(
    bot: Any,
    market: ReplayMarket,
    opens: pd.Series,
    clock: Any,
    speed: float | None,
    on_step: Callable[[int, Any], None] | None,
) -> None:
    """One ``bot.process()`` per candle of ``opens``, with the clock just after it closed."""
    for step, opened in enumerate(opens):
        market.closed_until = pd.Timestamp(opened)
        clock.move_to(market.now())
        # rates are cached for minutes of real time: a step is a candle later
        bot.exchange._entry_rate_cache.clear()
        bot.exchange._exit_rate_cache.clear()
        bot.process()
        if on_step is not None:
            on_step(step, bot)
        if speed:
            time.sleep(market.step_seconds / speed)


def run_replay(
    config: dict[str, Any],
    *,
    layout: UserDir,
    exchange: str,
    start: datetime,
    end: datetime,
    speed: float | None = None,
    on_step: Callable[[int, Any], None] | None = None,
    quiet: bool = False,
) -> ReplayResult:
    """Run ``FreqtradeBot`` over the candles with open time in [start, end) of the
    config's pairs (see module doc). ``speed``: replayed seconds per wall second (None:
    as fast as the bot goes). ``on_step(step, bot)`` runs after each step's
    ``process()`` (a test promotes a model there). ``quiet``: Freqtrade's own log lines
    at WARNING and above only (it logs every candle otherwise)."""
    import time_machine
    from freqtrade.configuration import Configuration
    from freqtrade.enums import RunMode
    from freqtrade.freqtradebot import FreqtradeBot
    from freqtrade.persistence import Trade

    pairs = list(config["exchange"]["pair_whitelist"])
    timeframe = str(config["timeframe"])
    frames = {p: load_candles(layout, exchange, p, timeframe) for p in pairs}
    market = ReplayMarket(
        frames, timeframe, more=lambda pair: load_candles(layout, exchange, pair, timeframe)
    )
    first = market.frames[pairs[0]]  # a step for every candle, missing ones too
    steps = first[(first["date"] >= pd.Timestamp(start)) & (first["date"] < pd.Timestamp(end))]
    if steps.empty:
        raise ReplayError(
            f"no {pairs[0]} {timeframe} candles between {start:%Y-%m-%d} and {end:%Y-%m-%d}",
            hint="choose a --timerange inside the imported data (tradingbot data check)",
        )
    path = _prepare_userdir(config, layout, exchange, pairs)
    # Step t: candle t (open time in [start, end)) has just closed, as in a backtest of the
    # timerange, whose first signal is that of the candle opened at its start.
    market.closed_until = pd.Timestamp(steps["date"].iloc[0])
    started = time.perf_counter()
    with time_machine.travel(market.now(), tick=False) as clock:
        args = {"config": [str(path)], "user_data_dir": str(layout.root)}
        with _without_environment((FREQTRADE_ENVIRONMENT,)):
            bot = FreqtradeBot(Configuration(args, RunMode.DRY_RUN).get_config())
        if quiet:  # after Freqtrade's own logging set-up, which the bot's creation runs
            logging.getLogger("freqtrade").setLevel(logging.WARNING)
        market.install(bot.exchange)
        # The bot starts with the history a backtest of the timerange starts with: the
        # strategy's startup candles before the first step (then it grows, as live).
        startup = int(getattr(bot.strategy, "startup_candle_count", 0) or 0)
        market.history_from = market.closed_until - pd.Timedelta(
            seconds=market.step_seconds * startup
        )
        try:
            bot.startup()
            _drive(bot, market, steps["date"], clock, speed, on_step)
            trades = _trades(Trade.get_trades_proxy())
        finally:
            bot.cleanup()
    database = Path(str(config["db_url"]).removeprefix("sqlite:///"))
    return ReplayResult(trades, len(steps), time.perf_counter() - started, database)


def _trades(trades: list[Any]) -> pd.DataFrame:
    rows = [
        {
            "pair": t.pair,
            "open_date": pd.Timestamp(t.open_date_utc),
            "open_rate": float(t.open_rate),
            "close_date": pd.Timestamp(t.close_date_utc) if t.close_date else pd.NaT,
            "close_rate": float(t.close_rate) if t.close_rate else float("nan"),
            "exit_reason": t.exit_reason or "",
            "enter_tag": t.enter_tag or "",
            "is_open": bool(t.is_open),
            # Freqtrade's own, after fees; an open trade has none yet
            "profit_ratio": float("nan") if t.is_open else float(t.close_profit or 0.0),
            "profit_abs": float("nan") if t.is_open else float(t.close_profit_abs or 0.0),
        }
        for t in trades
    ]
    columns = [
        "pair",
        "open_date",
        "open_rate",
        "close_date",
        "close_rate",
        "exit_reason",
        "enter_tag",
        "is_open",
        "profit_ratio",
        "profit_abs",
    ]
    return (
        pd.DataFrame(rows, columns=columns)
        .sort_values(["open_date", "pair"])
        .reset_index(drop=True)
    )
