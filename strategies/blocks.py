"""Strategy building blocks: pure, vectorised entry and exit rules with declared parameters.

A block is a function of the analysed dataframe (candles plus the adapter's ``&-``
columns and ``do_predict``) and parameter values. Signal blocks return a
:class:`Signal` per candle: whether it fires, a short stable reason (the block's name,
or a model's reason without its numbers) and a confidence in 0..1. Position blocks
describe what happens to an open trade (a stop, a time limit, partial exits, sizing);
each carries a :class:`strategies.position_rules.PositionRule` that the Freqtrade
strategy and the tuning replay both loop over, so both trade the same rules.

Each block declares its parameters once (:class:`Param`: name, default, range,
Freqtrade space); Freqtrade's ``*Parameter`` attributes and the tuning space are made
from that declaration. Adding a block is one decorated function::

    @signal_block("entry", Param("sma_window", 50, 10, 200, "buy"))
    def trend_filter(frame, values):
        '''Close above its simple moving average.'''
        sma = frame["close"].rolling(int(values["sma_window"])).mean()
        return Signal.of(frame["close"] > sma, "trend_filter")

Every value at candle t depends on candles <= t only (rolling windows, no shifts
into the future); ``tests/strategies/test_compositions.py`` checks each block on a prefix.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from features.indicators import bollinger_position, rsi
from strategies.position_rules import AtrStop, PositionRule, TakeProfitLadder, TimeStop, VolTarget

BoolArray = NDArray[np.bool_]
FloatArray = NDArray[np.float64]
Role = Literal["entry", "exit", "position"]
Values = Mapping[str, Any]

DEFENSIVE_REGIMES = ("bear", "crash")
REGIME_STAKE = {"bull": 1.0, "sideways": 0.6, "volatile": 0.4}  # share of the stake by regime
UNKNOWN_REGIME_STAKE = 0.5
STAKE_REFERENCE_P = 0.55  # a long/flat model's stake: full at this p_up, half at 0.5


@dataclass(frozen=True)
class Param:
    """One tunable value: ``default`` within ``[low, high]`` in Freqtrade's ``space``.

    ``decimals`` makes it a ``DecimalParameter`` (Freqtrade rounds loaded values to
    them); ``None`` an ``IntParameter``."""

    name: str
    default: float
    low: float
    high: float
    space: Literal["buy", "sell"]
    decimals: int | None = 2

    def with_default(self, value: float) -> Param:
        if not self.low <= value <= self.high:
            raise ValueError(f"{self.name} = {value} is outside [{self.low}, {self.high}]")
        if self.decimals is None and value != int(value):
            raise ValueError(f"{self.name} = {value}: a whole number of candles is needed")
        default = int(value) if self.decimals is None else float(value)
        return Param(self.name, default, self.low, self.high, self.space, self.decimals)

    def freqtrade(self) -> Any:
        """The Freqtrade ``DecimalParameter`` / ``IntParameter`` of this declaration."""
        from freqtrade.strategy import DecimalParameter, IntParameter

        if self.decimals is None:
            return IntParameter(
                int(self.low), int(self.high), default=int(self.default), space=self.space
            )
        return DecimalParameter(
            self.low, self.high, default=self.default, decimals=self.decimals, space=self.space
        )


@dataclass(frozen=True)
class Signal:
    """A signal block's answer for every candle (arrays of the frame's length).

    ``reason`` is one short name, or one per candle (a model's own reasons)."""

    fires: BoolArray
    reason: str | pd.Series
    confidence: FloatArray

    @classmethod
    def of(
        cls, fires: pd.Series | BoolArray, reason: str | pd.Series, confidence: Any = 1.0
    ) -> Signal:
        mask = np.asarray(fires, dtype=bool)
        level = np.broadcast_to(np.asarray(confidence, dtype="float64"), mask.shape).copy()
        return cls(mask, reason, level)


SignalFunction = Callable[[pd.DataFrame, Values], Signal]


@dataclass(frozen=True)
class Block:
    """A named rule with its declared parameters; ``role`` says where it may be used."""

    name: str
    role: Role
    params: tuple[Param, ...]
    doc: str
    compute: SignalFunction | None = None  # signal blocks only
    freqtrade: dict[str, Any] = field(default_factory=dict)  # settings it implies
    rule: PositionRule | None = None  # position blocks: what it does to an open trade

    def __call__(self, frame: pd.DataFrame, values: Values) -> Signal:
        if self.compute is None:
            raise TypeError(f"{self.name} is a position block: it has no per-candle signal")
        return self.compute(frame, values)


BLOCKS: dict[str, Block] = {}


def _register(block: Block) -> Block:
    if block.name in BLOCKS:
        raise ValueError(f"block {block.name!r} is declared twice")
    BLOCKS[block.name] = block
    return block


def signal_block(
    role: Literal["entry", "exit"], *params: Param
) -> Callable[[SignalFunction], SignalFunction]:
    """Register the decorated function as a signal block named after it."""

    def register(function: SignalFunction) -> SignalFunction:
        doc = (function.__doc__ or "").strip().splitlines()[0]
        _register(Block(function.__name__, role, params, doc, function))
        return function

    return register


def position_block(
    name: str, doc: str, *params: Param, rule: PositionRule | None = None, **freqtrade: Any
) -> Block:
    """Register a position block: its ``rule`` (:mod:`strategies.position_rules`) is what
    both engines do with an open trade; ``freqtrade``: the settings it implies."""
    return _register(Block(name, "position", params, doc, None, dict(freqtrade), rule))


# -- helpers ------------------------------------------------------------------------------


def _trusted(frame: pd.DataFrame) -> pd.Series:
    """Rows the model may be read on (the adapter's ``do_predict``)."""
    if "do_predict" not in frame:
        raise KeyError("do_predict: this block reads a model; set the composition's model")
    return frame["do_predict"] == 1


def regime_names(frame: pd.DataFrame) -> pd.Series:
    """The filtered regime of every row by name (``unknown`` where there is none)."""
    if "&-regime" not in frame:
        return pd.Series("unknown", index=frame.index)
    return frame["&-regime"].fillna("").astype(str).replace("", "unknown")


def p_up_confidence(p_up: FloatArray, threshold: float) -> FloatArray:
    """Half a stake at ``p_up`` 0.5, a full one at ``threshold`` and above."""
    return np.asarray(np.clip((p_up - 0.5) / max(threshold - 0.5, 1e-6), 0.5, 1.0))


def reason_tag(reason: str) -> str:
    """A reason without its numbers: ``long: regime bull (p=0.80), RSI 28 oversold,
    momentum +1.20%; situation was up 57% of 1,234 training candles`` becomes
    ``long: regime bull, RSI oversold, momentum up``."""
    head = reason.split(";")[0]
    head = re.sub(r"\s*\([^)]*\)", "", head)
    head = re.sub(r"\+\d[\d.,]*%", "up", head)
    head = re.sub(r"-\d[\d.,]*%", "down", head)
    head = re.sub(r"\s*\d[\d.,]*%?", "", head)
    return " ".join(head.split())


def _model_reasons(frame: pd.DataFrame, fallback: str) -> str | pd.Series:
    if "&-reason" not in frame:
        return fallback
    return frame["&-reason"].fillna("").astype(str).map(reason_tag)


# -- entry blocks -------------------------------------------------------------------------


@signal_block("entry", Param("entry_threshold", 0.55, 0.50, 0.70, "buy"))
def model_probability(frame: pd.DataFrame, values: Values) -> Signal:
    """The model's probability of a rise is above the entry threshold."""
    threshold = float(values["entry_threshold"])
    p_up = frame["&-p_up"].to_numpy(dtype="float64")
    with np.errstate(invalid="ignore"):
        fires = _trusted(frame).to_numpy() & (p_up > threshold)
    return Signal.of(fires, "model_probability", p_up_confidence(p_up, threshold))


@signal_block("entry", Param("entry_std", 1.0, 0.0, 3.0, "buy"))
def model_above_its_range(frame: pd.DataFrame, values: Values) -> Signal:
    """The forecast is more than entry_std standard deviations above its recent mean."""
    source = "&-p_up" if "&-p_up_mean" in frame else "&-prediction"
    if f"{source}_mean" not in frame:
        raise KeyError(
            f"{source}_mean: this block reads the forecast's range, which the model gives "
            "with a forecast (not an exposure); see [lifetime] fit_live_predictions_candles"
        )
    forecast = frame[source].to_numpy(dtype="float64")
    mean = frame[f"{source}_mean"].to_numpy(dtype="float64")
    std = frame[f"{source}_std"].to_numpy(dtype="float64")
    with np.errstate(invalid="ignore"):
        fires = _trusted(frame).to_numpy() & (forecast > mean + float(values["entry_std"]) * std)
    return Signal.of(fires, "model_above_its_range")


@signal_block("entry")
def model_long(frame: pd.DataFrame, values: Values) -> Signal:
    """The model itself says long (a long/flat model such as the reasoning rules)."""
    fires = _trusted(frame) & (frame["&-prediction"] == 1)
    p_up = frame["&-p_up"].to_numpy(dtype="float64")
    confidence = p_up_confidence(np.nan_to_num(p_up, nan=0.5), STAKE_REFERENCE_P)
    return Signal.of(fires, _model_reasons(frame, "model_long"), confidence)


@signal_block("entry")
def regime_filter(frame: pd.DataFrame, values: Values) -> Signal:
    """The filtered regime is not defensive (bear, crash)."""
    return Signal.of(
        _trusted(frame) & ~regime_names(frame).isin(DEFENSIVE_REGIMES), "regime_filter"
    )


@signal_block("entry")
def regime_sizing(frame: pd.DataFrame, values: Values) -> Signal:
    """No condition: the stake follows the regime (bull 1.0, sideways 0.6, volatile 0.4)."""
    share = regime_names(frame).map(REGIME_STAKE).fillna(UNKNOWN_REGIME_STAKE)
    return Signal.of(np.ones(len(frame), dtype=bool), "", share.to_numpy(dtype="float64"))


@signal_block(
    "entry",
    Param("rsi_window", 14, 5, 30, "buy", None),
    Param("rsi_below", 35.0, 15.0, 50.0, "buy", 1),
    Param("bb_window", 20, 10, 50, "buy", None),
    Param("bb_below", 0.2, -0.2, 0.5, "buy"),
)
def rsi_bollinger(frame: pd.DataFrame, values: Values) -> Signal:
    """Oversold: RSI below a level and the close in the low part of its Bollinger bands."""
    close = frame["close"]
    oversold = rsi(close, int(values["rsi_window"])) < float(values["rsi_below"])
    low_in_band = bollinger_position(close, int(values["bb_window"])) < float(values["bb_below"])
    return Signal.of(oversold & low_in_band, "rsi_bollinger")


@signal_block(
    "entry",
    Param("volume_window", 24, 6, 96, "buy", None),
    Param("volume_ratio", 1.2, 0.5, 3.0, "buy"),
)
def volume_confirmation(frame: pd.DataFrame, values: Values) -> Signal:
    """Volume above a multiple of its mean over the previous candles."""
    window = int(values["volume_window"])
    mean = frame["volume"].rolling(window).mean().shift(1)  # the candles before this one
    return Signal.of(frame["volume"] > float(values["volume_ratio"]) * mean, "volume_confirmation")


@signal_block("entry", Param("sma_window", 50, 10, 200, "buy", None))
def trend_filter(frame: pd.DataFrame, values: Values) -> Signal:
    """Close above its simple moving average."""
    close = frame["close"]
    return Signal.of(close > close.rolling(int(values["sma_window"])).mean(), "trend_filter")


@signal_block(
    "entry",
    Param("momentum_window", 24, 3, 168, "buy", None),
    Param("momentum_min", 0.0, -0.05, 0.10, "buy", 3),
)
def momentum(frame: pd.DataFrame, values: Values) -> Signal:
    """Return over the last candles above a minimum."""
    close = frame["close"]
    change = close / close.shift(int(values["momentum_window"])) - 1.0
    return Signal.of(change > float(values["momentum_min"]), "momentum")


# -- exit blocks --------------------------------------------------------------------------


@signal_block("exit", Param("exit_threshold", 0.47, 0.30, 0.50, "sell"))
def model_turn(frame: pd.DataFrame, values: Values) -> Signal:
    """The model's probability of a rise fell below the exit threshold."""
    p_up = frame["&-p_up"].to_numpy(dtype="float64")
    with np.errstate(invalid="ignore"):
        fires = _trusted(frame).to_numpy() & (p_up < float(values["exit_threshold"]))
    return Signal.of(fires, "model_turn")


@signal_block("exit")
def model_flat(frame: pd.DataFrame, values: Values) -> Signal:
    """The model itself says flat (a long/flat model such as the reasoning rules)."""
    fires = _trusted(frame) & (frame["&-prediction"] == 0)
    return Signal.of(fires, _model_reasons(frame, "model_flat"))


@signal_block("exit")
def regime_turn(frame: pd.DataFrame, values: Values) -> Signal:
    """The filtered regime turned defensive (bear, crash)."""
    return Signal.of(_trusted(frame) & regime_names(frame).isin(DEFENSIVE_REGIMES), "regime_turn")


@signal_block("exit", Param("exit_sma_window", 50, 10, 200, "sell", None))
def trend_break(frame: pd.DataFrame, values: Values) -> Signal:
    """Close below its simple moving average."""
    close = frame["close"]
    return Signal.of(close < close.rolling(int(values["exit_sma_window"])).mean(), "trend_break")


# -- position blocks ----------------------------------------------------------------------

ATR_STOP = position_block(
    "atr_stop",
    "Stop a multiple of the ATR below the close of the signal candle.",
    Param("atr_window", 14, 5, 50, "sell", None),
    Param("atr_multiple", 2.5, 1.0, 6.0, "sell", 1),
    rule=AtrStop(),
    use_custom_stoploss=True,
)
TIME_STOP = position_block(
    "time_stop",
    "Leave a trade after a number of candles, at the next open.",
    Param("max_candles", 48, 4, 336, "sell", None),
    rule=TimeStop(),
)
TAKE_PROFIT_LADDER = position_block(
    "take_profit_ladder",
    "Sell a share of what is left at each rung of profit (partial exits).",
    Param("ladder_first", 0.03, 0.01, 0.10, "sell", 3),
    Param("ladder_step", 0.03, 0.01, 0.10, "sell", 3),
    Param("ladder_share", 0.33, 0.10, 0.90, "sell"),
    Param("ladder_rungs", 2, 1, 4, "sell", None),
    rule=TakeProfitLadder(),
    position_adjustment_enable=True,
)
VOL_TARGET = position_block(
    "vol_target",
    "Hold the position at min(1, target / forecast volatility) of its stake: the "
    "model's forecast (&-volatility) when it gives one, else the realised volatility of "
    "the last 7 days; resized at most once a day and only past the band "
    "(ml.sizing.rebalance_due, the rule of the sized allocation).",
    Param("vol_target", 0.6, 0.2, 2.0, "buy"),
    rule=VolTarget(),
    position_adjustment_enable=True,
)
TRAILING_STOP = position_block(
    "trailing_stop",
    "Freqtrade's own trailing stop, from the composition's trailing_stop_positive and "
    "trailing_stop_positive_offset (tuned like Freqtrade's trailing space).",
    trailing_stop=True,
    trailing_only_offset_is_reached=True,
)
