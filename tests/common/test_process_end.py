"""Ending a command's process without the interpreter's teardown loses nothing."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path

from tests.conftest import run_in_own_group, run_python

REPO_ROOT = Path(__file__).resolve().parents[2]


def _buffered(environment: Mapping[str, str]) -> dict[str, str]:
    return {key: value for key, value in environment.items() if key != "PYTHONUNBUFFERED"}


def test_it_ends_with_the_code_yet_loses_no_output_and_runs_what_the_ending_runs(
    tmp_path: Path,
) -> None:
    """What the process printed or logged last (no newline, a buffering log handler),
    its exit handlers, its clean-ups and its last worker thread all happen, an idle
    thread pool does not keep it waiting, and the exit code is the one given."""
    log, done, cleaned = tmp_path / "run.log", tmp_path / "done", tmp_path / "scratch"
    cleaned.mkdir()
    ending = (
        "import atexit, logging, logging.handlers, pathlib, shutil, sys, threading, time, weakref\n"
        "from common.process_end import exit_without_teardown\n"
        f"kept = logging.FileHandler({str(log)!r})\n"
        "logging.getLogger().addHandler(logging.handlers.MemoryHandler(100, target=kept))\n"
        "logging.getLogger('tradingbot').warning('the last log line')\n"
        "atexit.register(print, 'an exit handler ran')\n"
        "class Scratch: pass\n"
        "scratch = Scratch()\n"
        f"weakref.finalize(scratch, shutil.rmtree, {str(cleaned)!r})\n"
        "def late(): time.sleep(0.5); pathlib.Path(" + repr(str(done)) + ").write_text('x')\n"
        "threading.Thread(target=late).start()\n"
        # an idle pool's worker waits for work forever: MLflow's artefact uploads leave one
        "from concurrent.futures import ThreadPoolExecutor\n"
        "ThreadPoolExecutor(1).submit(print, 'a pooled task ran')\n"
        "sys.stdout.write('no newline after this')\n"
        "sys.stderr.write('nor this')\n"
        "exit_without_teardown(3)\n"
    )
    # buffered standard streams, as when the output goes to a pipe
    shown = run_python(ending, env=_buffered(os.environ))
    assert shown.returncode == 3, shown.stdout
    assert "no newline after this" in shown.stdout and "nor this" in shown.stdout
    assert "an exit handler ran" in shown.stdout and "a pooled task ran" in shown.stdout
    assert "the last log line" in log.read_text()
    assert done.exists(), "the thread that was not a daemon did not finish"
    assert not cleaned.exists(), "weakref.finalize's clean-up did not run"


def test_the_command_ends_with_its_exit_code_and_message(tmp_path: Path) -> None:
    """``tradingbot`` (its console entry point, which ends this way) still exits with the
    command's code and has written its message: a user error's 2 and its one line."""
    shown = run_in_own_group(
        [sys.executable, "-m", "tradingbot", "train", str(tmp_path / "missing.toml")],
        cwd=REPO_ROOT,
        env={**_buffered(os.environ), "PYTHONPATH": str(REPO_ROOT)},
        timeout=300,
    )
    assert shown.returncode == 2, shown.stdout
    assert "experiment spec not found" in shown.stdout
