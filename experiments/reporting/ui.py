"""`tradingbot ui`: the MLflow UI for one user dir's store, read-only, stopped cleanly on Ctrl-C.

The server is MLflow's own app behind :mod:`experiments.reporting.ui_readonly`: anything that
would write (an alias moved, a tag set, a file uploaded) is refused with 403, so
promotions go through ``tradingbot promote`` and its checks.

Plain ``mlflow ui`` starts worker and job processes that can outlive it; here the
server runs with one worker and job execution off, in its own process group, and
the whole group is terminated on exit. Whatever ends the command, SIGKILL
included, a watchdog process ends the server group within a second or two: it
polls the command's pid and stops the group when the command is gone.
"""

from __future__ import annotations

import inspect
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Callable

from common.atomic import pid_alive
from common.context import RunContext
from common.errors import TradingbotError
from common.layout import UserDir
from ml import tracking
from ml.tracking import artifact_root
from ml.ui_view import comparison_url


def server_command(tracking_uri: str, layout: UserDir, port: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        "mlflow",
        "server",
        "--backend-store-uri",
        tracking_uri,
        "--default-artifact-root",
        artifact_root(layout).as_uri(),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
        # read-only: no alias moves, no uploads (experiments.reporting.ui_readonly)
        "--app-name",
        "tradingbot-readonly",
        # had anything been uploaded, it would land in the user dir, not the working dir
        "--artifacts-destination",
        artifact_root(layout).as_uri(),
    ]


# A script of its own (it must outlive us), with common.atomic.pid_alive's source in it.
WATCHDOG = f"""
import os, signal, sys, time
owner, group = int(sys.argv[1]), int(sys.argv[2])
{inspect.getsource(pid_alive)}
while pid_alive(owner):
    time.sleep(0.5)
    try:
        os.killpg(group, 0)
    except ProcessLookupError:
        sys.exit(0)  # the server group ended first: nothing to do
try:
    os.killpg(group, signal.SIGTERM)
    time.sleep(5)
    os.killpg(group, signal.SIGKILL)
except ProcessLookupError:
    pass
"""


def start_watchdog(owner: int, group: int) -> subprocess.Popen[bytes]:
    """A process that ends process group ``group`` once process ``owner`` is gone."""
    return subprocess.Popen(
        [sys.executable, "-c", WATCHDOG, str(owner), str(group)],
        start_new_session=True,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


class UiError(TradingbotError):
    """The UI could not be served."""


def require_free_port(port: int) -> None:
    """Refuse a port something already listens on (the server would exit, and the
    command with it, after its start-up, and exit 0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server binds
        try:
            probe.bind(("127.0.0.1", port))
        except OSError as exc:
            raise UiError(
                f"port {port} on 127.0.0.1 is in use ({exc.strerror})",
                hint="choose another with --port, or stop what listens there",
            ) from None


def comparison_links(tracking_uri: str, layout: UserDir, base: str) -> list[str]:
    """``name: URL`` of every experiment's runs compared in the model-training view
    (ml.ui_view); the view's tags are brought up to date first, as the UI cannot write."""
    client = tracking.configure(tracking_uri, layout)
    links = []
    for experiment in client.search_experiments():
        if experiment.name == "Default" and not client.search_runs([experiment.experiment_id]):
            continue  # MLflow's own, empty
        identifier = tracking.experiment_id(client, experiment.name, layout)
        links.append(f"{experiment.name}: {comparison_url(base, identifier)}")
    return links


def serve_ui(context: RunContext, *, port: int, say: Callable[[str], None]) -> int:
    """MLflow's UI server for the context's store on 127.0.0.1:``port`` (it inherits the
    context's environment), until Ctrl-C or a signal stops its whole process group."""
    layout, tracking_uri = context.layout, context.tracking_uri
    require_free_port(port)
    base = f"http://127.0.0.1:{port}"
    links = comparison_links(tracking_uri, layout, base)
    env = {**context.environment, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    env.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    layout.root.mkdir(parents=True, exist_ok=True)
    process = subprocess.Popen(
        server_command(tracking_uri, layout, port), env=env, start_new_session=True
    )
    start_watchdog(os.getpid(), process.pid)
    say(f"MLflow UI for {tracking_uri} on {base} (Ctrl-C to stop)")
    if links:
        say("compare runs (model-training view, key figures as columns):")
        for link in links:
            say(f"  {link}")

    def stop(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt  # SIGTERM/SIGHUP stop the server group like Ctrl-C does

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        code = process.wait()
    except KeyboardInterrupt:
        return 0
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        say("MLflow UI stopped")
    if code != 0:
        raise UiError(f"the MLflow server exited with status {code} (its output is above)")
    return code
