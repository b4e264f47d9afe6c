"""MLflow tracking: the store, experiments, run hygiene and logging helpers.

Default store: ``sqlite:///<userdir>/mlflow.db`` with artefacts under
``<userdir>/mlartifacts`` (MLflow 3 refuses the plain file store). The caller
(the CLI) decides the URI: ``MLFLOW_TRACKING_URI`` overrides the default there.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import mlflow
from mlflow.entities import Metric, RunStatus
from mlflow.tracking import MlflowClient

from ml.observability import bind

PID_TAG = "tradingbot.pid"
HOST_TAG = "tradingbot.host"


def default_tracking_uri(userdir: Path) -> str:
    return f"sqlite:///{(userdir / 'mlflow.db').resolve()}"


def artifact_root(userdir: Path) -> Path:
    return (userdir / "mlartifacts").resolve()


def configure(tracking_uri: str, userdir: Path) -> MlflowClient:
    """Point MLflow at ``tracking_uri`` (telemetry stays off unless the user opted in)."""
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    userdir.mkdir(parents=True, exist_ok=True)
    use_uri(tracking_uri)
    return MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)


def use_uri(tracking_uri: str) -> None:
    """Make ``tracking_uri`` MLflow's tracking and registry URI in this process only.

    ``mlflow.set_*_uri`` also export MLFLOW_TRACKING_URI / MLFLOW_REGISTRY_URI into
    the process environment, where they would later read as the *user's* choice
    (and leak into child processes): they are put back as they were.
    """
    saved = {key: os.environ.get(key) for key in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")}
    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_registry_uri(tracking_uri)
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


def experiment_id(client: MlflowClient, name: str, userdir: Path) -> str:
    """The id of experiment ``name``, created with artefacts under the user dir if new.

    With a remote tracking server the server decides where artefacts go.
    """
    existing = client.get_experiment_by_name(name)
    if existing is not None:
        return str(existing.experiment_id)
    location = None
    if client.tracking_uri.startswith("sqlite:"):
        location = (artifact_root(userdir) / name).as_uri()
    return str(client.create_experiment(name, artifact_location=location))


def process_alive(pid: int) -> bool:
    """Does a process with this pid exist on this machine?"""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def fail_stale_runs(client: MlflowClient, experiment: str) -> list[str]:
    """Mark runs left RUNNING by a process of this host that no longer exists as FAILED."""
    host = socket.gethostname()
    stale = []
    runs = client.search_runs([experiment], filter_string="attributes.status = 'RUNNING'")
    for run in runs:
        tags = run.data.tags
        if tags.get(HOST_TAG) != host or not tags.get(PID_TAG, "").isdigit():
            continue
        if process_alive(int(tags[PID_TAG])) and int(tags[PID_TAG]) != os.getpid():
            continue
        client.set_tag(run.info.run_id, "tradingbot.failure", "its process died while running")
        client.set_terminated(run.info.run_id, status=RunStatus.to_string(RunStatus.FAILED))
        stale.append(run.info.run_id)
    return stale


def process_tags() -> dict[str, str]:
    return {PID_TAG: str(os.getpid()), HOST_TAG: socket.gethostname()}


@contextmanager
def tracked_run(**start_kwargs: Any) -> Iterator[mlflow.ActiveRun]:
    """``mlflow.start_run`` that ends FAILED on errors and KILLED on Ctrl-C."""
    run = mlflow.start_run(**start_kwargs)
    try:
        with bind(run=run.info.run_id):  # every log line inside names the run
            yield run
    except KeyboardInterrupt:
        mlflow.end_run(status=RunStatus.to_string(RunStatus.KILLED))
        raise
    except BaseException:
        mlflow.end_run(status=RunStatus.to_string(RunStatus.FAILED))
        raise
    else:
        mlflow.end_run(status=RunStatus.to_string(RunStatus.FINISHED))


def flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """Nested config -> flat ``a.b.c`` params (values as compact JSON for lists)."""
    flat: dict[str, str] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten(value, f"{name}."))
        elif isinstance(value, list | tuple):
            flat[name] = json.dumps(value, default=str)[:6000]
        else:
            flat[name] = str(value)
    return flat


def git_commit(cwd: Path | None = None) -> str:
    try:
        result = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            cwd=cwd,
            timeout=5,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return result.stdout.strip() or "unknown"


MAX_METRICS_PER_BATCH = 1000  # MLflow's limit for one log_batch call


def log_history(history: list[dict[str, float]], prefix: str = "") -> None:
    """Per-epoch metrics of the active run, with the epoch as MLflow step.

    Sent in batches: one call per epoch (a LightGBM fit has hundreds of boosting
    rounds) cost more than the fit itself."""
    run = mlflow.active_run()
    if run is None:
        raise RuntimeError("log_history() needs an active MLflow run")
    timestamp = int(time.time() * 1000)
    metrics = [
        Metric(f"{prefix}{key}", float(value), timestamp, int(record.get("epoch", 0)))
        for record in history
        for key, value in record.items()
        if key != "epoch"
    ]
    client = MlflowClient()
    for start in range(0, len(metrics), MAX_METRICS_PER_BATCH):
        client.log_batch(run.info.run_id, metrics=metrics[start : start + MAX_METRICS_PER_BATCH])


def log_metrics(metrics: Mapping[str, float], prefix: str = "") -> None:
    mlflow.log_metrics({f"{prefix}{k}": float(v) for k, v in metrics.items()})
