"""The fault script (bench/faults.py) end to end: every kill point, then the same
command again, leaves no incomplete registration, duplicate, RUNNING run or stray
file, and two commands started at once on a new user dir both succeed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_every_kill_point_leaves_nothing_behind(tmp_path: Path) -> None:
    process = subprocess.Popen(
        [sys.executable, str(ROOT / "bench" / "faults.py"), "--keep", str(tmp_path / "work")],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        out, _ = process.communicate(timeout=1800)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    summary = out.strip().splitlines()[-1]
    assert process.returncode == 0, out[-4000:]
    assert "all zero" in summary and "10 kills in 11 cases" in summary, out[-4000:]
