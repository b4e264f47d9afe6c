"""The strategy replay used to score tuning trials, and the parameter file Freqtrade reads."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from common.errors import SpecError
from strategies.catalogue import introspect
from strategies.params import StrategyParams, default_params, with_file, with_values
from strategies.replay import replay
from strategies.runner import REPO_STRATEGIES

FEE = 0.001


def _candles(
    close: list[float], *, low: list[float] | None = None, high: list[float] | None = None
) -> pd.DataFrame:
    close_a = np.asarray(close, dtype="float64")
    open_a = np.r_[close_a[0], close_a[:-1]]
    return pd.DataFrame(
        {
            "date": pd.date_range("2024-01-01", periods=len(close), freq="1h", tz="UTC"),
            "open": open_a,
            "high": np.asarray(high, dtype="float64") if high else np.maximum(open_a, close_a),
            "low": np.asarray(low, dtype="float64") if low else np.minimum(open_a, close_a),
            "close": close_a,
        }
    )


def _predictions(p_up: list[float]) -> pd.DataFrame:
    return pd.DataFrame(
        {"p_up": p_up, "prediction": (np.asarray(p_up) > 0.5).astype(float), "regime": "bull"}
    )


def _params(**values: object) -> StrategyParams:
    base = StrategyParams(
        strategy="RegimeStrategy",
        spaces={"buy": {"entry_threshold": 0.55}, "sell": {"exit_threshold": 0.45}},
        stoploss=-0.5,
        minimal_roi={"0": 10.0},
    )
    return with_values(base, values)


def test_always_long_is_buy_and_hold_from_the_next_open_less_fees() -> None:
    close = [100, 101, 99, 103, 104, 102, 106]
    result = replay(_candles(close), _predictions([0.9] * 7), _params(), fee=FEE, timeframe="1h")
    assert len(result.trades) == 1
    trade = result.trades.iloc[0]
    # signal at the close of candle 0 -> filled at the open of candle 1 (= close of candle 0)
    assert (trade.entry_index, trade.exit_index, trade.exit_reason) == (1, 6, "end_of_data")
    assert trade.entry_price == 100.0 and trade.exit_price == 106.0
    expected = np.log(106 / 100) + 2 * np.log1p(-FEE)
    assert result.candle_log_returns.sum() == pytest.approx(expected)
    assert result.metrics["profit_total"] == pytest.approx(np.exp(expected) - 1)
    assert trade.profit_ratio == pytest.approx(106 * (1 - FEE) / (100 * (1 + FEE)) - 1)


def test_exit_signal_fills_at_the_next_open_and_bearish_regimes_block_entries() -> None:
    close = [100, 101, 102, 103, 104, 105, 106, 107]
    p_up = [0.9, 0.9, 0.3, 0.3, 0.9, 0.9, 0.9, 0.9]
    predictions = _predictions(p_up)
    predictions.loc[4:, "regime"] = "bear"
    result = replay(_candles(close), predictions, _params(), fee=FEE, timeframe="1h")
    assert result.trades[["entry_index", "exit_index", "exit_reason"]].values.tolist() == [
        [1, 3, "exit_signal"]
    ]
    assert result.trades.iloc[0].exit_price == 102.0  # open of candle 3 = close of candle 2


def test_stoploss_exits_at_the_stop_or_at_a_gap_open() -> None:
    close = [100, 100, 100, 95, 80, 80]
    low = [100, 100, 100, 89, 75, 80]
    result = replay(
        _candles(close, low=low),
        _predictions([0.9] * 6),
        _params(stoploss=-0.10),
        fee=FEE,
        timeframe="1h",
    )
    trade = result.trades.iloc[0]
    assert (trade.exit_index, trade.exit_reason) == (3, "stop_loss")
    assert trade.exit_price == pytest.approx(90.0)
    gap = _candles([100, 100, 100, 80, 80], low=[100, 100, 100, 79, 80])
    gap.loc[3, "open"] = 85.0  # opens below the stop: filled at the open
    trade = replay(
        gap, _predictions([0.9] * 5), _params(stoploss=-0.10), fee=FEE, timeframe="1h"
    ).trades.iloc[0]
    assert (trade.exit_price, trade.exit_reason) == (85.0, "stop_loss")


def test_roi_table_by_minutes_since_entry_includes_fees() -> None:
    close = [100, 100, 101, 101.5, 101.5, 101.5]
    high = [100, 100, 101, 101.6, 101.5, 101.5]
    params = _params(**{"roi.0": 0.05, "roi.120": 0.01})
    result = replay(
        _candles(close, high=high), _predictions([0.9] * 6), params, fee=FEE, timeframe="1h"
    )
    trade = result.trades.iloc[0]
    required = 100 * (1 + 0.01 + FEE) / (1 - FEE)  # after 120 minutes, 1% net of fees
    assert (trade.entry_index, trade.exit_index, trade.exit_reason) == (1, 3, "roi")
    assert trade.exit_price == pytest.approx(required)
    # Freqtrade's ROI price: 1% of the open rate net of both fees, i.e. 1% / (1 + fee) of the stake
    assert trade.profit_ratio == pytest.approx(0.01 / (1 + FEE), abs=1e-12)


def test_trailing_stop_follows_completed_highs() -> None:
    close = [100, 100, 110, 120, 112, 111]
    low = [100, 100, 100, 110, 107, 100]
    params = _params(
        trailing_stop=True, trailing_stop_positive=0.05, trailing_stop_positive_offset=0.0
    )
    trade = replay(
        _candles(close, low=low), _predictions([0.9] * 6), params, fee=FEE, timeframe="1h"
    ).trades.iloc[0]
    assert trade.exit_reason == "stop_loss" and trade.exit_index == 4
    assert trade.exit_price == pytest.approx(120 * 0.95)


def test_rules_strategy_follows_the_prediction() -> None:
    params = StrategyParams(strategy="RegimeRulesStrategy", stoploss=-0.5)
    predictions = _predictions([0.9, 0.9, 0.1, 0.1, 0.9, 0.9])
    result = replay(
        _candles([100, 101, 102, 103, 104, 105]), predictions, params, fee=FEE, timeframe="1h"
    )
    assert result.trades[["entry_index", "exit_index"]].values.tolist() == [[1, 3], [5, 5]]


def test_unknown_strategy_values_and_invalid_values_are_refused() -> None:
    with pytest.raises(SpecError, match="no tunable value 'entry_treshold'"):
        _params(entry_treshold=0.6)
    with pytest.raises(SpecError, match="stoploss"):
        _params(stoploss=0.1)


def test_freqtrade_loads_the_written_parameter_file(tmp_path: Path) -> None:
    """Plain Freqtrade picks up the tuned values from <Strategy>.json next to the strategy,
    and the rules variant (its own file) is not disturbed by it."""
    from freqtrade.resolvers import StrategyResolver

    for source in REPO_STRATEGIES.glob("Regime*.py"):
        shutil.copy(source, tmp_path / source.name)
    shutil.copytree(REPO_STRATEGIES / "compositions", tmp_path / "compositions")
    info = {i.name: i for i in introspect(tmp_path)}["RegimeStrategy"]
    tuned = with_values(
        default_params(info),
        {
            "entry_threshold": 0.61,
            "stoploss": -0.07,
            "roi.0": 0.12,
            "trailing_stop": True,
            "trailing_stop_positive": 0.02,
        },
    )
    path = tuned.write(tmp_path)
    assert path == tmp_path / "RegimeStrategy.json"
    assert json.loads(path.read_text())["params"]["buy"] == {"entry_threshold": 0.61}

    def load(name: str):  # type: ignore[no-untyped-def]
        strategy = StrategyResolver.load_strategy(
            {
                "strategy": name,
                "strategy_path": str(tmp_path),
                "user_data_dir": tmp_path,
                "stake_currency": "USDT",
                "dry_run": True,
            }
        )
        strategy.ft_load_hyper_params()
        return strategy

    # what the replay reads back from the file is what Freqtrade loads
    assert with_file(default_params(info), tmp_path) == tuned
    regime = load("RegimeStrategy")
    assert regime.entry_threshold.value == 0.61
    assert regime.exit_threshold.value == info.parameters[1].default == 0.47
    assert regime.stoploss == -0.07
    assert regime.minimal_roi == {0: 0.12, 720: 0.02}
    assert regime.trailing_stop is True and regime.trailing_stop_positive == 0.02
    rules = load("RegimeRulesStrategy")
    assert rules.stoploss == info.stoploss and not hasattr(rules, "entry_threshold")


def test_parameter_files_carry_no_float_noise() -> None:
    from strategies.catalogue import introspect
    from strategies.params import default_params, with_values
    from strategies.runner import REPO_STRATEGIES

    info = {i.name: i for i in introspect(REPO_STRATEGIES)}["RegimeStrategy"]
    tuned = with_values(
        default_params(info),
        {"stoploss": -0.03499999999999999, "entry_threshold": 0.5700000000000001},
    )
    content = tuned.freqtrade_file()["params"]
    assert content["stoploss"]["stoploss"] == -0.035
    assert content["buy"]["entry_threshold"] == 0.57
