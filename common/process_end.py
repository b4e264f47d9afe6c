"""Ending a command's process without the interpreter's teardown.

When a command is done, the interpreter's own ending frees every imported module
(Freqtrade, pandas, MLflow, ours) one by one: 0.9-1.3 s after every backtest or training
command, measured, while the user (or the caller) waits and nothing is left to save.
:func:`exit_without_teardown` does what that ending does first, and ends the process
there.
"""

from __future__ import annotations

import atexit
import os
import sys
import threading
from collections.abc import Callable
from typing import NoReturn


def exit_without_teardown(code: int) -> NoReturn:
    """End this process with ``code`` now, after what the interpreter's own ending does
    first, in its order: wait for the threads that are not daemons, run the exit
    handlers (MLflow's, logging's flush and close, ``weakref.finalize`` clean-ups,
    multiprocessing's), flush the standard streams. What is skipped is the freeing of
    modules and objects, which nothing needs at the end of a process. An object that
    writes in its own ``__del__`` would be skipped too: our code closes what it writes
    (``with`` blocks)."""
    # the interpreter's own first step: the threading module's exit callbacks (which
    # stop concurrent.futures' idle workers, MLflow's artefact uploads among them), then
    # a join of every thread that is not a daemon
    shutdown_threads: Callable[[], None] = getattr(threading, "_shutdown")  # noqa: B009
    shutdown_threads()
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        if stream is not None:
            stream.flush()
    os._exit(code)
