"""A replay's trades against a backtest's of the same candles, trade by trade."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import pandas as pd

from features.timeframes import timeframe_to_seconds

# Exits a backtest takes inside a candle (at its high or low), which a replay seeing one
# price per candle takes later or not at all.
INTRA_CANDLE_EXITS = frozenset({"roi", "stop_loss", "stoploss", "trailing_stop_loss"})


@dataclass(frozen=True)
class TradeComparison:
    """Replay against backtest, trade by trade (matched by pair and entry candle).

    ``unexplained``: differences intra-candle fills do not explain, i.e. a trade in one
    run while the other held no position in that pair, or an exit in another candle
    that the backtest did not take inside a candle. Empty when the runs agree."""

    matched: pd.DataFrame  # both; with the entry and exit price differences
    replay_only: pd.DataFrame
    backtest_only: pd.DataFrame
    unexplained: pd.DataFrame

    @property
    def share_matched(self) -> float:
        total = len(self.matched) + len(self.replay_only) + len(self.backtest_only)
        return 1.0 if total == 0 else len(self.matched) / total


TRADE_COLUMNS = (
    "pair",
    "open_date",
    "close_date",
    "open_rate",
    "close_rate",
    "is_open",
    "exit_reason",
)


def _keyed(frame: pd.DataFrame, step: pd.Timedelta) -> pd.DataFrame:
    """Trades with UTC dates and the candle each entered in (a run without trades: an
    empty frame of those columns; Freqtrade's has none at all)."""
    out = frame.copy() if len(frame.columns) else pd.DataFrame(columns=list(TRADE_COLUMNS))
    out["open_date"] = pd.to_datetime(out["open_date"], utc=True)
    out["close_date"] = pd.to_datetime(out["close_date"], utc=True)
    out["candle"] = out["open_date"].dt.floor(step)
    return out


def _held(frame: pd.DataFrame, pair: str, candle: pd.Timestamp, step: pd.Timedelta) -> bool:
    """Did ``frame``'s run hold ``pair`` at ``candle`` (so it could not enter there)?"""
    rows = frame[frame["pair"] == pair]
    closes = rows["close_date"].dt.floor(step)
    still_open = closes.isna()
    return bool(((rows["candle"] <= candle) & (still_open | (closes >= candle))).any())


def _differences(both: pd.DataFrame, step: pd.Timedelta, end: datetime) -> pd.DataFrame:
    """Entry price, exit candle and exit price differences of matched trades (exits of
    trades the backtest force-closed at its end are not compared: NaN)."""
    both = both.copy()
    both["entry_price_diff"] = both["open_rate_replay"] / both["open_rate_backtest"] - 1.0
    both["exit_candle_diff"] = (
        both["close_date_replay"].dt.floor(step) - both["close_date_backtest"].dt.floor(step)
    ) / step
    both["exit_price_diff"] = both["close_rate_replay"] / both["close_rate_backtest"] - 1.0
    forced = both["close_date_backtest"] >= pd.Timestamp(end) - step
    both.loc[forced, ["exit_candle_diff", "exit_price_diff"]] = float("nan")
    return both


def compare_trades(
    replay: pd.DataFrame, backtest: pd.DataFrame, timeframe: str, end: datetime
) -> TradeComparison:
    """Match trades by pair and the candle they entered in. Trades the backtest
    force-closed at its end are compared on their entry only. Unexplained: a trade only
    one run has although the other was free to enter, or an exit in another candle that
    no intra-candle exit (stop, ROI) explains."""
    step = pd.Timedelta(seconds=timeframe_to_seconds(timeframe))
    ours, theirs = _keyed(replay, step), _keyed(backtest, step)
    merged = ours.merge(
        theirs,
        on=["pair", "candle"],
        how="outer",
        suffixes=("_replay", "_backtest"),
        indicator=True,
    )
    both = _differences(merged[merged["_merge"] == "both"], step, end)
    replay_only = merged[merged["_merge"] == "left_only"].reset_index(drop=True)
    backtest_only = merged[merged["_merge"] == "right_only"].reset_index(drop=True)
    # an entry in the range's last candle fills at the candle after it, which one run may
    # have and the other not: a boundary, not a difference
    last_candle = pd.Timestamp(end) - step
    odd = [
        row
        for row in replay_only.itertuples(index=False)
        if pd.Timestamp(str(row.candle)) < last_candle
        and not _held(theirs, str(row.pair), pd.Timestamp(str(row.candle)), step)
    ] + [
        row
        for row in backtest_only.itertuples(index=False)
        if pd.Timestamp(str(row.candle)) < last_candle
        and not _held(ours, str(row.pair), pd.Timestamp(str(row.candle)), step)
    ]
    late = both[
        (both["exit_candle_diff"].fillna(0) != 0)
        & ~both["exit_reason_backtest"].isin(INTRA_CANDLE_EXITS)
    ]
    unexplained = pd.concat([pd.DataFrame(odd, columns=merged.columns), late], ignore_index=True)
    return TradeComparison(
        matched=both.drop(columns="_merge").reset_index(drop=True),
        replay_only=replay_only,
        backtest_only=backtest_only,
        unexplained=unexplained,
    )
