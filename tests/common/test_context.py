"""The run context (issue 26): resolved once where a command enters, a plain value below."""

from __future__ import annotations

import ast
import pickle
from collections.abc import Callable
from pathlib import Path

from common.context import RunContext, default_tracking_uri

ROOT = Path(__file__).resolve().parents[2]

# Modules under the CLI that touch the process environment, and why that is theirs.
ENVIRONMENT_ALLOWED = {
    # Freqtrade's entry point into our code (bot_start): a strategy has no CLI above it
    "strategies/hooks.py",
    # runs Freqtrade in-process, which reads FREQTRADE__* itself: they are hidden from it
    "strategies/paper_replay.py",
    # MLflow client defaults only (telemetry off, short HTTP retries), and undoing
    # mlflow.set_tracking_uri's export of the URI into the environment; no setting is read
    "ml/tracking.py",
    "ml/serving/loading.py",
    # a pool's workers get this process's environment, as spawned ones would inherit it
    # (they are forked from a fork server started earlier); no setting is read
    "common/executors.py",
    # Freqtrade's process forked from that fork server takes the environment the command
    # hands it (less FREQTRADE__*), as a started one gets it from subprocess; none is read
    "strategies/freqtrade_offline.py",
    # where this machine keeps caches (XDG_CACHE_HOME), as every program finds it: the
    # empty MLflow store new stores are copied from; no setting of ours is read
    "ml/store_template.py",
}


def test_mlflow_tracking_uri_wins_else_the_user_dirs_store(tmp_path: Path) -> None:
    assert RunContext.resolve(tmp_path, {}).tracking_uri == default_tracking_uri(tmp_path)
    shared = {"MLFLOW_TRACKING_URI": "http://mlflow:5000"}
    assert RunContext.resolve(tmp_path, shared).tracking_uri == "http://mlflow:5000"


def test_the_environment_is_a_snapshot_and_the_context_pickles_whole(tmp_path: Path) -> None:
    environ = {"RISK_MAX_OPEN_TRADES": "2"}
    context = RunContext.resolve(tmp_path, environ)
    environ["RISK_MAX_OPEN_TRADES"] = "9"
    assert context.environment["RISK_MAX_OPEN_TRADES"] == "2"
    assert context.layout.mlflow_db == tmp_path / "mlflow.db"
    again = pickle.loads(pickle.dumps(context))
    assert again == context and dict(again.environment) == {"RISK_MAX_OPEN_TRADES": "2"}


def _lines(path: Path, found: Callable[[ast.AST], bool]) -> list[int]:
    return [node.lineno for node in ast.walk(ast.parse(path.read_text())) if found(node)]


def _environment_use(node: ast.AST) -> bool:
    return (
        isinstance(node, ast.Attribute)
        and isinstance(node.value, ast.Name)
        and node.value.id == "os"
        and node.attr in ("environ", "getenv", "putenv", "unsetenv")
    )


def _layout_built(node: ast.AST) -> bool:
    return (
        isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "UserDir"
    )


def _found_below_the_cli(found: Callable[[ast.AST], bool], allowed: set[str]) -> list[str]:
    places = []
    for package in ("common", "features", "ml", "strategies", "experiments"):
        for path in sorted((ROOT / package).rglob("*.py")):
            name = path.relative_to(ROOT).as_posix()
            if name not in allowed:
                places += [f"{name}:{line}" for line in _lines(path, found)]
    return places


def test_only_the_cli_reads_the_process_environment() -> None:
    found = _found_below_the_cli(_environment_use, ENVIRONMENT_ALLOWED)
    assert found == [], "pass the environment down in a RunContext from tradingbot/"


# Modules under the CLI that build a user-dir layout, and the path that enters there.
LAYOUT_ALLOWED = {
    # the run context is built from the path a command was given
    "common/context.py",
    # Freqtrade's config (user_data_dir): a strategy has no CLI above it
    "strategies/hooks.py",
    # the SQLite file named by a tracking URI: its user dir holds the artefacts
    "ml/serving/loading.py",
    # the backup's component paths, spelled relative to any user dir
    "experiments/backup.py",
}


def test_below_the_cli_a_user_dir_travels_as_its_layout() -> None:
    """Issue 26: a ``UserDir(...)`` is built only where a path enters from outside;
    everything below takes the layout (``context.layout``) it was handed."""
    found = _found_below_the_cli(_layout_built, LAYOUT_ALLOWED)
    assert found == [], "take `layout: UserDir` (or the RunContext) instead of a path"
