"""Training: one pipeline from a spec to a registered model (``tradingbot train``).

A spec becomes a :class:`ml.fold_training.TrainingJob` (one market, or several pooled),
its walk-forward folds run as picklable :class:`ml.fold_training.FoldJob` values, and one
MLflow run records them (:mod:`.pipeline`); a whitelist trains one such job per pair
(:mod:`.whitelist`). Single, pooled, whitelist, retrain and the scorecard all come here.
"""

from experiments.training.pipeline import Progress, TrainResult, progress_steps, train
from experiments.training.whitelist import WhitelistResult, train_whitelist

__all__ = [
    "Progress",
    "TrainResult",
    "WhitelistResult",
    "progress_steps",
    "train",
    "train_whitelist",
]
