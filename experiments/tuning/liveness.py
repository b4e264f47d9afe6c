"""Is a RUNNING trial still being worked on? Heartbeats, and reclaiming trials of dead workers.

A worker stamps its running trial with the wall-clock time (user attr ``heartbeat``,
unix seconds) when it starts and every :data:`HEARTBEAT_INTERVAL_S` seconds after,
from a background thread, in whatever storage the study lives in (journal file,
SQLite, PostgreSQL: Optuna's own heartbeat exists only for RDB storages).

A RUNNING trial is *stale* when its process is known to be gone:

* on this host: its pid no longer exists (known at once);
* on another host: its last heartbeat is older than :data:`STALE_AFTER_S` (a machine
  that died or lost the network cannot say so itself).

A stale trial is marked FAIL with the user attr ``interrupted`` and its parameters
are queued again (user attr ``retry_of``), so the study still reaches exactly the
requested number of finished trials: nothing lost, nothing counted twice.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from types import TracebackType
from typing import Any

import optuna
from optuna.storages import BaseStorage
from optuna.trial import FrozenTrial, TrialState

from ml import tracking

log = logging.getLogger(__name__)

INTERRUPTED = "interrupted"  # user attr of a trial whose process died; its params are re-queued
HEARTBEAT = "heartbeat"  # user attr: unix seconds of the worker's last sign of life
HEARTBEAT_INTERVAL_S = 30.0
STALE_AFTER_S = 300.0  # ten missed heartbeats


class Heartbeat:
    """Context manager: stamps ``trial_id`` now and every ``interval`` seconds until exit."""

    def __init__(
        self, storage: BaseStorage, trial_id: int, interval: float = HEARTBEAT_INTERVAL_S
    ) -> None:
        self.storage = storage
        self.trial_id = trial_id
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="trial-heartbeat", daemon=True)

    def __enter__(self) -> Heartbeat:
        self._beat()
        self._thread.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join()

    def _beat(self) -> None:
        self.storage.set_trial_user_attr(self.trial_id, HEARTBEAT, time.time())

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self._beat()
            except Exception as exc:  # a storage hiccup must not kill the trial
                log.warning("heartbeat of trial id %d not written: %s", self.trial_id, exc)


def last_sign_of_life(trial: FrozenTrial) -> float | None:
    """Unix seconds of the trial's last heartbeat (its start for trials without one)."""
    beat = trial.user_attrs.get(HEARTBEAT)
    if isinstance(beat, int | float):
        return float(beat)
    if trial.datetime_start is not None:
        return trial.datetime_start.timestamp()
    return None


def is_stale(trial: FrozenTrial, now: float, stale_after: float = STALE_AFTER_S) -> bool:
    host, pid = trial.user_attrs.get("host"), trial.user_attrs.get("pid")
    if host == socket.gethostname() and isinstance(pid, int):
        return pid == os.getpid() or not tracking.process_alive(pid)
    seen = last_sign_of_life(trial)
    return seen is not None and now - seen > stale_after


def describe_worker(trial: FrozenTrial, now: float) -> str:
    """'host-b (pid 4711, heartbeat 40 s ago)': who works on ``trial``, for messages."""
    seen = last_sign_of_life(trial)
    ago = f"heartbeat {now - seen:.0f} s ago" if seen is not None else "no heartbeat"
    where = trial.user_attrs.get("host", "an unknown host")
    return f"{where} (pid {trial.user_attrs.get('pid', '?')}, {ago})"


def describe_running(trial: FrozenTrial, now: float) -> str:
    """'trial 12 on host-b (pid 4711, heartbeat 40 s ago)', for messages."""
    return f"trial {trial.number} on {describe_worker(trial, now)}"


def reclaim_stale(
    study: optuna.Study, storage: BaseStorage, stale_after: float = STALE_AFTER_S
) -> list[FrozenTrial]:
    """Fail the stale RUNNING trials of ``study`` and queue their parameters again."""
    now = time.time()
    stale = [
        t
        for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
        if t.state == TrialState.RUNNING and is_stale(t, now, stale_after)
    ]
    if not stale:  # the usual case, before every trial: one read of the running trials
        return []
    retried = {t.user_attrs.get("retry_of") for t in study.get_trials(deepcopy=False)}
    reclaimed = []
    for trial in stale:
        try:
            # Optuna has no public way to annotate another process's trial: the storage does.
            storage.set_trial_user_attr(trial._trial_id, INTERRUPTED, True)
            study.tell(trial.number, state=TrialState.FAIL)
        except (ValueError, RuntimeError, optuna.exceptions.UpdateFinishedTrialError) as exc:
            log.info("trial %d ended meanwhile, not reclaimed: %s", trial.number, exc)
            continue
        if trial.number not in retried:  # another worker may have queued it already
            queue_again(study, trial.number, trial.params)
        reclaimed.append(trial)
    return reclaimed


def queue_again(study: optuna.Study, number: int, params: dict[str, Any]) -> None:
    """Queue an interrupted trial's parameters as a new trial marked ``retry_of``.

    A trial killed while its parameters were being suggested has only some of them: the
    retry fixes those and samples the rest.
    """
    if params:
        study.enqueue_trial(params, user_attrs={"retry_of": number})


def running_elsewhere(study: optuna.Study) -> list[FrozenTrial]:
    """RUNNING trials of live workers other than this process."""
    now = time.time()
    return [
        t
        for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
        if not is_stale(t, now)
    ]


def interrupted(trial: FrozenTrial) -> bool:
    return trial.state == TrialState.FAIL and bool(trial.user_attrs.get(INTERRUPTED))
