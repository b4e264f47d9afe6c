"""A candle-level replay of a strategy's rules, fast enough to score thousands of tuning trials.

Tuning scores strategy parameters (entry/exit thresholds, stoploss, ROI, trailing
stop) on walk-forward predictions. Running the real Freqtrade engine for every
trial would cost seconds each, so trials are scored by this replay, which follows
Freqtrade's backtesting conventions for one pair and one open trade:

* a signal on candle ``t`` (decided at its close) fills at the open of ``t + 1``;
  an entry signal is ignored while the same candle also signals an exit, and an
  exit signal while it also signals an entry;
* while in a trade, each candle checks, in this order: a take-profit rung (a
  partial exit at the open), the exit signal of the previous candle or the time
  stop (exit at the open), the stop against the low (the stoploss, or the ATR stop
  set at the signal candle; exit at the stop, or at the open when the candle opens
  below it), the ROI table against the high (exit at the ROI price including fees,
  or at the open when it opens above);
* a trailing stop moves up with the highs of *completed* candles (a simplification:
  Freqtrade also moves it inside the candle);
* fees are charged per side on the stake; a trade still open at the end is closed
  at the last close.

It is an approximation used to rank trials; the tuned result is judged by the real
engine (``tradingbot backtest``). The signals come from the strategy's composition
(:mod:`strategies.composition`), the same block code the Freqtrade strategy runs:
only composed strategies can have their parameters tuned.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from common.errors import SpecError
from features.timeframes import timeframe_to_seconds
from ml.metrics import periods_per_year, return_measures
from strategies.composition import (
    COMPOSITIONS_DIR,
    Composition,
    compositions_in,
    load_composition,
)
from strategies.install import SHIPPED_STRATEGIES
from strategies.params import StrategyParams
from strategies.position_rules import Held, RuleSet

BoolArray = NDArray[np.bool_]


# -- signals ------------------------------------------------------------------------------


def analysed_frame(candles: pd.DataFrame, predictions: pd.DataFrame) -> pd.DataFrame:
    """``candles`` with the columns the adapter adds (``&-p_up``, ``&-prediction``,
    ``&-regime``, ``&-reason``, ``do_predict``) from ``predictions`` (indexed like
    ``candles``; candles without a prediction are not trusted)."""
    frame = candles.copy()
    for column in ("p_up", "prediction", "regime", "reason"):
        if column in predictions:
            frame[f"&-{column}"] = predictions[column].reindex(frame.index)
    if "prediction" not in predictions and "p_up" not in predictions:
        return frame  # a strategy without a model: the rows only say what to replay
    prediction = predictions["prediction"] if "prediction" in predictions else predictions["p_up"]
    trusted = np.isfinite(prediction.reindex(frame.index).to_numpy(dtype="float64"))
    frame["do_predict"] = trusted.astype("int64")
    return frame


def shipped_composition(strategy: str) -> Composition:
    """The composition of a shipped composed strategy (tuning replays only those)."""
    directory = SHIPPED_STRATEGIES
    path = directory / COMPOSITIONS_DIR / f"{strategy}.toml"
    if not path.exists():
        known = sorted(compositions_in(directory))
        raise SpecError(
            f"strategy {strategy!r} is not composed from blocks, so tuning cannot replay it",
            hint=f"set [backtest] strategy to one of {known}, or tune model parameters with a "
            "forecast objective (log_loss, accuracy, brier, rmse, rank_ic)",
        )
    return load_composition(path)


# -- the replay ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ReplayResult:
    # entry_index, exit_index (candles from the first replayed row), entry_price, exit_price,
    # exit_reason, partial_exits, profit_ratio; entry_date and exit_date when candles have dates
    trades: pd.DataFrame
    candle_log_returns: NDArray[np.float64]  # per candle, marked to market, fees included
    metrics: dict[str, float]


@dataclass
class _Position:
    entry_index: int
    entry_price: float
    stop: float
    peak: float
    units: float  # of the asset held, per unit of wallet at entry
    cost: float  # the entry's value with its fee, as Freqtrade counts it (profit ratio)
    proceeds: float = 0.0  # wallet received from exits so far
    exits: int = 0  # partial exits done
    sized_for: float = 1.0  # vol_target: the scale it was last sized for
    sized_at: int = 0  # ... at this candle
    resizes: int = 0  # vol_target adjustments done


def replay(
    candles: pd.DataFrame,
    predictions: pd.DataFrame,
    params: StrategyParams,
    *,
    fee: float,
    timeframe: str,
    composition: Composition | None = None,
) -> ReplayResult:
    """Replay ``params.strategy`` (its composition, the same block code Freqtrade runs)
    over the rows of ``predictions`` (contiguous; a strategy without a model needs no
    columns); ``candles`` (open/high/low/close/volume, in time order) may start earlier,
    so indicators have their history. See the module docstring for the rules."""
    composition = composition or params.composition or shipped_composition(params.strategy)
    values = {p.name: params.value(p.name) for p in composition.params()}
    history = candles.loc[: predictions.index[-1]] if len(predictions) else candles.iloc[:0]
    frame = analysed_frame(history, predictions)
    signals = composition.signals(frame, values)
    first = len(history.loc[: predictions.index[0]]) - 1 if len(predictions) else 0
    rows = frame.iloc[first:]
    rules = RuleSet(composition.position_rules(), values)
    columns = {name: column[first:].tolist() for name, column in rules.columns(frame).items()}
    return _simulate(
        rows,
        signals.enter[first:],
        signals.exit[first:],
        _Rules(rules, columns),
        params,
        fee=fee,
        timeframe=timeframe,
    )


@dataclass(frozen=True)
class _Rules:
    """The composition's position rules, and the columns they computed (from the first
    replayed row)."""

    ruleset: RuleSet
    columns: dict[str, list[float]]

    def row(self, i: int) -> dict[str, float]:
        return {name: column[i] for name, column in self.columns.items()}


@dataclass
class _Book:
    """The replayed wallet: cash, the open position, and the trades closed so far."""

    fee: float
    cash: float = 1.0
    position: _Position | None = None
    trades: list[tuple[int, int, float, float, str, int, int, float]] = field(default_factory=list)

    def enter(self, i: int, price: float, stop: float, share: float = 1.0) -> None:
        """Buy with ``share`` of the cash (``vol_target``'s scale; all of it otherwise)."""
        spent = self.cash * share
        units = spent * (1.0 - self.fee) / price
        cost = units * price * (1.0 + self.fee)  # as Freqtrade counts a trade's cost
        self.position = _Position(i, price, stop, price, units, cost, sized_for=share, sized_at=i)
        self.cash -= spent

    def buy(self, value: float, price: float) -> None:
        """Add to the position with up to ``value`` of the cash."""
        assert self.position is not None
        spent = min(value, self.cash)
        units = spent * (1.0 - self.fee) / price
        self.position.units += units
        self.position.cost += units * price * (1.0 + self.fee)
        self.cash -= spent

    def sell(self, share: float, price: float) -> None:
        assert self.position is not None
        sold = self.position.units * share
        self.position.units -= sold
        self.position.proceeds += sold * price * (1.0 - self.fee)
        self.cash += sold * price * (1.0 - self.fee)

    def close(self, i: int, price: float, reason: str) -> None:
        position = self.position
        assert position is not None
        self.sell(1.0, price)
        ratio = position.proceeds / position.cost - 1.0
        self.trades.append(
            (
                position.entry_index,
                i,
                position.entry_price,
                price,
                reason,
                position.exits,
                position.resizes,
                ratio,
            )
        )
        self.position = None

    def value(self, price: float) -> float:
        return self.cash + (self.position.units * price if self.position is not None else 0.0)


@dataclass(frozen=True)
class _Candles:
    o: list[float]
    h: list[float]
    lo: list[float]
    c: list[float]


def _simulate(
    rows: pd.DataFrame,
    enter: BoolArray,
    exit_: BoolArray,
    rules: _Rules,
    params: StrategyParams,
    *,
    fee: float,
    timeframe: str,
) -> ReplayResult:
    candle_minutes = timeframe_to_seconds(timeframe) / 60.0
    roi = [(int(minutes), ratio) for minutes, ratio in params.minimal_roi.items()]
    k = _Candles(
        *(rows[c].to_numpy(dtype="float64").tolist() for c in ("open", "high", "low", "close"))
    )
    enter_l, exit_l = enter.tolist(), exit_.tolist()
    n = len(k.o)
    wallet = np.ones(n, dtype="float64")  # cash plus the open position at each close
    book = _Book(fee)
    for i in range(1, n):
        if book.position is None:
            if enter_l[i - 1] and not exit_l[i - 1]:
                stop, share = rules.ruleset.entry(rules.row(i - 1))
                floor = k.o[i] * (1.0 + params.stoploss)
                book.enter(i, k.o[i], floor if stop is None else max(floor, stop), share)
        else:
            signalled = exit_l[i - 1] and not enter_l[i - 1]
            _open_of_candle(book, i, k.o[i], signalled, rules, candle_minutes / 1440.0)
        if book.position is not None:
            _check_stops(i, book, k, roi, candle_minutes, params)
        if book.position is not None and params.trailing_stop:
            position = book.position
            position.peak = max(position.peak, k.h[i])
            trail = _trailing_stop(params, position.entry_price, position.peak)
            position.stop = max(position.stop, trail)
        wallet[i] = book.value(k.c[i])
    if book.position is not None:
        book.close(n - 1, k.c[n - 1], "end_of_data")
        wallet[n - 1] = book.cash
    frame = _trades_frame(book.trades, rows)
    log_returns = np.diff(np.log(wallet), prepend=0.0)
    return ReplayResult(frame, log_returns, _metrics(frame, log_returns, timeframe))


def _open_of_candle(
    book: _Book, i: int, price: float, signalled: bool, rules: _Rules, days_per_candle: float
) -> None:
    """At the open of candle ``i``, in a trade: a position block's partial exit (a
    take-profit rung), then the exit signal of the candle before or a block's exit (the
    time stop), then a block's resize (``vol_target``), as ``ComposedStrategy`` does."""
    position = book.position
    assert position is not None
    if not rules.ruleset.rules and not signalled:
        return
    profit = price * (1.0 - book.fee) / (position.entry_price * (1.0 + book.fee)) - 1.0
    held = Held(
        candles_held=i - position.entry_index,
        profit=profit,
        exits_done=position.exits,
        sized_for=position.sized_for,
        days_since_sized=(i - position.sized_at) * days_per_candle,
    )
    partial = rules.ruleset.partial_exit(held)
    if partial is not None:
        book.sell(partial[1], price)
        position.exits += 1
    reason = "exit_signal" if signalled else rules.ruleset.exit_now(held)
    if reason is not None:
        book.close(i, price, reason)
        return
    resize = rules.ruleset.resize(held, rules.row(i - 1))
    if resize is not None:
        _resize(book, i, price, resize[1])


def _resize(book: _Book, i: int, price: float, scale: float) -> None:
    """Move the position in proportion to its new ``scale``."""
    position = book.position
    assert position is not None
    held = position.units * price
    change = held * (scale / position.sized_for - 1.0)
    if change > 0:
        book.buy(change, price)
    elif held > 0:
        book.sell(-change / held, price)
    position.sized_for, position.sized_at = scale, i
    position.resizes += 1


def _trades_frame(
    trades: list[tuple[int, int, float, float, str, int, int, float]], rows: pd.DataFrame
) -> pd.DataFrame:
    frame = pd.DataFrame(
        trades,
        columns=[
            "entry_index",
            "exit_index",
            "entry_price",
            "exit_price",
            "exit_reason",
            "partial_exits",
            "resizes",
            "profit_ratio",
        ],
    )
    if "date" in rows:
        dates = rows["date"].reset_index(drop=True)
        frame["entry_date"] = dates.iloc[frame["entry_index"]].to_numpy()
        frame["exit_date"] = dates.iloc[frame["exit_index"]].to_numpy()
    return frame


def _check_stops(
    i: int,
    book: _Book,
    k: _Candles,
    roi: list[tuple[int, float]],
    candle_minutes: float,
    params: StrategyParams,
) -> None:
    """The stop against the low, then the ROI table against the high."""
    position = book.position
    assert position is not None
    if k.lo[i] <= position.stop:
        book.close(i, min(k.o[i], position.stop), "stop_loss")
        return
    required = _roi_at((i - position.entry_index) * candle_minutes, roi)
    if required is not None:
        roi_price = position.entry_price * (1.0 + required + book.fee) / (1.0 - book.fee)
        if k.h[i] >= roi_price:
            opened_here = i == position.entry_index
            book.close(i, roi_price if opened_here else max(k.o[i], roi_price), "roi")


def _roi_at(minutes: float, roi: list[tuple[int, float]]) -> float | None:
    required = None
    for start, ratio in roi:
        if minutes >= start:
            required = ratio
    return required


def _trailing_stop(params: StrategyParams, entry_price: float, peak: float) -> float:
    offset_reached = peak / entry_price - 1.0 >= params.trailing_stop_positive_offset
    if params.trailing_stop_positive is not None and offset_reached:
        return peak * (1.0 - params.trailing_stop_positive)
    if params.trailing_only_offset_is_reached:
        return 0.0
    return peak * (1.0 + params.stoploss)


def _metrics(
    trades: pd.DataFrame, log_returns: NDArray[np.float64], timeframe: str
) -> dict[str, float]:
    measures = return_measures(log_returns, periods_per_year(timeframe))
    profits = trades["profit_ratio"].to_numpy(dtype="float64")
    gains, losses = profits[profits > 0].sum(), -profits[profits < 0].sum()
    return {
        "sharpe": measures["sharpe"],
        "profit_total": measures["total_return"],
        "max_drawdown": measures["max_drawdown"],
        "cagr": measures["cagr"],
        "calmar": measures["calmar"],
        "return_over_drawdown": measures["return_over_drawdown"],
        "trades": float(len(trades)),
        "winrate": float((profits > 0).mean()) if len(profits) else 0.0,
        "profit_factor": float(gains / losses) if losses > 0 else float("nan"),
    }
