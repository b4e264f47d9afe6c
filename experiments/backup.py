"""`tradingbot backup` / `tradingbot restore`: everything a user dir must not lose.

Components (each optional, present or not):

* ``mlflow``: ``mlflow.db`` (SQLite) and the artefacts under ``mlartifacts/``;
* ``registry``: ``registry/strategies_registry.sqlite`` (incidents, backtest runs);
* ``optuna``: ``optuna.db`` and journal files under ``optuna/``;
* ``backtests``: ``backtest_results/tradingbot/`` (our cached Freqtrade results);
* ``data``: ``data/`` (the imported candles and their quality reports);
* ``strategies``: ``strategies/`` (the tuned ``<Strategy>.json`` parameter files);
* ``journal``: ``journal.sqlite`` (every bot's positions and partial exits);
* ``trades``: the paper and live bots' ``tradesv3.{dryrun,live}.sqlite`` (restore
  them only while the bot is stopped).

MLflow records artefact locations as absolute paths; the first command (or
Freqtrade strategy) that opens a restored or copied store points them at its own
``mlartifacts`` (``ml.tracking.relocate_artifacts``), so a restore into another
directory, or on another machine, serves its own champion.

SQLite databases are copied with SQLite's online backup API (a consistent copy
even while another process writes), never as raw files. Every file's sha256 is
recorded in ``manifest.json``; a restore verifies all of them before it touches
anything, then replaces each component through a temporary copy and a rename.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from common.atomic import write_text_atomic
from common.errors import TradingbotError
from common.layout import UserDir

_LAYOUT = UserDir(Path())  # paths relative to the user dir
COMPONENTS: dict[str, tuple[list[str], list[str]]] = {
    # component: (SQLite files, directories), relative to the user dir
    "mlflow": ([str(_LAYOUT.mlflow_db)], [str(_LAYOUT.mlflow_artifacts)]),
    "registry": ([str(_LAYOUT.registry_db)], []),
    "optuna": ([str(_LAYOUT.optuna_db)], [str(_LAYOUT.optuna)]),
    "backtests": ([], [str(_LAYOUT.backtests)]),
    "data": ([], [str(_LAYOUT.data_root)]),
    "strategies": ([], [str(_LAYOUT.strategies)]),
    "journal": ([str(_LAYOUT.journal)], []),
    # the paper and live bots' own trade databases (restore only while the bot is stopped)
    "trades": ([str(_LAYOUT.trades_db(live=False)), str(_LAYOUT.trades_db(live=True))], []),
}


# Optuna's journal lock, our per-study tuning locks; writers' temporary files
LOCK_FILES = ("*.lock", ".*.tmp", "__pycache__")


class BackupError(TradingbotError):
    """A backup that cannot be written, read or trusted."""


class Manifest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    created: datetime
    userdir: str
    components: dict[str, list[str]]  # component -> its paths (relative) in the backup
    sha256: dict[str, str]  # relative file path -> sha256


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _sqlite_copy(source: Path, target: Path) -> None:
    """SQLite's online backup API: a consistent copy of a live database."""
    target.parent.mkdir(parents=True, exist_ok=True)
    src = dst = None
    try:
        src = sqlite3.connect(source)  # not mode=ro: see ml.tracking.check_sqlite_store
        src.execute("PRAGMA query_only = ON")
        dst = sqlite3.connect(target)
        src.backup(dst)
    except sqlite3.DatabaseError as exc:
        raise BackupError(f"{source}: not a readable SQLite database ({exc})") from exc
    finally:
        for connection in (src, dst):
            if connection is not None:
                connection.close()


def backup(layout: UserDir, out: Path | None = None) -> tuple[Path, Manifest]:
    """Write a backup of every present component; return its folder and manifest."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    target = out or layout.backups / stamp
    if target.exists():
        raise BackupError(f"{target} already exists", hint="choose another --out")
    staging = target.with_name(f".{target.name}.partial")
    shutil.rmtree(staging, ignore_errors=True)
    components: dict[str, list[str]] = {}
    try:
        for component, (databases, folders) in COMPONENTS.items():
            paths = []
            for relative in databases:
                if (layout.root / relative).exists():
                    _sqlite_copy(layout.root / relative, staging / relative)
                    paths.append(relative)
            for relative in folders:
                if (layout.root / relative).is_dir():
                    # lock files belong to the processes that held them, not to the state
                    shutil.copytree(
                        layout.root / relative,
                        staging / relative,
                        ignore=shutil.ignore_patterns(*LOCK_FILES),
                    )
                    paths.append(relative)
            if paths:
                components[component] = paths
        if not components:
            raise BackupError(
                f"nothing to back up in {layout.root}", hint="train or backtest something first"
            )
        sums = {
            str(path.relative_to(staging)): _sha256(path)
            for path in sorted(staging.rglob("*"))
            if path.is_file()
        }
        manifest = Manifest(
            created=datetime.now(UTC),
            userdir=str(layout.root.resolve()),
            components=components,
            sha256=sums,
        )
        write_text_atomic(staging / "manifest.json", manifest.model_dump_json(indent=2))
        target.parent.mkdir(parents=True, exist_ok=True)
        staging.rename(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target, manifest


def verify(backup_dir: Path) -> Manifest:
    """Read the manifest and check every file's sha256; raise on the first mismatch."""
    try:
        manifest = Manifest.model_validate(json.loads((backup_dir / "manifest.json").read_text()))
    except FileNotFoundError:
        raise BackupError(f"{backup_dir}: no manifest.json: not a Tradingbot backup") from None
    except (ValueError, json.JSONDecodeError) as exc:
        raise BackupError(f"{backup_dir}/manifest.json: unreadable ({exc})") from exc
    for relative, expected in manifest.sha256.items():
        path = backup_dir / relative
        if not path.is_file():
            raise BackupError(f"{backup_dir}: {relative} is missing from the backup")
        if _sha256(path) != expected:
            raise BackupError(
                f"{backup_dir}: checksum mismatch for {relative}: the backup is damaged"
            )
    return manifest


def restore(backup_dir: Path, layout: UserDir, only: list[str] | None = None) -> list[str]:
    """Restore components (all in the backup, or ``only``); verified before anything changes."""
    manifest = verify(backup_dir)
    wanted = only or list(manifest.components)
    unknown = [c for c in wanted if c not in COMPONENTS]
    if unknown:
        raise BackupError(
            f"unknown component(s) {unknown}", hint=f"choose from {sorted(COMPONENTS)}"
        )
    missing = [c for c in wanted if c not in manifest.components]
    if missing:
        raise BackupError(f"{backup_dir} holds no {', '.join(missing)}")
    restored = []
    for component in wanted:
        for relative in manifest.components[component]:
            source, target = backup_dir / relative, layout.root / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            staging = target.with_name(f".{target.name}.restoring")
            shutil.rmtree(staging, ignore_errors=True) if staging.is_dir() else staging.unlink(
                missing_ok=True
            )
            if source.is_dir():
                shutil.copytree(source, staging)
                old = target.with_name(f".{target.name}.old")
                if target.exists():
                    target.rename(old)
                staging.rename(target)
                shutil.rmtree(old, ignore_errors=True)
            else:
                _sqlite_copy(source, staging)
                # the old store's write-ahead log belongs to the old file: left beside the
                # restored one, SQLite would replay it into it
                for log in ("-wal", "-shm"):
                    target.with_name(target.name + log).unlink(missing_ok=True)
                staging.replace(target)
            restored.append(relative)
    return restored
