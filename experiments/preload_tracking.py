"""What a local worker that records MLflow runs itself starts with, beside
:mod:`experiments.preload` (a scorecard's market: it trains, backtests and records):

- MLflow's SQL stores (SQLAlchemy, Alembic and MLflow's table mappings, configured),
  which a worker needs to open the tracking store;
- MLflow's map from installed packages to their modules, which it builds (about 1.2 s)
  the first time a process logs a model, to check the model's requirements against
  this environment;
- what MLflow imports or reads when a process first opens a store and starts a run:
  SQLAlchemy's SQLite dialect, the schema's latest revision (Alembic's migration
  scripts), GitPython (the run's source commit) and OpenTelemetry's metrics (about
  0.12 s of a worker's first job, measured).

Imported only for these effects, by a fork server.
"""

from __future__ import annotations

import contextlib
import importlib

import mlflow.store.db.utils
import mlflow.store.model_registry.sqlalchemy_store
import mlflow.store.tracking.sqlalchemy_store  # noqa: F401 (imported for its imports)
from mlflow.utils import requirements_utils
from sqlalchemy.orm import configure_mappers

import experiments.training.pipeline  # noqa: F401 (the recording half of a training)


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
_first_store_and_run()
_map_installed_packages()
