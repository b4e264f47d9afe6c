"""A candle-level replay of a strategy's rules, fast enough to score thousands of tuning trials.

Tuning scores strategy parameters (entry/exit thresholds, stoploss, ROI, trailing
stop) on walk-forward predictions. Running the real Freqtrade engine for every
trial would cost seconds each, so trials are scored by this replay, which follows
Freqtrade's backtesting conventions for one pair and one open trade:

* a signal on candle ``t`` (decided at its close) fills at the open of ``t + 1``;
  an entry signal is ignored while the same candle also signals an exit;
* while in a trade, each candle checks, in this order: the exit signal of the
  previous candle (exit at the open), the stoploss against the low (exit at the
  stop, or at the open when the candle opens below it), the ROI table against the
  high (exit at the ROI price including fees, or at the open when it opens above);
* a trailing stop moves up with the highs of *completed* candles (a simplification:
  Freqtrade also moves it inside the candle);
* fees are charged per side on the stake; a trade still open at the end is closed
  at the last close.

It is an approximation used to rank trials; the tuned result is judged by the real
engine (``tradingbot backtest``). Which signals a strategy gives is registered
in :data:`SIGNAL_RULES` by strategy name: only those strategies can have their
parameters tuned.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from common.atomic import write_text_atomic
from common.errors import SpecError, validation_message
from features.timeframes import timeframe_to_seconds
from strategies.registry import StrategyInfo

BoolArray = NDArray[np.bool_]
DEFENSIVE_REGIMES = ("bear", "crash")  # as in user_data/strategies/RegimeStrategy.py
TRAILING_FIELDS = (
    "trailing_stop",
    "trailing_stop_positive",
    "trailing_stop_positive_offset",
    "trailing_only_offset_is_reached",
)


class StrategyParams(BaseModel):
    """A strategy's tunable values, laid out as Freqtrade's parameter file lays them out.

    ``spaces`` holds the declared ``*Parameter`` values by space (``buy``, ``sell``);
    ``minimal_roi`` maps minutes since entry to the required profit ratio.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    strategy: str
    spaces: dict[str, dict[str, Any]] = Field(default_factory=dict)
    stoploss: float = Field(default=-0.10, gt=-1.0, lt=0.0)
    minimal_roi: dict[str, float] = Field(default_factory=lambda: {"0": 10.0})
    trailing_stop: bool = False
    trailing_stop_positive: float | None = Field(default=None, gt=0.0, lt=1.0)
    trailing_stop_positive_offset: float = Field(default=0.0, ge=0.0, lt=10.0)
    trailing_only_offset_is_reached: bool = False
    decimals: dict[str, int] = Field(default_factory=dict)  # of DecimalParameters, by name

    @field_validator("minimal_roi")
    @classmethod
    def _roi_minutes(cls, value: dict[str, float]) -> dict[str, float]:
        for minutes in value:
            if not minutes.isdigit():
                raise ValueError(f"ROI keys are minutes since entry, got {minutes!r}")
        return dict(sorted(value.items(), key=lambda item: int(item[0])))

    def value(self, name: str) -> Any:
        for values in self.spaces.values():
            if name in values:
                return values[name]
        raise KeyError(name)

    def freqtrade_file(self) -> dict[str, Any]:
        """The content of ``<Strategy>.json`` as ``freqtrade hyperopt`` exports it. Floats
        are rounded to 10 decimals: Optuna's stepped values carry float noise
        (``-0.03499999999999999`` for a step of 0.005) that nobody wants to read."""
        params: dict[str, Any] = {
            space: {k: _clean(v) for k, v in values.items()}
            for space, values in self.spaces.items()
        }
        params["roi"] = {k: _clean(v) for k, v in self.minimal_roi.items()}
        params["stoploss"] = {"stoploss": _clean(self.stoploss)}
        params["trailing"] = {name: _clean(getattr(self, name)) for name in TRAILING_FIELDS}
        return {
            "strategy_name": self.strategy,
            "params": params,
            "ft_stratparam_v": 1,
            "export_time": datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S.%f+00:00"),
        }

    def write(self, strategy_dir: Path) -> Path:
        """Write ``<strategy_dir>/<Strategy>.json`` atomically; Freqtrade reads it next to the
        strategy file (``Path(strategy_file).with_suffix('.json')``)."""
        path = strategy_dir / f"{self.strategy}.json"
        write_text_atomic(path, json.dumps(self.freqtrade_file(), indent=2) + "\n")
        return path


def _clean(value: Any) -> Any:
    return round(value, 10) if isinstance(value, float) else value


def default_params(info: StrategyInfo) -> StrategyParams:
    """The strategy's own defaults, as its source declares them."""
    spaces: dict[str, dict[str, Any]] = {}
    decimals: dict[str, int] = {}
    for parameter in info.parameters:
        spaces.setdefault(parameter.space or "buy", {})[parameter.name] = parameter.default
        if parameter.decimals is not None:
            decimals[parameter.name] = parameter.decimals
    trailing = {k: v for k, v in info.trailing.items() if k in TRAILING_FIELDS}
    return StrategyParams(
        strategy=info.name,
        spaces=spaces,
        stoploss=info.stoploss if info.stoploss is not None else -0.10,
        minimal_roi={str(k): float(v) for k, v in info.minimal_roi.items()} or {"0": 10.0},
        decimals=decimals,
        **trailing,
    )


def with_file(params: StrategyParams, strategy_dir: Path) -> StrategyParams:
    """``params`` overlaid with ``<strategy_dir>/<Strategy>.json`` when it exists: the values
    Freqtrade will trade with (it reads that file next to the strategy file)."""
    path = strategy_dir / f"{params.strategy}.json"
    if not path.exists():
        return params
    try:
        saved = json.loads(path.read_text(encoding="utf-8"))["params"]
    except (ValueError, KeyError) as exc:
        raise SpecError(f"{path}: not a Freqtrade parameter file ({exc})") from exc
    values: dict[str, Any] = {}
    for space, entries in saved.items():
        if space == "roi":
            data = params.model_dump()
            data["minimal_roi"] = {str(k): float(v) for k, v in entries.items()}
            params = StrategyParams.model_validate(data)
        elif space == "stoploss":
            values["stoploss"] = entries["stoploss"]
        elif space == "trailing":
            values.update({k: v for k, v in entries.items() if k in TRAILING_FIELDS})
        else:
            values.update(entries)
    return with_values(params, values)


def with_values(params: StrategyParams, values: Mapping[str, Any]) -> StrategyParams:
    """``params`` with tuned values by name: a declared parameter, ``stoploss``,
    ``roi.<minutes>`` or one of the trailing-stop settings."""
    data = params.model_dump()
    for name, value in values.items():
        if name == "stoploss" or name in TRAILING_FIELDS:
            data[name] = value
        elif name.startswith("roi."):
            data["minimal_roi"][name.removeprefix("roi.")] = value
        else:
            for space_values in data["spaces"].values():
                if name in space_values:
                    space_values[name] = value
                    break
            else:
                raise SpecError(f"strategy {params.strategy} has no tunable value {name!r}")
    try:
        return StrategyParams.model_validate(data)
    except ValidationError as exc:
        raise SpecError(f"strategy {params.strategy}: {validation_message(exc)}") from exc


def tunable_names(params: StrategyParams) -> set[str]:
    names = {name for values in params.spaces.values() for name in values}
    return names | {"stoploss", *TRAILING_FIELDS}


# -- signals ------------------------------------------------------------------------------

SignalRule = Callable[[pd.DataFrame, StrategyParams], tuple[BoolArray, BoolArray]]


def _threshold_signals(
    predictions: pd.DataFrame, params: StrategyParams
) -> tuple[BoolArray, BoolArray]:
    """RegimeStrategy: enter above the entry threshold outside bearish regimes; exit below
    the exit threshold or in a bearish regime."""
    p_up = predictions["p_up"].to_numpy(dtype="float64")
    regime = predictions.get("regime", pd.Series("", index=predictions.index)).astype(str)
    bearish = regime.isin(DEFENSIVE_REGIMES).to_numpy()
    trusted = np.isfinite(p_up)
    enter = trusted & (p_up > float(params.value("entry_threshold"))) & ~bearish
    exit_ = trusted & ((p_up < float(params.value("exit_threshold"))) | bearish)
    return enter, exit_


def _prediction_signals(
    predictions: pd.DataFrame, params: StrategyParams
) -> tuple[BoolArray, BoolArray]:
    """RegimeRulesStrategy: the reasoning model's long (1) / flat (0) decides."""
    prediction = predictions["prediction"].to_numpy(dtype="float64")
    return prediction == 1.0, prediction == 0.0


SIGNAL_RULES: dict[str, SignalRule] = {
    "RegimeStrategy": _threshold_signals,
    "RegimeRulesStrategy": _prediction_signals,
}


def signal_rule(strategy: str) -> SignalRule:
    try:
        return SIGNAL_RULES[strategy]
    except KeyError:
        raise SpecError(
            f"no replay rule for strategy {strategy!r}: tuning can score {sorted(SIGNAL_RULES)}",
            hint="set [backtest] strategy to one of them, or tune model parameters with a "
            "forecast objective (log_loss, accuracy, brier, rmse, rank_ic)",
        ) from None


# -- the replay ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ReplayResult:
    trades: (
        pd.DataFrame
    )  # entry_index, exit_index, entry_price, exit_price, profit_ratio, exit_reason
    candle_log_returns: NDArray[np.float64]  # per candle, marked to market, fees included
    metrics: dict[str, float]


def replay(
    candles: pd.DataFrame,
    predictions: pd.DataFrame,
    params: StrategyParams,
    *,
    fee: float,
    timeframe: str,
) -> ReplayResult:
    """Replay ``params.strategy`` over ``candles`` (open/high/low/close, in time order)
    with ``predictions`` on the same index; see the module docstring for the rules."""
    enter, exit_ = signal_rule(params.strategy)(predictions, params)
    candle_minutes = timeframe_to_seconds(timeframe) / 60.0
    roi = [(int(minutes), ratio) for minutes, ratio in params.minimal_roi.items()]
    o, h, lo, c = (
        candles[k].to_numpy(dtype="float64").tolist() for k in ("open", "high", "low", "close")
    )
    enter_l, exit_l = enter.tolist(), exit_.tolist()
    log_fee = float(np.log1p(-fee))
    n = len(o)
    returns = [0.0] * n
    trades: list[tuple[int, int, float, float, str]] = []
    entry_index, entry_price, stop, peak = -1, 0.0, 0.0, 0.0
    mark = 0.0  # price the open position was last marked at

    def close_trade(i: int, price: float, reason: str) -> None:
        nonlocal entry_index
        returns[i] += float(np.log(price / mark)) + log_fee
        trades.append((entry_index, i, entry_price, price, reason))
        entry_index = -1

    for i in range(1, n):
        if entry_index < 0:
            if enter_l[i - 1] and not exit_l[i - 1]:
                entry_index, entry_price, mark = i, o[i], o[i]
                stop, peak = entry_price * (1.0 + params.stoploss), entry_price
                returns[i] += log_fee
            else:
                continue
        elif exit_l[i - 1]:
            close_trade(i, o[i], "exit_signal")
            continue
        if lo[i] <= stop:
            close_trade(i, min(o[i], stop), "stop_loss")
            continue
        required = _roi_at((i - entry_index) * candle_minutes, roi)
        if required is not None:
            roi_price = entry_price * (1.0 + required + fee) / (1.0 - fee)
            if h[i] >= roi_price:
                close_trade(i, max(o[i], roi_price) if i > entry_index else roi_price, "roi")
                continue
        returns[i] += float(np.log(c[i] / mark))
        mark = c[i]
        if params.trailing_stop:
            peak = max(peak, h[i])
            stop = max(stop, _trailing_stop(params, entry_price, peak))
    if entry_index >= 0:
        # closed at the last close: the mark is already there, only the fee remains
        returns[n - 1] += log_fee
        trades.append((entry_index, n - 1, entry_price, c[n - 1], "end_of_data"))
    frame = pd.DataFrame(
        trades, columns=["entry_index", "exit_index", "entry_price", "exit_price", "exit_reason"]
    )
    frame["profit_ratio"] = (frame["exit_price"] * (1 - fee)) / (
        frame["entry_price"] * (1 + fee)
    ) - 1
    log_returns = np.asarray(returns, dtype="float64")
    return ReplayResult(frame, log_returns, _metrics(frame, log_returns, timeframe))


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
    per_year = 365.0 * 86400.0 / timeframe_to_seconds(timeframe)
    std = float(log_returns.std())
    equity = np.exp(np.cumsum(log_returns))
    peak = np.maximum.accumulate(np.r_[1.0, equity])[1:]
    profits = trades["profit_ratio"].to_numpy(dtype="float64")
    gains, losses = profits[profits > 0].sum(), -profits[profits < 0].sum()
    max_drawdown = float((1.0 - equity / peak).max()) if len(equity) else 0.0
    cagr = float(equity[-1] ** (per_year / len(equity)) - 1.0) if len(equity) else 0.0
    return {
        "sharpe": float(log_returns.mean() / std * np.sqrt(per_year)) if std > 0 else 0.0,
        "profit_total": float(equity[-1] - 1.0) if len(equity) else 0.0,
        "max_drawdown": max_drawdown,
        "cagr": cagr,
        "calmar": cagr / max_drawdown if max_drawdown > 0 else float("nan"),
        "trades": float(len(trades)),
        "winrate": float((profits > 0).mean()) if len(profits) else 0.0,
        "profit_factor": float(gains / losses) if losses > 0 else float("nan"),
    }
