"""A strategy without a model: technical entry blocks and every kind of position exit.

Buys oversold pullbacks (RSI and Bollinger bands) in an uptrend on rising volume;
sells a third at each profit rung (partial exits), leaves on an ATR stop, after a
number of candles, or when the trend breaks. The blocks are listed in
``compositions/TrendPullbackStrategy.toml``; it is the worked example of
docs/STRATEGIES.md.
"""

from __future__ import annotations

from strategies.composed import ComposedStrategy, composition_beside


class TrendPullbackStrategy(ComposedStrategy):
    """Buy oversold pullbacks in an uptrend; scale out on profit, leave on a stop or a time limit."""

    composition = composition_beside(__file__, "TrendPullbackStrategy")
