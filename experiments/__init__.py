"""Orchestration, the library the ``tradingbot`` command calls: experiment specs, and the
packages :mod:`.training`, :mod:`.backtesting`, :mod:`.tuning` and :mod:`.reporting`."""
