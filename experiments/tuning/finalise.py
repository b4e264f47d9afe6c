"""The end of a study: the best trial refitted, scored on the test window, registered, its strategy values written."""

from __future__ import annotations

import dataclasses
import functools
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import mlflow
import optuna
from mlflow.entities import RunStatus
from mlflow.tracking import MlflowClient
from optuna.trial import FrozenTrial, TrialState

from common.atomic import scratch_dir
from experiments.tuning.objective import (
    TuningData,
    score_test,
    strategy_defaults,
)
from experiments.tuning.request import TuneError, TuneRequest, TuneResult
from experiments.tuning.space import strategy_values
from features.candles import data_window
from ml import tracking
from ml.evaluation import Gate, promotion_gate
from ml.fold_training import fit_final
from ml.registry import log_bundle, register_finished_run, version_of_run
from ml.run_log import held
from strategies.params import StrategyParams, with_values

log = logging.getLogger(__name__)


def pick_best(study: optuna.Study) -> FrozenTrial | None:
    """The best trial; with several objectives, the Pareto-optimal trial best on the first."""
    complete = [t for t in study.get_trials(deepcopy=False) if t.state == TrialState.COMPLETE]
    if not complete:
        return None
    if len(study.directions) == 1:
        return study.best_trial
    first_max = study.directions[0] == optuna.study.StudyDirection.MAXIMIZE
    front = study.best_trials
    return max(front, key=lambda t: t.values[0] if first_max else -t.values[0])


def _finalise(
    request: TuneRequest,
    data: TuningData,
    study: optuna.Study,
    client: MlflowClient,
    parent_run_id: str,
    result: TuneResult,
) -> TuneResult:
    """Refit the best trial on the tuning window, score it once on the test window,
    register it as challenger and write the strategy parameter file. The caller holds
    the study's finalise claim."""
    best = pick_best(study)
    if best is None:
        client.set_tag(parent_run_id, "tune.state", "no complete trial")
        client.set_terminated(parent_run_id, status=RunStatus.to_string(RunStatus.FINISHED))
        raise TuneError(
            f"study {request.study_name!r} has no complete trial to refit",
            hint="all trials were pruned or failed: see their MLflow runs; widen the space or add trials",
        )
    done = _finished_before(request, client, parent_run_id, result, best)
    if done is not None:
        return done
    spec = request.spec.with_params(best.params)
    strategy = _tuned_strategy(request, best)
    validation = {k: float(v) for k, v in best.user_attrs.get("metrics", {}).items()}
    model_uri, test = _refit(request, data, study, parent_run_id, best, strategy, validation)
    # Registered once the run has FINISHED, keyed by run and trial: a call killed from
    # here on is completed by the next one without a second version or a refit.
    window = data_window(data.tuning_candles, spec.data.pair, spec.data.timeframe)
    gate = _gate(request, client.get_run(parent_run_id).data.metrics)
    version = register_finished_run(
        client,
        spec.name,
        parent_run_id,
        model_uri,
        tags={
            "spec_hash": spec.hash,
            "data_sha256": window.sha256,
            "optuna.study": request.study_name,
        },
        key={"optuna.trial": str(best.number)},
        gate=gate,
    )
    return dataclasses.replace(
        result,
        best_trial=best.number,
        best_params=dict(best.params),
        validation=validation,
        test=test,
        model_name=spec.name,
        version=version,
        gate=gate,
        params_file=_applied(request, strategy, gate),
    )


def _finished_before(
    request: TuneRequest,
    client: MlflowClient,
    parent_run_id: str,
    result: TuneResult,
    best: FrozenTrial,
) -> TuneResult | None:
    """An earlier call finalised this best trial (perhaps killed before it wrote the
    parameter file or finished registering): nothing to refit, the rest is redone."""
    done = client.get_run(parent_run_id).data
    name = request.spec.name
    if done.tags.get("best_trial") != str(best.number):
        return None
    registered = version_of_run(client, name, parent_run_id, {"optuna.trial": str(best.number)})
    if registered is None:
        return None
    client.set_terminated(parent_run_id, status=RunStatus.to_string(RunStatus.FINISHED))
    gate = _gate(request, done.metrics)
    version = register_finished_run(
        client,
        name,
        parent_run_id,
        str(registered.source),
        tags={},
        key={"optuna.trial": str(best.number)},
        gate=gate,
    )
    prefix = len("test.")
    return dataclasses.replace(
        result,
        best_trial=best.number,
        best_params=dict(best.params),
        validation={k: float(v) for k, v in best.user_attrs.get("metrics", {}).items()},
        test={k[prefix:]: v for k, v in done.metrics.items() if k.startswith("test.")},
        model_name=name,
        version=version,
        gate=gate,
        params_file=_applied(request, _tuned_strategy(request, best), gate),
    )


def _refit(
    request: TuneRequest,
    data: TuningData,
    study: optuna.Study,
    parent_run_id: str,
    best: FrozenTrial,
    strategy: StrategyParams | None,
    validation: dict[str, float],
) -> tuple[str, dict[str, float]]:
    """The best trial refitted on the tuning window and scored once on the test window,
    recorded in the study's parent run. Returns (logged model URI, test metrics)."""
    spec = request.spec.with_params(best.params)
    with (
        scratch_dir("tune") as tmp,
        tracking.tracked_run(run_id=parent_run_id),
    ):
        workdir = Path(tmp)
        # Tags, not params: MLflow params are immutable, and a continued study can find
        # a better trial than the one an earlier call finalised (same keys: the spec
        # hash pins the space).
        mlflow.set_tags(
            {
                "best_trial": str(best.number),
                "tune.state": "finished",
                **{f"best.{k}": str(v) for k, v in best.params.items()},
            }
        )
        with held() as figures:  # sent after the model: see ml.run_log.held
            figures.metrics(validation, prefix="validation.")
            _log_study(study, workdir)
            bundle = fit_final(data.job(spec))
            test = score_test(data, bundle, spec, strategy)
            figures.metrics(test, prefix="test.")
            if strategy is not None:
                mlflow.log_dict(strategy.freqtrade_file(), f"strategy/{strategy.strategy}.json")
            logged = log_bundle(bundle, workdir, data.tuning_candles)
            figures.model_id = logged.model_id
    return logged.model_uri, test


def _tuned_strategy(request: TuneRequest, best: FrozenTrial) -> StrategyParams | None:
    """The best trial's strategy values over the strategy's defaults (None: no strategy space)."""
    if not request.tune.uses_strategy:
        return None
    return with_values(
        strategy_defaults(request.spec, request.context.layout), strategy_values(best.params)
    )


def _gate(request: TuneRequest, metrics: dict[str, float]) -> Gate:
    """The promotion gate's verdict on the refitted trial's test window; with
    ``--force REASON`` a refusal passes, saying so."""
    gate = promotion_gate(metrics)
    if gate.passed or request.force_reason is None:
        return gate
    return Gate(True, f"{gate.reason} ({request.force_reason})", forced=True)


def _applied(request: TuneRequest, strategy: StrategyParams | None, gate: Gate) -> Path | None:
    """Freqtrade's parameter file of ``strategy``, which every later backtest and bot of
    the strategy loads: written only when the tuned trial passed the promotion gate
    (the values stay in the run's ``strategy/`` artefacts either way). Written on every
    finalising call, so one killed after registering still gets it."""
    if strategy is None or not gate.passed:
        return None
    return strategy.write(request.context.layout.strategies)


def _objective_history(study: optuna.Study, index: int, name: str) -> Any:
    from optuna.visualization import matplotlib as optuna_plots

    return optuna_plots.plot_optimization_history(
        study, target=lambda trial: trial.values[index], target_name=name
    )


def _log_study(study: optuna.Study, workdir: Path) -> None:
    """The trials table and Optuna's history / importance (or Pareto front) plots."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from optuna.visualization import matplotlib as optuna_plots

    table = study.trials_dataframe(
        attrs=("number", "state", "values", "params", "duration", "user_attrs")
    )
    table.to_csv(workdir / "trials.csv", index=False)
    mlflow.log_artifact(str(workdir / "trials.csv"), artifact_path="optuna")
    plots: dict[str, Callable[[], Any]] = {}
    if len(study.directions) == 1:
        plots["history.png"] = lambda: optuna_plots.plot_optimization_history(study)
        plots["importance.png"] = lambda: optuna_plots.plot_param_importances(study)
        plots["intermediate.png"] = lambda: optuna_plots.plot_intermediate_values(study)
    else:
        plots["pareto_front.png"] = lambda: optuna_plots.plot_pareto_front(study)
        for index, name in enumerate(study.metric_names or []):
            plots[f"history_{name}.png"] = functools.partial(_objective_history, study, index, name)
    for filename, draw in plots.items():
        try:
            axes = draw()
        except (ValueError, RuntimeError) as exc:  # e.g. importance needs 2+ complete trials
            log.info("skipped Optuna plot %s: %s", filename, exc)
            continue
        figure = axes.figure if hasattr(axes, "figure") else plt.gcf()
        figure.set_size_inches(9, 5)
        figure.savefig(workdir / filename, dpi=100, bbox_inches="tight")
        plt.close(figure)
        mlflow.log_artifact(str(workdir / filename), artifact_path="optuna")
