"""What a local worker process starts with: imported once by the process pool's fork
server (``ProcessPool(preload=tradingbot._app.TRAINING_WORKER)``, as ``tradingbot
train`` makes it), so that every worker forked from it has these ready instead of
building them in its first job (seconds a worker: ``bench/worker_start.py`` prints a
worker's first job beside the next ones, by what the fork server preloads).

- what a training computes with (:mod:`experiments.training.compute`), with pandas,
  scikit-learn, SciPy, LightGBM, hmmlearn and numba (torch is left to the jobs that use
  it); not MLflow: on this machine the calling process records what the workers compute
  (:func:`experiments.training.whitelist.train_whitelist`), and without MLflow the server
  is ready in about half the time (docs/BACKTESTING.md, session 19);
- the regime filter's compiled kernel, loaded from numba's cache.

Workers that record runs themselves (a scorecard's markets) also start with
:mod:`experiments.preload_tracking`. Imported only for these effects, by a fork server.
"""

from __future__ import annotations

import lightgbm  # noqa: F401 (the forecaster imports it only when it fits)
import numpy as np

import experiments.training.compute  # noqa: F401 (imported for its imports)
import ml.models.regime  # noqa: F401 (numba, hmmlearn)
from ml.filtering import ForwardFilter


def _load_filter_kernel() -> None:
    ForwardFilter(np.full((2, 2), 0.5), np.full(2, 0.5)).update(np.zeros((1, 2)))


_load_filter_kernel()
