"""RegimeStrategy's entry and exit signals when no candle qualifies (issue: a Freqtrade
traceback in a backtest inside the training window, where every do_predict is 0)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd

STRATEGIES = Path(__file__).resolve().parents[2] / "user_data" / "strategies"


def test_no_qualifying_candle_gives_no_signal_and_no_error() -> None:
    sys.path.insert(0, str(STRATEGIES))  # as Freqtrade does
    try:
        from RegimeStrategy import RegimeStrategy
    finally:
        sys.path.remove(str(STRATEGIES))
    strategy = RegimeStrategy.__new__(RegimeStrategy)  # the signal methods need no config
    frame = pd.DataFrame(
        {
            "do_predict": np.zeros(50, dtype="int64"),  # inside the training window
            "&-p_up": np.full(50, np.nan),
            "&-regime": [""] * 50,
        }
    )
    entries = strategy.populate_entry_trend(frame.copy(), {"pair": "BTC/USDT"})
    exits = strategy.populate_exit_trend(frame.copy(), {"pair": "BTC/USDT"})
    assert entries.get("enter_long", pd.Series(dtype=float)).fillna(0).sum() == 0
    assert exits.get("exit_long", pd.Series(dtype=float)).fillna(0).sum() == 0


def test_tags_carry_the_rule_not_the_numbers() -> None:
    from strategies.blocks import reason_tag
    from strategies.composition import load_composition

    composition = load_composition(STRATEGIES / "compositions" / "RegimeStrategy.toml")
    rows = pd.DataFrame(
        {
            "do_predict": 1,
            "&-regime": ["bull"] * 15 + ["bear"] * 15,
            "&-p_up": np.linspace(0.56, 0.9, 30)[::-1],
        }
    )
    signals = composition.signals(rows, composition.defaults())
    tags = set(signals.enter_tag[signals.enter])
    assert tags == {"bull|model_probability+regime_filter"}  # the same for every p_up
    assert set(signals.exit_tag[signals.exit]) == {"bear|regime_turn"}
    reason = (
        "long: regime bull (p=0.80), RSI 28 oversold, momentum +1.20%; "
        "situation was up 57% of 1,234 training candles"
    )
    assert reason_tag(reason) == "long: regime bull, RSI oversold, momentum up"
    other = (
        reason.replace("(p=0.80)", "(p=0.91)")
        .replace("RSI 28", "RSI 22")
        .replace("+1.20%", "+3.4%")
    )
    assert reason_tag(other) == reason_tag(reason)
    assert reason_tag(reason.replace("+1.20%", "-0.50%")).endswith("momentum down")
