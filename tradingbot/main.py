"""Running the CLI: exit codes, one-line errors, storage problems."""

from __future__ import annotations

import errno
import os
import sqlite3
import sys
from collections.abc import Sequence
from pathlib import Path

import typer

from common.errors import TradingbotError
from common.process_end import exit_without_teardown
from tradingbot._app import (
    app,
)


def run(argv: Sequence[str] | None = None) -> int:
    """Run the CLI and return its exit status (testable without a subprocess)."""
    # Users run offline: MLflow telemetry stays off unless they opt in explicitly.
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    from ml.observability import bind, new_correlation_id

    try:
        with bind(correlation=new_correlation_id()):  # one id for everything this call logs
            result = app(
                args=list(argv) if argv is not None else None,
                standalone_mode=False,
                prog_name="tradingbot",
            )
    except TradingbotError as exc:
        typer.echo(f"error: {exc}", err=True)
        return exc.exit_code
    except (typer.Abort, KeyboardInterrupt):
        typer.echo("interrupted", err=True)
        return 130
    except typer.exceptions.TyperException as exc:  # usage errors: typer prints them itself
        show = getattr(exc, "show", None)
        if callable(show):
            show()
        return int(getattr(exc, "exit_code", 2))
    except Exception as exc:
        message = storage_problem(exc)
        if message is None:
            raise
        typer.echo(f"error: {message}", err=True)
        return 2
    return result if isinstance(result, int) else 0


WRITE_ERRNOS = frozenset({errno.EROFS, errno.EACCES, errno.EPERM, errno.ENOSPC, errno.EDQUOT})


def storage_problem(exc: BaseException) -> str | None:
    """One line for a failure of the disk under the user dir (read-only, no permission,
    full, not a directory), found anywhere in the exception's chain; None otherwise."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) and current.errno in WRITE_ERRNOS | {errno.ENOTDIR}:
            where = str(current.filename or "the user dir")
            if Path(where).name.startswith(".") and where.endswith(".tmp"):
                where = str(Path(where).parent)  # a temporary file beside the real target
            return (
                f"cannot write {where}: {current.strerror}\n"
                "  hint: the user dir and everything under it must be writable "
                "(fix its permissions or free space, or pick another with --userdir)"
            )
        text = str(current)
        if isinstance(current, sqlite3.Error) and (
            "readonly database" in text or "unable to open database" in text
        ):
            return (
                f"a database under the user dir cannot be written ({text})\n"
                "  hint: the user dir and everything under it must be writable "
                "(fix its permissions, or pick another with --userdir)"
            )
        current = current.__cause__ or current.__context__
    return None


def main() -> None:
    """The ``tradingbot`` command: its work done, it ends its pool's fork server, which
    an early error can leave importing (:func:`common.executors.stop_fork_server`), and
    ends without the interpreter's teardown (about 1.2 s of freeing modules, measured:
    :mod:`common.process_end`)."""
    code = run(sys.argv[1:])
    from common.executors import stop_fork_server  # here: --help need not import it

    stop_fork_server()
    exit_without_teardown(code)
