"""What a local worker process starts with: imported once by the process pool's fork
server (``ProcessPool(preload=tradingbot._app.TRAINING_WORKER)``, as ``tradingbot
train`` makes it), so that every worker forked from it has these ready instead of
building them in its first job (seconds a worker: ``bench/worker_start.py`` prints a
worker's first job beside the next ones, by what the fork server preloads).

- the training pipeline's modules, with MLflow, pandas, scikit-learn, SciPy, LightGBM,
  hmmlearn and numba (torch is left to the jobs that use it);
- MLflow's SQL stores (SQLAlchemy, Alembic and MLflow's table mappings, configured),
  which a worker needs to open the tracking store;
- the regime filter's compiled kernel, loaded from numba's cache;
- MLflow's map from installed packages to their modules, which it builds (about 1.2 s)
  the first time a process logs a model, to check the model's requirements against
  this environment;
- what MLflow imports or reads when a process first opens a store and starts a run:
  SQLAlchemy's SQLite dialect, the schema's latest revision (Alembic's migration
  scripts), GitPython (the run's source commit) and OpenTelemetry's metrics (about
  0.12 s of a worker's first job, measured).

It is imported only for those effects, by a fork server (the CLI's ``train`` and
``scorecard`` name it).
"""

from __future__ import annotations

import contextlib
import importlib

import lightgbm  # noqa: F401 (the forecaster imports it only when it fits)
import mlflow.store.db.utils
import mlflow.store.model_registry.sqlalchemy_store
import mlflow.store.tracking.sqlalchemy_store
import numpy as np
from mlflow.utils import requirements_utils
from sqlalchemy.orm import configure_mappers

import experiments.training.whitelist  # noqa: F401 (imported for its imports)
import ml.models.regime  # noqa: F401 (numba, hmmlearn)
from ml.filtering import ForwardFilter


def _load_filter_kernel() -> None:
    ForwardFilter(np.full((2, 2), 0.5), np.full(2, 0.5)).update(np.zeros((1, 2)))


def _first_store_and_run() -> None:
    # MLflow's dependencies: where one is missing, the first job imports what it needs
    for name in ("sqlalchemy.dialects.sqlite", "git", "opentelemetry.sdk.metrics"):
        with contextlib.suppress(ImportError):
            importlib.import_module(name)
    latest_revision = getattr(mlflow.store.db.utils, "_get_latest_schema_revision", None)
    if callable(latest_revision):  # a private helper of MLflow's, as below
        latest_revision()


def _map_installed_packages() -> None:
    # a private helper of MLflow's: where it is missing, the first model logged builds it
    build = getattr(requirements_utils, "_init_packages_to_modules_map", None)
    if callable(build):
        build()


configure_mappers()  # what the first query would do: link MLflow's table classes
_load_filter_kernel()
_first_store_and_run()
_map_installed_packages()
