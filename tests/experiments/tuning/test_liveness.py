"""Heartbeats and the reclaiming of trials whose worker died, on a real journal storage."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import TrialState

from experiments.tuning.liveness import (
    HEARTBEAT,
    INTERRUPTED,
    Heartbeat,
    is_stale,
    reclaim_stale,
    running_elsewhere,
)


def journal(path: Path) -> JournalStorage:
    return JournalStorage(JournalFileBackend(str(path)))


def running_trial(study: optuna.Study, **attrs: object) -> int:
    """A RUNNING trial with one suggested parameter and the given user attrs."""
    trial = study.ask()
    trial.suggest_float("x", 0.0, 1.0)
    for key, value in attrs.items():
        trial.set_user_attr(key, value)
    return trial.number


def dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_heartbeat_stamps_at_start_and_on_every_interval_and_stops_at_exit(
    tmp_path: Path,
) -> None:
    storage = journal(tmp_path / "j.log")
    study = optuna.create_study(storage=storage)
    number = running_trial(study)
    trial_id = study.trials[number]._trial_id
    before = time.time()
    with Heartbeat(storage, trial_id, interval=0.05):
        first = storage.get_trial(trial_id).user_attrs[HEARTBEAT]
        assert first >= before
        time.sleep(0.3)
        later = storage.get_trial(trial_id).user_attrs[HEARTBEAT]
        assert later > first
    stopped = storage.get_trial(trial_id).user_attrs[HEARTBEAT]
    time.sleep(0.2)
    assert storage.get_trial(trial_id).user_attrs[HEARTBEAT] == stopped


def test_staleness_by_pid_on_this_host_and_by_heartbeat_elsewhere(tmp_path: Path) -> None:
    study = optuna.create_study(storage=journal(tmp_path / "j.log"))
    now = time.time()
    here = socket.gethostname()
    cases = {
        "dead pid here": ({"host": here, "pid": dead_pid(), HEARTBEAT: now}, True),
        "live pid here, old heartbeat": (
            {"host": here, "pid": os.getppid(), HEARTBEAT: 0.0},
            False,
        ),
        "elsewhere, recent heartbeat": ({"host": "other", "pid": 1, HEARTBEAT: now - 60}, False),
        "elsewhere, silent 10 min": ({"host": "other", "pid": 1, HEARTBEAT: now - 600}, True),
        "elsewhere, no heartbeat, just started": ({"host": "other", "pid": 1}, False),
    }
    for name, (attrs, stale) in cases.items():
        number = running_trial(study, **attrs)
        trial = study.trials[number]
        assert is_stale(trial, now) is stale, name
    assert is_stale(trial, now + 3600)  # the one without heartbeat, an hour later: its start


def test_stale_trials_are_failed_requeued_once_and_live_ones_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "j.log"
    study = optuna.create_study(study_name="s", storage=journal(path))
    ghost = running_trial(study, host="crashed-box", pid=4711, heartbeat=time.time() - 900)
    alive = running_trial(study, host="busy-box", pid=4711, heartbeat=time.time())

    reclaimed = reclaim_stale(study, study._storage)
    assert [t.number for t in reclaimed] == [ghost]
    trials = study.trials
    assert trials[ghost].state == TrialState.FAIL and trials[ghost].user_attrs[INTERRUPTED]
    assert trials[alive].state == TrialState.RUNNING
    queued = [t for t in trials if t.state == TrialState.WAITING]
    assert len(queued) == 1 and queued[0].user_attrs["retry_of"] == ghost
    assert queued[0].system_attrs["fixed_params"] == trials[ghost].params
    assert [t.number for t in running_elsewhere(study)] == [alive]

    # A second worker (another storage handle on the same file) finds nothing left to do.
    other = optuna.load_study(study_name="s", storage=journal(path))
    assert reclaim_stale(other, other._storage) == []
    assert sum(t.state == TrialState.WAITING for t in other.trials) == 1


@pytest.mark.parametrize("state", [TrialState.COMPLETE, TrialState.PRUNED])
def test_a_trial_that_ends_meanwhile_is_not_reclaimed(tmp_path: Path, state: TrialState) -> None:
    """Between reading the trials and failing one, its worker may finish it after all."""
    study = optuna.create_study(storage=journal(tmp_path / "j.log"))
    number = running_trial(study, host="slow-box", pid=1, heartbeat=time.time() - 900)
    stale_view = study.trials  # read before the worker finishes
    if state == TrialState.COMPLETE:
        study.tell(number, 1.0)
    else:
        study.tell(number, state=state)

    class Frozen(optuna.Study):
        def get_trials(self, deepcopy: bool = True, states: object = None) -> list:  # type: ignore[override]
            return stale_view

    frozen = Frozen(study_name=study.study_name, storage=study._storage)
    assert reclaim_stale(frozen, study._storage) == []
    assert study.trials[number].state == state
    assert not any(t.state == TrialState.WAITING for t in study.trials)


def test_a_trial_killed_while_suggesting_is_retried_with_what_it_had(tmp_path: Path) -> None:
    """The CI case: SIGKILL after the first of two parameters was stored."""
    study = optuna.create_study(
        storage=journal(tmp_path / "j.log"), sampler=optuna.samplers.RandomSampler(seed=1)
    )
    number = running_trial(study, host="crashed-box", pid=4711, heartbeat=time.time() - 900)
    had = study.trials[number].params
    assert list(had) == ["x"]

    assert [t.number for t in reclaim_stale(study, study._storage)] == [number]
    retry = study.ask()  # the queued retry comes first
    assert retry.user_attrs["retry_of"] == number
    assert retry.suggest_float("x", 0.0, 1.0) == had["x"]
    y = retry.suggest_float("y", 0.0, 1.0)  # not stored before the kill: sampled afresh
    study.tell(retry, 0.0)
    assert study.trials[retry.number].params == {**had, "y": y}


def test_a_trial_killed_before_any_parameter_is_not_queued_again(tmp_path: Path) -> None:
    study = optuna.create_study(storage=journal(tmp_path / "j.log"))
    trial = study.ask()
    trial.set_user_attr("host", "crashed-box")
    trial.set_user_attr("heartbeat", time.time() - 900)

    assert [t.number for t in reclaim_stale(study, study._storage)] == [trial.number]
    assert not any(t.state == TrialState.WAITING for t in study.trials)
