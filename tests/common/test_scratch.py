"""Working folders: removed on exit, and those of killed processes by the next one."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from common.atomic import scratch_dir, scratch_root, sweep_scratch


def test_a_killed_commands_folder_is_removed_by_the_next_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", None)  # read TMPDIR again
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    orphan = scratch_root() / f"{dead.stdout.strip()}-train-abc"
    orphan.mkdir()
    (orphan / "bundle.joblib").write_bytes(b"x")
    mine = scratch_root() / f"{os.getpid()}-train-live"
    mine.mkdir()
    with scratch_dir("backtest") as folder:
        assert folder.is_dir() and folder.parent == tmp_path / f"tradingbot-{os.getuid()}"
        assert not orphan.exists()  # its process is gone
        assert mine.exists()  # a live process's folder is never touched
    assert not folder.exists()
    assert sweep_scratch() == []
