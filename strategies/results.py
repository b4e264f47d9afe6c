"""Freqtrade's backtest result zip, parsed into normalised metrics and per-regime results.

Freqtrade computes two Sharpe ratios: ``sharpe`` from per-trade returns
(``sharpe_trades`` here) and, under ``wallet_stats``, from the daily wallet
balance (``sharpe_wallet``). Both are kept, under names that say which is which.
Freqtrade annualises over any window; here its Sharpe, Sortino and CAGR are NaN over a
backtest shorter than :data:`ml.metrics.MIN_ANNUALISED_DAYS`, like ours. Its Calmar is
not kept (see :class:`BacktestMetrics`).
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import zipfile
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from common.errors import TradingbotError
from ml.metrics import long_enough_to_annualise

# what Freqtrade's Sharpe, Sortino and Calmar are when they cannot be computed
FREQTRADE_UNDEFINED_RATIO = -100.0


class ResultError(TradingbotError):
    """A result file that is not a Freqtrade backtest result."""


class WalletStats(BaseModel):
    model_config = ConfigDict(extra="allow")

    sharpe: float = 0.0
    sortino: float = 0.0
    calmar: float = 0.0
    max_drawdown_account: float = 0.0


class StrategyResult(BaseModel):
    """The fields of Freqtrade's per-strategy result that we rely on (others are kept)."""

    model_config = ConfigDict(extra="allow")

    strategy_name: str
    trades: list[dict[str, Any]]
    total_trades: int
    profit_total: float
    cagr: float = 0.0
    sharpe: float = 0.0
    sortino: float = 0.0
    calmar: float = 0.0
    max_drawdown_account: float = 0.0
    winrate: float = 0.0
    profit_factor: float = 0.0
    expectancy: float = 0.0
    holding_avg_s: float = 0.0
    market_change: float = 0.0
    backtest_start: datetime
    backtest_end: datetime
    stake_currency: str
    starting_balance: float
    final_balance: float
    wallet_stats: WalletStats | None = None


class BacktestMetrics(BaseModel):
    model_config = ConfigDict(extra="forbid")

    profit_total: float
    cagr: float
    sharpe_trades: float  # Freqtrade's "sharpe": from per-trade returns
    sharpe_wallet: float  # from the daily wallet balance ("Sharpe (daily wallet balance)")
    sortino: float
    # (no Calmar: Freqtrade's divides by the closed-trade drawdown, which hides every
    # drawdown inside an open trade; 208 on the demo's backtest. The marked-to-market
    # Calmar beside the baselines is the one shown and recorded: mtm.calmar.)
    max_drawdown_account: float
    trades: int
    winrate: float
    profit_factor: float
    expectancy: float
    exposure: float  # share of the backtest with at least one open trade
    avg_trade_duration_s: float
    market_change: float
    starting_balance: float
    final_balance: float
    start: datetime
    end: datetime


class ParsedResult(BaseModel):
    model_config = ConfigDict(arbitrary_types_allowed=True)

    metrics: BacktestMetrics
    trades: Any = Field(repr=False)  # pandas DataFrame of trades
    sha256: str


def _exposure(trades: pd.DataFrame, start: datetime, end: datetime) -> float:
    if trades.empty:
        return 0.0
    intervals = sorted(zip(trades["open_date"], trades["close_date"], strict=True))
    covered, current_start, current_end = 0.0, None, None
    for open_, close in intervals:
        if current_end is None or open_ > current_end:
            if current_end is not None and current_start is not None:
                covered += (current_end - current_start).total_seconds()
            current_start, current_end = open_, close
        else:
            current_end = max(current_end, close)
    if current_end is not None and current_start is not None:
        covered += (current_end - current_start).total_seconds()
    total = (pd.Timestamp(end) - pd.Timestamp(start)).total_seconds()
    return covered / total if total > 0 else 0.0


def parse_result_zip(path: Path, strategy: str) -> ParsedResult:
    payload = path.read_bytes()
    try:
        archive = zipfile.ZipFile(io.BytesIO(payload))
    except zipfile.BadZipFile as exc:
        raise ResultError(f"{path}: not a zip file") from exc
    # besides the result: the config and, for a tuned strategy, its parameter file
    extras = ("_config.json", f"_{strategy}.json")
    main = [n for n in archive.namelist() if n.endswith(".json") and not n.endswith(extras)]
    if len(main) != 1:
        raise ResultError(f"{path}: expected one result JSON, found {main}")
    document = json.loads(archive.read(main[0]))
    try:
        raw = document["strategy"][strategy]
    except KeyError:
        raise ResultError(f"{path}: no result for strategy {strategy!r}") from None
    result = StrategyResult.model_validate(raw)
    trades = pd.DataFrame(result.trades)
    if not trades.empty:
        trades["open_date"] = pd.to_datetime(trades["open_date"], utc=True)
        trades["close_date"] = pd.to_datetime(trades["close_date"], utc=True)
    start = (
        pd.Timestamp(result.backtest_start, tz="UTC")
        if result.backtest_start.tzinfo is None
        else pd.Timestamp(result.backtest_start)
    )
    end = (
        pd.Timestamp(result.backtest_end, tz="UTC")
        if result.backtest_end.tzinfo is None
        else pd.Timestamp(result.backtest_end)
    )
    wallet = result.wallet_stats or WalletStats()
    days = (end - start).total_seconds() / 86_400

    def annual(value: float) -> float:
        # -100.0 is Freqtrade's "could not compute" (no trades, no deviation), not a ratio
        if not long_enough_to_annualise(days) or value == FREQTRADE_UNDEFINED_RATIO:
            return math.nan
        return value

    metrics = BacktestMetrics(
        profit_total=result.profit_total,
        cagr=annual(result.cagr),
        sharpe_trades=annual(result.sharpe),
        sharpe_wallet=annual(wallet.sharpe),
        sortino=annual(result.sortino),
        max_drawdown_account=result.max_drawdown_account,
        trades=result.total_trades,
        winrate=result.winrate,
        profit_factor=result.profit_factor,
        expectancy=result.expectancy,
        exposure=_exposure(trades, start.to_pydatetime(), end.to_pydatetime()),
        avg_trade_duration_s=result.holding_avg_s,
        market_change=result.market_change,
        starting_balance=result.starting_balance,
        final_balance=result.final_balance,
        start=start.to_pydatetime(),
        end=end.to_pydatetime(),
    )
    return ParsedResult(metrics=metrics, trades=trades, sha256=hashlib.sha256(payload).hexdigest())


def per_regime(trades: pd.DataFrame) -> pd.DataFrame:
    """Trades, total and mean profit and winrate by the regime at entry (``<regime>|...`` tags)."""
    columns = ["regime", "trades", "profit_total_abs", "profit_mean", "winrate"]
    if trades.empty:
        return pd.DataFrame(columns=columns)
    tags = trades["enter_tag"].fillna("").astype(str)
    # a tag without "|" carries no regime (a strategy that reads no model)
    regime = tags.where(tags.str.contains("|", regex=False), "").str.split("|").str[0]
    regime = regime.replace("", "unknown")
    grouped = trades.assign(regime=regime, win=trades["profit_abs"] > 0).groupby("regime")
    table = pd.DataFrame(
        {
            "trades": grouped.size(),
            "profit_total_abs": grouped["profit_abs"].sum(),
            "profit_mean": grouped["profit_ratio"].mean(),
            "winrate": grouped["win"].mean(),
        }
    ).reset_index()
    return table[columns].sort_values("regime").reset_index(drop=True)
