"""Backtesting: a served model on the real Freqtrade engine, recorded in MLflow.

:mod:`.run` (``tradingbot backtest``: one pair, a whitelist, walk-forward), :mod:`.checks`
(what must agree before the engine runs), :mod:`.scorecard` (one spec across markets).
"""
