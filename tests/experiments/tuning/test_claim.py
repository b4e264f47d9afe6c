"""The finalise claim: one worker at a time, and a dead worker's claim taken over."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from optuna.storages import BaseStorage, JournalStorage
from optuna.storages.journal import JournalFileBackend

from experiments.tuning.claim import claim_name, finalise_claim
from experiments.tuning.liveness import HEARTBEAT

ROOT = Path(__file__).resolve().parents[3]


def journal(path: Path) -> JournalStorage:
    return JournalStorage(JournalFileBackend(str(path)))


def names(storage: BaseStorage) -> set[str]:
    return {s.study_name for s in optuna.get_all_study_summaries(storage)}


def leave_claim(storage: BaseStorage, study: str, **attrs: object) -> None:
    """A claim as another worker (maybe dead by now) left it."""
    trial = optuna.create_study(study_name=claim_name(study), storage=storage).ask()
    for key, value in attrs.items():
        trial.set_user_attr(key, value)


CLAIM_IN_ANOTHER_PROCESS = """
import sys
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend
from experiments.tuning.claim import finalise_claim
with finalise_claim(JournalStorage(JournalFileBackend(sys.argv[1])), "s") as holder:
    print(holder)
"""


def claim_in_another_process(path: Path) -> str:
    done = subprocess.run(
        [sys.executable, "-c", CLAIM_IN_ANOTHER_PROCESS, str(path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return done.stdout.strip()


def test_one_holder_at_a_time_and_released_at_the_end(tmp_path: Path) -> None:
    path = tmp_path / "j.log"
    storage = journal(path)
    with finalise_claim(storage, "s") as holder:
        assert holder is None
        other = claim_in_another_process(path)
        assert other.startswith(f"{socket.gethostname()} (pid {os.getpid()}, heartbeat")
    assert claim_name("s") not in names(storage)
    assert claim_in_another_process(path) == "None"  # free again, and released by it too
    assert claim_name("s") not in names(storage)


def test_a_failed_finalisation_releases_the_claim(tmp_path: Path) -> None:
    storage = journal(tmp_path / "j.log")
    with pytest.raises(RuntimeError), finalise_claim(storage, "s"):
        raise RuntimeError("refit failed")
    assert claim_name("s") not in names(storage)


def test_a_live_claim_elsewhere_is_respected_and_a_dead_one_taken_over(tmp_path: Path) -> None:
    storage = journal(tmp_path / "j.log")
    leave_claim(storage, "s", host="busy-box", pid=4711, **{HEARTBEAT: time.time()})
    with finalise_claim(storage, "s") as holder:
        assert holder is not None and holder.startswith("busy-box (pid 4711")
    assert claim_name("s") in names(storage)  # not ours to release

    optuna.delete_study(study_name=claim_name("s"), storage=storage)
    leave_claim(storage, "s", host="crashed-box", pid=4711, **{HEARTBEAT: time.time() - 900})
    with finalise_claim(storage, "s") as holder:
        assert holder is None
    assert claim_name("s") not in names(storage)


def test_a_claim_of_a_dead_process_on_this_host_is_taken_over_at_once(tmp_path: Path) -> None:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    storage = journal(tmp_path / "j.log")
    leave_claim(storage, "s", host=socket.gethostname(), pid=process.pid)
    with finalise_claim(storage, "s") as holder:
        assert holder is None


def test_a_claim_without_its_trial_yet_counts_as_held(tmp_path: Path) -> None:
    storage = journal(tmp_path / "j.log")
    optuna.create_study(study_name=claim_name("s"), storage=storage)
    with finalise_claim(storage, "s") as holder:
        assert holder is not None and claim_name("s") in holder
