"""Training: one pipeline from a spec to a registered model (``tradingbot train``).

A spec becomes a :class:`ml.fold_training.TrainingJob` (one market, or several pooled),
its walk-forward folds run as picklable :class:`ml.fold_training.FoldJob` values
(:mod:`.compute`, which needs no MLflow), and one MLflow run records them
(:mod:`.pipeline`); a whitelist trains one such job per pair (:mod:`.whitelist`).
Single, pooled, whitelist, retrain and the scorecard all come here.

The names below are imported when first used, so that a process which only computes
(a local pool's worker, forked from a server that imported :mod:`.compute`) never
imports MLflow.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from experiments.training.pipeline import Progress, TrainResult, progress_steps, train
    from experiments.training.whitelist import WhitelistResult, train_whitelist

_WHERE = {
    "Progress": "experiments.training.pipeline",
    "TrainResult": "experiments.training.pipeline",
    "progress_steps": "experiments.training.pipeline",
    "train": "experiments.training.pipeline",
    "WhitelistResult": "experiments.training.whitelist",
    "train_whitelist": "experiments.training.whitelist",
}

__all__ = [
    "Progress",
    "TrainResult",
    "WhitelistResult",
    "progress_steps",
    "train",
    "train_whitelist",
]


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(_WHERE[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
