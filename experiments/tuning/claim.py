"""One worker at a time finalises a study, on any storage.

Two ``tune`` commands on different machines can see a shared study reach its trials
at the same moment; each would refit the best trial and register it, and the
registry would get two versions of one trial. Before finalising, a command takes
the study's *claim*: a small Optuna study named ``<study>:finalising`` in the same
storage. Creating a study whose name exists fails in every storage (journal file,
SQLite, PostgreSQL) for all but one creator, so one command gets it. The claim's one
trial carries the holder's host, pid and heartbeat (:mod:`experiments.tuning.liveness`),
so a claim left by a worker that died is recognised and taken over. The claim study
is deleted when finalising ends, whether it succeeded or failed.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress

import optuna
from optuna.exceptions import DuplicatedStudyError
from optuna.storages import BaseStorage

from experiments.tuning.liveness import Heartbeat, describe_worker, is_stale

log = logging.getLogger(__name__)


def claim_name(study_name: str) -> str:
    return f"{study_name}:finalising"


@contextmanager
def finalise_claim(storage: BaseStorage, study_name: str) -> Iterator[str | None]:
    """Hold the claim to finalise ``study_name`` for the ``with`` block.

    Yields None when this process holds it, or a description of the live worker
    that does (then finalise nothing: that worker is doing it).
    """
    name = claim_name(study_name)
    for _ in range(2):  # a second try only after removing a dead worker's claim
        try:
            claim = optuna.create_study(study_name=name, storage=storage)
        except DuplicatedStudyError:
            holder = _live_holder(storage, name)
            if holder is not None:
                yield holder
                return
            log.info("claim %r was released or its worker died: trying again", name)
            _release(storage, name)
            continue
        trial = claim.ask()
        trial.set_user_attr("host", socket.gethostname())
        trial.set_user_attr("pid", os.getpid())
        try:
            with Heartbeat(storage, trial._trial_id):
                yield None
        finally:
            _release(storage, name)
        return
    yield f"another worker that took over {name!r} at the same moment"


def _live_holder(storage: BaseStorage, name: str) -> str | None:
    """Who holds the claim ``name``, or None when its holder is gone."""
    try:
        trials = optuna.load_study(study_name=name, storage=storage).trials
    except KeyError:  # released between our attempt and this read: try again
        return None
    if not trials:  # created a moment ago, its trial not yet written
        return (
            f"a worker that is just starting (if no tune of this study runs anywhere, "
            f"delete the study {name!r} from the storage)"
        )
    holder = trials[0]
    now = time.time()
    return None if is_stale(holder, now) else describe_worker(holder, now)


def _release(storage: BaseStorage, name: str) -> None:
    with suppress(KeyError):  # another worker removed the dead worker's claim first
        optuna.delete_study(study_name=name, storage=storage)
