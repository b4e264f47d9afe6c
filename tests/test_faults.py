"""The fault script (bench/faults.py) end to end: every kill point, then the same
command again, leaves no incomplete registration, duplicate, RUNNING run or stray
file, and two commands started at once on a new user dir both succeed."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from tests.conftest import run_in_own_group

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_every_kill_point_leaves_nothing_behind(tmp_path: Path) -> None:
    done = run_in_own_group(
        [sys.executable, str(ROOT / "bench" / "faults.py"), "--keep", str(tmp_path / "work")],
        cwd=ROOT,
        timeout=1800,
    )
    out = done.stdout
    summary = out.strip().splitlines()[-1]
    assert done.returncode == 0, out[-4000:]
    assert "all zero" in summary and "12 kills in 13 cases" in summary, out[-4000:]
