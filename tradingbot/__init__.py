"""The `tradingbot` command line: parse, call one library function, render.

One module per command group, as Freqtrade's ``commands/``: each command parses its
options, calls one function of the library and renders the result. Errors a user can
cause print one clear message (what, where, how to fix) and exit with status 2,
without a traceback (:mod:`tradingbot.main`).
"""

from __future__ import annotations

# Importing a group registers its commands on ``app``; this order is --help's order.
# isort: off
from tradingbot import data  # noqa: F401
from tradingbot import training  # noqa: F401
from tradingbot import freqai  # noqa: F401
from tradingbot import tuning  # noqa: F401
from tradingbot import backtests  # noqa: F401
from tradingbot import trading  # noqa: F401
from tradingbot import journal  # noqa: F401
from tradingbot import house  # noqa: F401

# isort: on
from tradingbot._app import app, console, tracking_uri
from tradingbot.main import main, run, storage_problem
from tradingbot.tuning import tune_progress

__all__ = ["app", "console", "main", "run", "storage_problem", "tracking_uri", "tune_progress"]
