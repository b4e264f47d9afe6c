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
