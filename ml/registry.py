"""The MLflow model registry: bundles as pyfunc models, aliases, promotion, loading.

A bundle is logged as a pyfunc model whose ``predict`` takes a candle frame and
returns the bundle's prediction frame. ``pip_requirements`` are explicit (MLflow
would otherwise spend seconds inferring them) and the ``features`` and ``ml``
packages travel with the model as code, so it loads wherever its requirements are
installed. Registry stages are deprecated: only aliases (``challenger``,
``champion``) are used.
"""

from __future__ import annotations

import contextlib
import getpass
import importlib.metadata
import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import mlflow
import mlflow.pyfunc
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.pyfunc.model import PythonModel
from mlflow.tracking import MlflowClient

from features.errors import TradingbotError
from ml.bundle import ModelBundle

CHAMPION = "champion"
CHALLENGER = "challenger"
REQUIREMENTS = (
    "torch",
    "hmmlearn",
    "scikit-learn",
    "lightgbm",
    "pandas",
    "numpy",
    "pyarrow",
    "pydantic",
    "TA-Lib",
    "joblib",
    "mlflow",
)
PACKAGE_ROOT = Path(__file__).resolve().parents[1]


class RegistryError(TradingbotError):
    """A model, version or alias that the registry does not have."""


class BundleModel(PythonModel):
    """pyfunc wrapper: candles in, the bundle's prediction frame out."""

    def load_context(self, context: Any) -> None:
        self.bundle = ModelBundle.load(Path(context.artifacts["bundle"]))

    def predict(
        self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None
    ) -> pd.DataFrame:
        return self.bundle.predict(pd.DataFrame(model_input))


def pip_requirements() -> list[str]:
    pins = []
    for name in REQUIREMENTS:
        try:
            pins.append(f"{name}=={importlib.metadata.version(name)}")
        except importlib.metadata.PackageNotFoundError:
            pins.append(name)
    return pins


def log_bundle_model(bundle_path: Path) -> str:
    """Log the bundle file as the active run's pyfunc model; return its model URI."""
    pyfunc_logger = logging.getLogger("mlflow.pyfunc")
    level = pyfunc_logger.level
    pyfunc_logger.setLevel(logging.ERROR)  # the cloudpickle notice: our own class, our own file
    try:
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=BundleModel(),
            artifacts={"bundle": str(bundle_path)},
            pip_requirements=pip_requirements(),
            code_paths=[str(PACKAGE_ROOT / "features"), str(PACKAGE_ROOT / "ml")],
        )
    finally:
        pyfunc_logger.setLevel(level)
    return str(info.model_uri)


def register(
    client: MlflowClient, model_uri: str, name: str, run_id: str, tags: dict[str, str]
) -> int:
    """Register ``model_uri`` under ``name`` with alias ``challenger``; all or nothing."""
    version = mlflow.register_model(model_uri, name, tags=tags)
    try:
        client.set_registered_model_alias(name, CHALLENGER, version.version)
    except BaseException:
        client.delete_model_version(name, version.version)
        raise
    return int(version.version)


def register_bundle(
    client: MlflowClient,
    bundle: ModelBundle,
    workdir: Path,
    name: str,
    run_id: str,
    tags: dict[str, str],
) -> tuple[int, str]:
    """Save ``bundle``, log it as the active run's pyfunc model and register it under
    ``name`` with alias ``challenger``; return (version, bundle sha256).

    Registration is the last step and all or nothing: anything failing before it
    registers nothing, and a version whose run cannot record it is deleted again.
    """
    bundle_path = workdir / "bundle.joblib"
    sha = bundle.save(bundle_path)
    mlflow.set_tag("bundle_sha256", sha)
    model_uri = log_bundle_model(bundle_path)
    version = register(
        client, model_uri, name, run_id, tags={**tags, "bundle_sha256": sha, "run_id": run_id}
    )
    try:
        mlflow.set_tag("registered_version", str(version))
    except BaseException:
        client.delete_model_version(name, str(version))
        raise
    return version, sha


def promote(
    client: MlflowClient, name: str, version: int, reason: str, user: str | None = None
) -> dict[str, str]:
    """Move alias ``champion`` to ``version`` and record who, when, why and key metrics."""
    try:
        model_version = client.get_model_version(name, str(version))
    except MlflowException as exc:
        raise RegistryError(
            f"model {name!r} has no version {version}",
            hint="list versions in the MLflow UI (tradingbot ui) or train one with tradingbot train",
        ) from exc
    if not reason.strip():
        raise RegistryError("a promotion needs a reason (--reason TEXT)")
    previous = None
    with contextlib.suppress(MlflowException):  # no champion yet
        previous = client.get_model_version_by_alias(name, CHAMPION).version
    decision = {
        "promoted_by": user or getpass.getuser(),
        "promoted_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "promotion_reason": reason,
        "previous_champion": str(previous) if previous is not None else "none",
    }
    run_id = model_version.run_id
    if run_id:
        metrics = client.get_run(run_id).data.metrics
        for key in (
            "overall.sharpe",
            "overall.accuracy",
            "overall.max_drawdown",
            "overall.log_loss",
        ):
            if key in metrics:
                decision[f"metric.{key}"] = f"{metrics[key]:.6g}"
    client.set_registered_model_alias(name, CHAMPION, str(version))
    for key, value in decision.items():
        client.set_model_version_tag(name, str(version), key, value)
    if run_id:
        client.set_tag(run_id, "tradingbot.decision", f"promoted to {CHAMPION}: {reason}")
        client.set_tag(run_id, "tradingbot.promoted_by", decision["promoted_by"])
    return decision


def load_bundle(uri: str) -> ModelBundle:
    """Load the bundle behind a registry URI such as ``models:/NAME@champion``."""
    try:
        model = mlflow.pyfunc.load_model(uri)
    except MlflowException as exc:
        raise RegistryError(f"cannot load {uri}: {exc.message}") from exc
    wrapper = model.unwrap_python_model()
    if not isinstance(wrapper, BundleModel):
        raise RegistryError(f"{uri} is not a Tradingbot bundle model")
    return wrapper.bundle
