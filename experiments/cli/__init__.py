"""The `tradingbot` command line: parse, call one library function, render.

One module per command group, as Freqtrade's ``commands/``: each command parses its
options, calls one function of the library and renders the result. Errors a user can
cause print one clear message (what, where, how to fix) and exit with status 2,
without a traceback (:mod:`experiments.cli.main`).
"""

from __future__ import annotations

# Importing a group registers its commands on ``app``; this order is --help's order.
# isort: off
from experiments.cli import data  # noqa: F401
from experiments.cli import training  # noqa: F401
from experiments.cli import tuning  # noqa: F401
from experiments.cli import backtests  # noqa: F401
from experiments.cli import trading  # noqa: F401
from experiments.cli import journal  # noqa: F401
from experiments.cli import house  # noqa: F401

# isort: on
from experiments.cli._app import app, console, tracking_uri
from experiments.cli.main import main, run, storage_problem
from experiments.cli.tuning import tune_progress

__all__ = ["app", "console", "main", "run", "storage_problem", "tracking_uri", "tune_progress"]
