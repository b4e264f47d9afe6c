"""Backup and restore: SQLite's online backup API, checksums, a corrupted database restored."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from common.layout import UserDir
from experiments.backup import BackupError, backup, restore, verify
from experiments.spec import parse_experiment
from experiments.training import train
from features.data import import_candles
from features.data.synthetic import generate
from ml.tracking import default_tracking_uri
from strategies.risk import RiskManager, RiskSettings
from tests.conftest import CliResult, local_context


@pytest.fixture(scope="module")
def userdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _trained_userdir(tmp_path_factory.mktemp("backup"))


def _trained_userdir(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    generate(2500, seed=2)[0].to_feather(root / "c.feather")
    userdir = root / "ud"
    import_candles(
        root / "c.feather",
        pair="BTC/USDT",
        timeframe="1h",
        exchange="binance",
        layout=UserDir(userdir),
    )
    spec = parse_experiment(
        {
            "name": "bk",
            "regime": {"n_restarts": 1, "n_iter": 20},
            "walk_forward": {"folds": 1},
            "model": {"kind": "lightgbm", "params": {"n_estimators": 20}},
        },
        source="test",
    )
    train(spec, context=local_context(userdir, default_tracking_uri(userdir)))
    RiskManager(RiskSettings.for_userdir(UserDir(userdir))).record_incident(
        "warning", "test", "an incident"
    )
    return userdir


def _runs(userdir: Path) -> list[str]:
    client = MlflowClient(default_tracking_uri(userdir))
    experiment = client.get_experiment_by_name("bk")
    return sorted(r.info.run_id for r in client.search_runs([experiment.experiment_id]))


def test_backup_corrupt_restore(userdir: Path, tmp_path: Path) -> None:
    runs = _runs(userdir)
    target, manifest = backup(UserDir(userdir), tmp_path / "b1")
    assert set(manifest.components) == {"mlflow", "registry", "data"}
    assert "mlflow.db" in manifest.sha256 and any(
        k.startswith("mlartifacts/") for k in manifest.sha256
    )
    assert verify(target).sha256 == manifest.sha256

    database = userdir / "mlflow.db"
    with sqlite3.connect(database) as db:  # everything in the file, not in its log
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    with database.open("r+b") as handle:  # corrupt the live database
        handle.seek(0)
        handle.write(b"this is not sqlite" * 64)
    # a write-ahead log of the damaged store is left beside it: the restore removes it
    database.with_name("mlflow.db-wal").write_bytes(b"stale log of the old file")
    with pytest.raises(sqlite3.DatabaseError), sqlite3.connect(database) as db:
        db.execute("SELECT count(*) FROM runs").fetchone()

    assert restore(target, UserDir(userdir), ["mlflow"]) == ["mlflow.db", "mlartifacts"]
    # a new connection (processes that had the store open must be restarted: see RUNBOOK)
    with sqlite3.connect(database) as db:
        restored = sorted(row[0] for row in db.execute("SELECT run_uuid FROM runs"))
    assert restored == runs
    with sqlite3.connect(userdir / "registry" / "strategies_registry.sqlite") as db:
        assert db.execute("SELECT code FROM incidents").fetchall() == [("test",)]


def test_damaged_backup_is_refused_before_anything_changes(userdir: Path, tmp_path: Path) -> None:
    target, manifest = backup(UserDir(userdir), tmp_path / "b2")
    before = (userdir / "mlflow.db").read_bytes()
    artefact = next(k for k in manifest.sha256 if k.startswith("mlartifacts/"))
    (target / artefact).write_bytes(b"tampered")
    with pytest.raises(BackupError, match="checksum mismatch"):
        restore(target, UserDir(userdir))
    assert (userdir / "mlflow.db").read_bytes() == before
    clean, _ = backup(UserDir(userdir), tmp_path / "b3")
    with pytest.raises(BackupError, match="holds no optuna"):
        restore(clean, UserDir(userdir), ["optuna"])


def test_backup_cli(cli: Callable[..., CliResult], userdir: Path, tmp_path: Path) -> None:
    done = cli("backup", "--userdir", userdir, "--out", tmp_path / "b")
    assert done.code == 0, done.err
    assert "mlflow: mlflow.db, mlartifacts" in " ".join(done.out.split())
    again = cli("backup", "--userdir", userdir, "--out", tmp_path / "b")
    assert again.code == 2 and "already exists" in again.err
    restored = cli("restore", tmp_path / "b", "--only", "registry", "--userdir", userdir)
    assert restored.code == 0 and "registry/strategies_registry.sqlite" in restored.out
    bad = cli("restore", tmp_path, "--userdir", userdir)
    assert bad.code == 2 and "not a Tradingbot backup" in bad.err


def test_optuna_journal_is_backed_up_without_its_locks(tmp_path: Path) -> None:
    import optuna

    from experiments.tuning.storage import open_storage

    userdir = tmp_path / "ud"
    study = optuna.create_study(study_name="s", storage=open_storage(None, UserDir(userdir)))
    study.optimize(lambda trial: trial.suggest_float("x", 0, 1), n_trials=3)
    (userdir / "optuna" / "s.lock").write_text("")  # a tuning lock left behind
    target, manifest = backup(UserDir(userdir), tmp_path / "b")
    assert manifest.components == {"optuna": ["optuna"]}
    assert "optuna/journal.log" in manifest.sha256
    assert not [name for name in manifest.sha256 if name.endswith(".lock")]
    other = tmp_path / "other"
    assert restore(target, UserDir(other), ["optuna"]) == ["optuna"]
    restored = optuna.load_study(study_name="s", storage=open_storage(None, UserDir(other)))
    assert [t.params for t in restored.trials] == [t.params for t in study.trials]


def test_a_restore_elsewhere_serves_its_champion_after_the_original_is_gone(
    tmp_path: Path,
) -> None:
    """The runbook's drill: back up, move the original away, restore into another
    directory, load the champion from there; nothing is written into the original."""
    from ml.registry import promote
    from ml.serving import ModelAdapter
    from ml.tracking import configure

    source = _trained_userdir(tmp_path / "original")
    promote(
        configure(default_tracking_uri(source), UserDir(source)),
        "bk",
        1,
        "drill",
        user="pytest",
        force=True,
    )
    (source / "strategies").mkdir(exist_ok=True)
    (source / "strategies" / "RegimeStrategy.json").write_text('{"strategy_name": "x"}')
    target, manifest = backup(UserDir(source), tmp_path / "b")
    assert {"data", "strategies"} <= set(manifest.components)
    moved = tmp_path / "moved-away"
    source.parent.rename(moved)
    before = sorted(str(p) for p in moved.rglob("*"))

    restored = tmp_path / "elsewhere" / "ud"
    restore(target, UserDir(restored))
    assert (restored / "strategies" / "RegimeStrategy.json").exists()
    assert (restored / "data" / "binance" / "BTC_USDT-1h.feather").exists()
    adapter = ModelAdapter("models:/bk@champion", tracking_uri=default_tracking_uri(restored))
    candles = pd.read_feather(restored / "data" / "binance" / "BTC_USDT-1h.feather")
    frame = candles.assign(date=candles["date"].astype("datetime64[ms, UTC]"))
    out = adapter.populate(frame, "BTC/USDT", live=False)
    assert adapter.bundle is not None, adapter._failure
    assert out["&-p_up"].notna().any()
    with sqlite3.connect(restored / "mlflow.db") as db:
        leftovers = db.execute(
            "SELECT count(*) FROM runs WHERE artifact_uri LIKE ?", (f"%{source}%",)
        ).fetchone()[0]
    assert leftovers == 0
    client = configure(default_tracking_uri(restored), UserDir(restored))
    experiment = client.get_experiment_by_name("bk")
    assert experiment.artifact_location.startswith((restored / "mlartifacts").resolve().as_uri())
    assert sorted(str(p) for p in moved.rglob("*")) == before  # the original was not touched


def test_the_journal_and_the_bots_trade_databases_are_backed_up(tmp_path: Path) -> None:
    userdir = tmp_path / "ud"
    userdir.mkdir()
    for name in ("journal.sqlite", "tradesv3.dryrun.sqlite", "tradesv3.live.sqlite"):
        with sqlite3.connect(userdir / name) as db:
            db.execute("CREATE TABLE t (v TEXT)")
            db.execute("INSERT INTO t VALUES (?)", (name,))
    target, manifest = backup(UserDir(userdir), tmp_path / "b")
    assert manifest.components["journal"] == ["journal.sqlite"]
    assert manifest.components["trades"] == ["tradesv3.dryrun.sqlite", "tradesv3.live.sqlite"]
    (userdir / "journal.sqlite").unlink()
    restore(target, UserDir(userdir), only=["journal"])
    with sqlite3.connect(userdir / "journal.sqlite") as db:
        assert db.execute("SELECT v FROM t").fetchone() == ("journal.sqlite",)
