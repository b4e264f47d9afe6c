"""The tuning request, its result and trial counts."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from common.context import RunContext
from common.errors import SpecError, TradingbotError
from experiments.spec import ExperimentSpec
from experiments.tuning.objective import (
    declared_space,
)
from experiments.tuning.space import TuneConfig
from ml.evaluation import Gate

MAX_CONSECUTIVE_FAILURES = 3


class TuneError(TradingbotError):
    """The study cannot run: bad storage, a study made from another spec, failing trials."""


@dataclass(frozen=True)
class TuneRequest:
    spec: ExperimentSpec
    context: RunContext  # the user dir (storage, strategies), the tracking store
    trials: int
    jobs: int = 1
    study: str | None = None
    storage: str | None = None
    timeout: float | None = None  # seconds for this invocation; finished trials are kept
    spec_text: str | None = None
    # register the result as @challenger and write its parameter file past the gate
    force_reason: str | None = None

    @functools.cached_property
    def tune(self) -> TuneConfig:
        """The ``[tune]`` section, declared strategy parameters resolved (once: that reads
        the user dir's strategies)."""
        if self.spec.tune is None:
            raise SpecError(
                f"spec {self.spec.name!r} has no [tune] section",
                hint="add [tune] with a [tune.space] table (see docs/TUNING.md)",
            )
        if self.spec.tune.strategy_parameters != "declared":
            return self.spec.tune
        return self.spec.tune.with_declared(declared_space(self.spec, self.context.layout))

    @property
    def study_name(self) -> str:
        return self.study or self.spec.name


@dataclass(frozen=True)
class TuneResult:
    study: str
    storage: str
    trials: int
    complete: int
    pruned: int
    failed: int
    fits: int
    finished: bool  # reached the requested number of trials
    best_trial: int | None = None
    best_params: dict[str, Any] = field(default_factory=dict)
    validation: dict[str, float] = field(default_factory=dict)
    test: dict[str, float] = field(default_factory=dict)
    model_name: str | None = None
    version: int | None = None
    params_file: Path | None = None
    gate: Gate | None = None  # the promotion gate's verdict on the test window
    parent_run_id: str | None = None
    running_elsewhere: list[str] = field(default_factory=list)  # unfinished: who still runs
    finalising_elsewhere: str | None = None  # finished, but another worker refits the best


class Counts(NamedTuple):
    complete: int
    pruned: int
    failed: int
    running: int

    @property
    def finished(self) -> int:
        return self.complete + self.pruned + self.failed


# (trial counts, best value so far, what runs now: "#3 fold 2/4, #4 fold 1/4")
Progress = Callable[[Counts, float | None, str], None]
