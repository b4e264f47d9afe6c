"""Mark-to-market equity of a Freqtrade backtest, and the same measures for the baselines.

Freqtrade's ``max_drawdown_account`` is measured on closed trades: a position that
falls 40% and recovers before it is sold shows no drawdown at all. To compare a
strategy with buy and hold on drawdown, the wallet is revalued at every candle's
close here, from the filled orders of the result (entries, additions, partial and
full exits, fees) and the candles the backtest ran on:

    equity_t = cash_t + sum_pairs amount_t * close_t

Then return, CAGR, max drawdown, Calmar, Sharpe (of per-candle log returns),
exposure and position changes come from that curve, exactly as
``ml.metrics.long_flat`` computes them for the baselines over the same candles and
fees, so the two tables compare like with like.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from ml.metrics import return_measures
from ml.sizing import DEFAULT_RISK_BUDGET, RiskBudget

FloatArray = NDArray[np.float64]


def equity_curve(
    trades: list[dict[str, Any]], candles: pd.DataFrame, starting_balance: float
) -> pd.DataFrame:
    """Per candle: ``date``, ``equity`` (at the close), ``position`` (the share of equity
    held). ``candles``: one pair's candles covering the backtest (``date``, ``close``).

    An order filled at a candle's open time counts from that candle's close on."""
    close = candles["close"].to_numpy(dtype="float64")
    equity, position = _wallet(
        trades, candles["date"], close[:, None], lambda _trade: 0, starting_balance
    )
    return pd.DataFrame(
        {"date": candles["date"].to_numpy(), "equity": equity, "position": position}
    )


def _wallet(
    trades: list[dict[str, Any]],
    dates: pd.Series | pd.Index,
    prices: FloatArray,
    column_of: Callable[[dict[str, Any]], int],
    starting_balance: float,
) -> tuple[FloatArray, FloatArray]:
    """Equity and the share of it held, at each close of ``prices`` (dates x pairs), of a
    wallet that fills every order of ``trades`` (Freqtrade's records; ``column_of`` names
    a trade's column of ``prices``). An order filled at a candle's open time counts from
    that candle's close on."""
    stamps = np.asarray(dates, dtype="datetime64[ns]").astype("int64") // 1_000_000
    fills = []
    for trade in trades:
        fee_open, fee_close = float(trade.get("fee_open", 0.0)), float(trade.get("fee_close", 0.0))
        for order in trade.get("orders", []):
            entry = bool(order["ft_is_entry"])
            fills.append(
                (
                    int(order["order_filled_timestamp"]),
                    column_of(trade),
                    1.0 if entry else -1.0,
                    float(order["amount"]),
                    float(order["cost"]),
                    fee_open if entry else fee_close,
                )
            )
    fills.sort(key=lambda fill: fill[0])
    cash, held = float(starting_balance), np.zeros(prices.shape[1])
    equity, position = np.empty(len(stamps)), np.empty(len(stamps))
    next_fill = 0
    for t in range(len(stamps)):
        while next_fill < len(fills) and fills[next_fill][0] <= stamps[t]:
            _, column, side, size, cost, fee = fills[next_fill]
            cash -= side * cost + cost * fee
            held[column] += side * size
            next_fill += 1
        invested = float(held @ prices[t])
        equity[t] = cash + invested
        position[t] = invested / equity[t] if equity[t] > 0 else 0.0
    return equity, position


def curve_metrics(
    equity: FloatArray, position: FloatArray, periods_per_year: float
) -> dict[str, float]:
    """Return, CAGR, max drawdown, Calmar, Sharpe, exposure and position changes of an
    equity curve (one value per candle, the first one the starting balance)."""
    values = np.asarray(equity, dtype="float64")
    log_returns = np.diff(np.log(values))
    measures = return_measures(log_returns, periods_per_year)
    years = len(log_returns) / periods_per_year
    held = np.asarray(position, dtype="float64")
    changes = float((np.abs(np.diff(np.r_[0.0, (held > 0.001).astype(float)])) > 0).sum())
    return {
        "total_return": measures["total_return"],
        "cagr": measures["cagr"],
        "max_drawdown": measures["max_drawdown"],
        "calmar": measures["calmar"],
        "sharpe": measures["sharpe"],
        "exposure": float(held.mean()) if len(held) else 0.0,
        "position_changes": changes,
        "changes_per_year": changes / years if years > 0 else 0.0,
    }


def comparison(
    trades: list[dict[str, Any]],
    candles: pd.DataFrame,
    timeframe: str,
    window: tuple[pd.Timestamp, pd.Timestamp],
    *,
    starting_balance: float,
    fee: float,
    risk_budget: RiskBudget = DEFAULT_RISK_BUDGET,
) -> dict[str, dict[str, float]]:
    """The strategy's mark-to-market measures next to buy and hold, the daily SMA50 rule,
    30-day momentum and the first two sized by risk (``ml.baselines.rule_positions``;
    ``risk_budget``: their target volatility and band, those of a sized strategy's
    ``[sizing]``) on the same candles (those in ``window``,
    [start, end)) and fee;
    every row has ``drawdown_vs_buy_hold``. ``candles`` may reach back before the
    window: the trend rules are computed with that history, then cut to the window."""
    from ml.baselines import rule_positions
    from ml.metrics import long_flat, periods_per_year

    per_year = periods_per_year(timeframe)
    inside = ((candles["date"] >= window[0]) & (candles["date"] < window[1])).to_numpy()
    traded = candles[inside].reset_index(drop=True)
    curve = equity_curve(trades, traded, starting_balance)
    rows = {
        "strategy": curve_metrics(
            curve["equity"].to_numpy(), curve["position"].to_numpy(), per_year
        )
    }
    returns = np.r_[np.nan, np.diff(np.log(traded["close"].to_numpy(dtype="float64")))]
    rules = {"always_long": np.ones(inside.sum())}
    sized = rule_positions(candles, timeframe, *risk_budget)
    rules.update({name: values[inside] for name, values in sized.items()})
    for name, positions in rules.items():
        rows[name] = long_flat(positions, returns, fee=fee, periods_per_year=per_year)
    return _with_drawdown_vs_hold(rows)


def _with_drawdown_vs_hold(rows: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
    """Each row's maximum drawdown as a multiple of buy and hold's (0 when hold has none)."""
    hold = rows["always_long"]["max_drawdown"]
    for values in rows.values():
        values["drawdown_vs_buy_hold"] = values["max_drawdown"] / hold if hold > 0 else 0.0
    return rows


def _rules_in_pair(
    candles: pd.DataFrame,
    timeframe: str,
    window: tuple[pd.Timestamp, pd.Timestamp],
    fee: float,
    risk_budget: RiskBudget,
) -> tuple[pd.Series, dict[str, pd.Series], dict[str, pd.Series]]:
    """One pair's closes inside ``window``, and each rule's equity and position there."""
    from ml.baselines import rule_positions
    from ml.metrics import equity_of

    inside = ((candles["date"] >= window[0]) & (candles["date"] < window[1])).to_numpy()
    traded = candles[inside]
    index = pd.DatetimeIndex(traded["date"])
    close = pd.Series(traded["close"].to_numpy(dtype="float64"), index=index)
    returns = np.r_[np.nan, np.diff(np.log(close.to_numpy()))]
    rules = {"always_long": np.ones(int(inside.sum()))}
    sized = rule_positions(candles, timeframe, *risk_budget)
    rules.update({n: v[inside] for n, v in sized.items()})
    equity = {
        name: pd.Series(equity_of(positions, returns, fee=fee), index=index)
        for name, positions in rules.items()
    }
    position = {
        name: pd.Series(np.nan_to_num(positions, nan=0.0), index=index)
        for name, positions in rules.items()
    }
    return close, equity, position


def portfolio_comparison(
    trades: list[dict[str, Any]],
    candles_by_pair: dict[str, pd.DataFrame],
    timeframe: str,
    window: tuple[pd.Timestamp, pd.Timestamp],
    *,
    starting_balance: float,
    fee: float,
    risk_budget: RiskBudget = DEFAULT_RISK_BUDGET,
) -> dict[str, dict[str, float]]:
    """:func:`comparison` for a whitelist: the strategy's wallet valued at every close
    (cash plus every pair's holding), beside each rule held in every pair with an equal
    share of the balance from the start (buy and hold, the daily SMA50 rule, 30-day
    momentum), on the same candles and fee. A pair without a candle at some close is
    valued at its last close."""
    from ml.metrics import periods_per_year

    per_year = periods_per_year(timeframe)
    closes, rule_equity, rule_position = {}, {}, {}
    for pair, candles in candles_by_pair.items():
        closes[pair], rule_equity[pair], rule_position[pair] = _rules_in_pair(
            candles, timeframe, window, fee, risk_budget
        )
    prices = pd.DataFrame(closes).sort_index().ffill().bfill()
    dates = prices.index
    # the strategy: every fill of every pair, valued at each close
    column = {pair: i for i, pair in enumerate(prices.columns)}
    equity, position = _wallet(
        trades,
        dates,
        prices.to_numpy(dtype="float64"),
        lambda trade: column[str(trade["pair"])],
        starting_balance,
    )
    rows = {"strategy": curve_metrics(equity, position, per_year)}
    for name in rule_equity[next(iter(rule_equity))]:
        curves = pd.DataFrame({p: rule_equity[p][name] for p in rule_equity}).reindex(dates)
        # equal shares from the start, never rebalanced; a pair not trading yet holds cash
        mean = curves.ffill().fillna(1.0).mean(axis=1).to_numpy()
        held_share = (
            pd.DataFrame({p: rule_position[p][name] for p in rule_position})
            .reindex(dates)
            .fillna(0.0)
            .mean(axis=1)
            .to_numpy()
        )
        rows[name] = curve_metrics(mean, held_share, per_year)
    return _with_drawdown_vs_hold(rows)
