"""`tradingbot tune`: the study, its storage, resuming, workers, MLflow, the final refit."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pytest
from mlflow.tracking import MlflowClient

from common.layout import UserDir
from experiments.spec import load_experiment
from experiments.tuning.claim import claim_name
from experiments.tuning.liveness import INTERRUPTED
from experiments.tuning.objective import TuningData, run_trial, strategy_defaults
from experiments.tuning.storage import counts, open_storage
from features.data import import_candles
from features.data.synthetic import generate
from ml.model_source import load_bundle
from ml.tracking import configure, default_tracking_uri, use_uri
from strategies.params import with_values
from tests.conftest import CliResult, local_context

ROOT = Path(__file__).resolve().parents[3]
SPEC = """
name = "{name}"
seed = 7

[data]
pair = "BTC/USDT"
timeframe = "1h"
exchange = "binance"
{timerange}

[regime]
n_states = 3
n_restarts = 1
n_iter = 30

[model]
kind = "lightgbm"
params = {{ n_estimators = 40, num_leaves = 7, min_child_samples = 20 }}

[walk_forward]
folds = 3
test_size = {test_size}

[tune]
objective = {objective}
startup_trials = 2
{tune_extra}

[tune.space]
"model.params.num_leaves" = {{ type = "int", low = 3, high = 31 }}
"model.params.learning_rate" = {{ type = "float", low = 0.01, high = 0.3, log = true }}
"regime.n_states" = {{ type = "int", low = 2, high = 4 }}
"strategy.entry_threshold" = {{ type = "float", low = 0.50, high = 0.65, step = 0.01 }}
"strategy.stoploss" = {{ type = "float", low = -0.15, high = -0.02, step = 0.01 }}
"strategy.roi.0" = {{ type = "float", low = 0.02, high = 0.20, step = 0.01 }}
{space_extra}
"""


def write_spec(
    path: Path,
    name: str = "tiny_tune",
    *,
    objective: str = '"profit_total"',  # Sharpe is annualised: these windows are too short
    tune_extra: str = "",
    space_extra: str = "",
    timerange: str = "",
    test_size: int = 400,
) -> Path:
    path.write_text(
        SPEC.format(
            name=name,
            objective=objective,
            tune_extra=tune_extra,
            space_extra=space_extra,
            timerange=f'timerange = "{timerange}"' if timerange else "",
            test_size=test_size,
        )
    )
    return path


def study_of(userdir: Path, name: str) -> optuna.Study:
    return optuna.load_study(study_name=name, storage=open_storage(None, UserDir(userdir)))


def child_runs(client: MlflowClient, experiment: str, parent: str) -> list:  # type: ignore[type-arg]
    return client.search_runs(
        [client.get_experiment_by_name(experiment).experiment_id],
        filter_string=f"tags.mlflow.parentRunId = '{parent}'",
        max_results=1000,
    )


@pytest.fixture(scope="module")
def userdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("tune")
    candles, _ = generate(3000, seed=4)
    source = root / "synthetic.feather"
    candles.to_feather(source)
    import_candles(
        source, pair="BTC/USDT", timeframe="1h", exchange="binance", layout=UserDir(root / "ud")
    )
    return root / "ud"


def test_tune_records_every_trial_refits_the_best_and_writes_the_parameter_file(
    userdir: Path, cli: Callable[..., CliResult]
) -> None:
    spec = write_spec(userdir.parent / "tune.toml")
    result = cli("tune", spec, "--trials", "6", "--userdir", userdir)
    assert result.code == 0, result.err
    assert "registered models:/tiny_tune/" in result.out
    # the gate's verdict on the test window decides the alias and the parameter file
    client = configure(default_tracking_uri(userdir), UserDir(userdir))
    (registered,) = client.search_model_versions("name = 'tiny_tune'")
    verdict = registered.tags["tradingbot.gate"]
    params_file = userdir / "strategies" / "RegimeStrategy.json"
    if verdict.startswith("refused: "):
        said = " ".join(result.out.split())
        assert "WITHOUT alias @challenger, and no parameter file written" in said
        assert not params_file.exists() and not registered.aliases
    else:
        assert verdict.startswith("passed: ") and params_file.exists()
    # a toy market: applied on purpose, which the version records
    result = cli("tune", spec, "--trials", "6", "--force", "toy market", "--userdir", userdir)
    assert result.code == 0, result.err
    assert params_file.exists()
    forced = client.get_model_version("tiny_tune", registered.version).tags["tradingbot.gate"]
    assert forced == verdict or (forced.startswith("forced past: ") and "(toy market)" in forced)

    study = study_of(userdir, "tiny_tune")
    assert counts(study).finished == 6 and len(study.trials) == 6
    states = {t.state for t in study.trials}
    assert states <= {optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED}
    for trial in study.trials:  # per-fold intermediate values, one fit per fold run
        assert len(trial.intermediate_values) == trial.user_attrs["fits"] >= 1
        assert trial.user_attrs["folds_done"] == trial.user_attrs["fits"]  # shown while running
    assert "tuning study tiny_tune: 6 trials" in result.err

    client = configure(default_tracking_uri(userdir), UserDir(userdir))
    parent_id = study.user_attrs["mlflow_parent_run_id"]
    parent = client.get_run(parent_id)
    assert parent.info.status == "FINISHED"
    assert parent.data.tags["best_trial"] == str(study.best_trial.number)
    metrics = set(parent.data.metrics)
    assert {"test.profit_total", "validation.profit_total", "test.log_loss"} <= metrics
    assert parent.data.metrics["validation.profit_total"] == pytest.approx(study.best_value)
    assert "test.sharpe" not in metrics  # 25 days: too short to annualise, not recorded
    artefacts = {a.path for a in client.list_artifacts(parent_id, "optuna")}
    assert {"optuna/trials.csv", "optuna/history.png", "optuna/importance.png"} <= artefacts

    runs = child_runs(client, "tiny_tune", parent_id)
    assert sorted(int(r.data.tags["optuna.trial"]) for r in runs) == list(range(6))
    for run in runs:
        trial = study.trials[int(run.data.tags["optuna.trial"])]
        assert run.info.status == "FINISHED"
        assert run.data.tags["optuna.state"] == trial.state.name
        assert run.data.params["model.params.num_leaves"] == str(
            trial.params["model.params.num_leaves"]
        )
        history = client.get_metric_history(run.info.run_id, "profit_total")
        assert [m.step for m in history] == sorted(trial.intermediate_values)
        assert [m.value for m in history] == pytest.approx(
            [trial.intermediate_values[s] for s in sorted(trial.intermediate_values)]
        )
        assert run.data.metrics["duration_s"] > 0

    # The challenger is the best trial refitted on the whole tuning window, which ends
    # before the test window starts.
    best = study.best_trial
    version = client.get_model_version_by_alias("tiny_tune", "challenger")
    assert version.tags["optuna.trial"] == str(best.number)
    use_uri(default_tracking_uri(userdir))
    bundle = load_bundle("models:/tiny_tune@challenger")
    assert bundle.forecaster.num_leaves == best.params["model.params.num_leaves"]
    assert bundle.metadata.train_window.last < datetime.fromisoformat(
        parent.data.tags["test.first"]
    )

    written = json.loads((userdir / "strategies" / "RegimeStrategy.json").read_text())
    assert written["strategy_name"] == "RegimeStrategy"
    assert written["params"]["buy"]["entry_threshold"] == best.params["strategy.entry_threshold"]
    assert written["params"]["stoploss"]["stoploss"] == best.params["strategy.stoploss"]
    assert written["params"]["roi"]["0"] == best.params["strategy.roi.0"]

    # Asking again for 8 trials continues the same study and the same parent run.
    result = cli("tune", spec, "--trials", "8", "--force", "toy", "--userdir", userdir)
    assert result.code == 0, result.err
    study = study_of(userdir, "tiny_tune")
    assert len(study.trials) == 8 and counts(study).finished == 8
    assert study.user_attrs["mlflow_parent_run_id"] == parent_id
    assert len(child_runs(client, "tiny_tune", parent_id)) == 8

    # Nothing left to do: no new trial and no new registered version.
    versions = len(client.search_model_versions("name = 'tiny_tune'"))
    result = cli("tune", spec, "--trials", "8", "--force", "toy", "--userdir", userdir)
    assert result.code == 0, result.err
    assert len(study_of(userdir, "tiny_tune").trials) == 8
    assert len(client.search_model_versions("name = 'tiny_tune'")) == versions


def test_trials_never_see_the_test_window(userdir: Path, tmp_path: Path) -> None:
    """Changing every candle of the test window changes no trial value."""
    spec = load_experiment(write_spec(tmp_path / "s.toml"))
    assert spec.tune is not None
    data = TuningData.load(spec, spec.tune, UserDir(userdir))
    shaken = data.candles.copy()
    rng = np.random.default_rng(0)
    factor = np.exp(rng.normal(0, 0.05, len(shaken) - data.tuning_rows))
    for column in ("open", "high", "low", "close"):
        shaken.loc[data.tuning_rows :, column] *= factor
    shaken.loc[data.tuning_rows :, "high"] = shaken.loc[
        data.tuning_rows :, ["open", "high", "low", "close"]
    ].max(axis=1)
    shaken.loc[data.tuning_rows :, "low"] = shaken.loc[
        data.tuning_rows :, ["open", "high", "low", "close"]
    ].min(axis=1)
    other = TuningData(
        spec=spec, candles=shaken, tuning_rows=data.tuning_rows, layout=UserDir(tmp_path)
    )
    params = {"strategy.entry_threshold": 0.52, "model.params.num_leaves": 9}
    trial_spec = spec.with_params(params)
    strategy = with_values(
        strategy_defaults(spec, UserDir(tmp_path / "ud")), {"entry_threshold": 0.52}
    )
    seen: list[dict[str, float]] = []
    first = run_trial(data, trial_spec, strategy, lambda _step, m: seen.append(m))
    second = run_trial(other, trial_spec, strategy, lambda _step, m: None)
    assert first.metrics.keys() == second.metrics.keys()  # values: NaN (too short) included
    np.testing.assert_array_equal(list(first.metrics.values()), list(second.metrics.values()))
    assert first.fits == 3 and len(seen) == 3


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"objective": '"sharp"'}, "unknown objective 'sharp'"),
        (
            {"objective": '["profit_total", "max_drawdown"]', "tune_extra": 'pruner = "median"'},
            "cannot prune multi-objective",
        ),
        (
            {
                "space_extra": '"strategy.entry_treshold" = { type = "float", low = 0.5, high = 0.6 }'
            },
            "strategy.entry_treshold",
        ),
        (
            {"space_extra": '"model.params.num_leafs" = { type = "int", low = 3, high = 9 }'},
            "num_leafs",
        ),
        (
            {"space_extra": '"walk_forward.folds" = { type = "int", low = 2, high = 4 }'},
            "must start with one of",
        ),
        (
            {"space_extra": '"regime.switch_margin" = { type = "float", low = 0.9, high = 0.1 }'},
            "low must be below high",
        ),
        ({"objective": '"rmse"'}, "does not apply to a classification target"),
        (
            {
                "space_extra": '"strategy.exit_threshold" = { type = "float", low = 0.4, high = 0.5, step = 0.005 }'
            },
            "declares it with 2 decimals",
        ),
    ],
)
def test_bad_tune_sections_are_refused_before_anything_is_written(
    userdir: Path,
    tmp_path: Path,
    cli: Callable[..., CliResult],
    change: dict[str, str],
    message: str,
) -> None:
    fresh = tmp_path / "ud"
    spec = write_spec(tmp_path / "bad.toml", "bad_tune", **change)
    result = cli("tune", spec, "--trials", "2", "--userdir", fresh)
    assert result.code == 2
    assert message in result.err
    assert not (fresh / "optuna").exists() and not (fresh / "mlflow.db").exists()


def test_an_annualised_objective_over_too_few_days_is_refused_before_any_trial(
    userdir: Path, tmp_path: Path, cli: Callable[..., CliResult]
) -> None:
    """3 folds of 400 hours: 50 days out of sample, too short for an annual Sharpe."""
    spec = write_spec(tmp_path / "sharpe.toml", "sharpe_tune", objective='"sharpe"')
    result = cli("tune", spec, "--trials", "2", "--userdir", userdir)
    assert result.code == 2
    said = " ".join(result.err.split())
    assert "'sharpe' is annualised" in said and "span 50 days: at least 90" in said
    storage = open_storage(None, UserDir(userdir))
    assert "sharpe_tune" not in [s.study_name for s in optuna.get_all_study_summaries(storage)]


def test_a_study_refuses_a_different_spec(
    userdir: Path, tmp_path: Path, cli: Callable[..., CliResult]
) -> None:
    first = write_spec(tmp_path / "a.toml", "spec_a")
    assert cli("tune", first, "--trials", "1", "--study", "shared", "--userdir", userdir).code == 0
    other = write_spec(tmp_path / "b.toml", "spec_a", tune_extra="test_fraction = 0.3")
    result = cli("tune", other, "--trials", "2", "--study", "shared", "--userdir", userdir)
    assert result.code == 2
    assert "created from another spec" in result.err and "--study" in result.err
    assert len(study_of(userdir, "shared").trials) == 1


def test_two_worker_processes_share_one_study_to_exactly_the_requested_trials(
    userdir: Path, tmp_path: Path, cli: Callable[..., CliResult]
) -> None:
    spec = write_spec(tmp_path / "par.toml", "par_tune")
    result = cli("tune", spec, "--trials", "6", "--jobs", "2", "--userdir", userdir)
    assert result.code == 0, result.err
    study = study_of(userdir, "par_tune")
    assert len(study.trials) == 6 and counts(study).finished == 6
    assert len({t.user_attrs["pid"] for t in study.trials}) == 2
    assert len({tuple(sorted(t.params.items())) for t in study.trials}) == 6


@pytest.mark.slow
def test_two_ray_workers_share_one_study_to_exactly_the_requested_trials(
    userdir: Path, tmp_path: Path, cli: Callable[..., CliResult]
) -> None:
    """Issue 27: --executor ray runs the Optuna workers as Ray tasks (a local cluster
    here), each loading the data once and asking the shared storage for trials."""
    pytest.importorskip("ray", reason="Ray is the optional extra .[ray]: not installed here")
    spec = write_spec(tmp_path / "ray.toml", "ray_tune")
    args = ("tune", spec, "--trials", "4", "--jobs", "2", "--executor", "ray")
    result = cli(*args, "--userdir", userdir)
    assert result.code == 0, result.err
    study = study_of(userdir, "ray_tune")
    assert len(study.trials) == 4 and counts(study).finished == 4
    assert os.getpid() not in {t.user_attrs["pid"] for t in study.trials}  # Ray's workers
    client = MlflowClient(default_tracking_uri(userdir))
    parent = study.user_attrs["mlflow_parent_run_id"]
    assert len(child_runs(client, "ray_tune", parent)) == 4


def test_multi_objective_study_uses_nsga2_and_logs_the_pareto_front(
    userdir: Path, tmp_path: Path, cli: Callable[..., CliResult]
) -> None:
    spec = write_spec(
        tmp_path / "multi.toml", "multi_tune", objective='["profit_total", "max_drawdown"]'
    )
    result = cli("tune", spec, "--trials", "4", "--userdir", userdir)
    assert result.code == 0, result.err
    study = study_of(userdir, "multi_tune")
    assert isinstance(study.sampler, optuna.samplers.NSGAIISampler) or len(study.directions) == 2
    assert [d.name for d in study.directions] == ["MAXIMIZE", "MINIMIZE"]
    client = MlflowClient(default_tracking_uri(userdir))
    parent = study.user_attrs["mlflow_parent_run_id"]
    assert "optuna/pareto_front.png" in {a.path for a in client.list_artifacts(parent, "optuna")}
    best = int(client.get_run(parent).data.tags["best_trial"])
    assert best in {t.number for t in study.best_trials}


@pytest.mark.slow
@pytest.mark.shared_data
def test_killed_tune_on_btc_resumes_to_the_requested_trials(
    btc_userdir: Path, tmp_path: Path
) -> None:
    """BTC/USDT 1h, small budget: SIGKILL mid-trial, start again, get exactly N trials."""
    trials = 6
    spec = write_spec(
        tmp_path / "btc.toml", "btc_tune", timerange="20190101-20200601", test_size=1200
    )
    command = [
        sys.executable,
        "-m",
        "tradingbot",
        "tune",
        str(spec),
        "--trials",
        str(trials),
        "--force",
        "a small budget, to test resuming",
        "--userdir",
        str(btc_userdir),
    ]
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    process = subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    killed_trial = None
    deadline = time.monotonic() + 300
    try:
        while time.monotonic() < deadline and process.poll() is None:
            time.sleep(0.2)
            if not (btc_userdir / "optuna" / "journal.log").exists():
                continue
            try:
                study = study_of(btc_userdir, "btc_tune")
            except KeyError:
                continue
            running = [
                t for t in study.trials if t.state == optuna.trial.TrialState.RUNNING and t.params
            ]
            if counts(study).finished >= 2 and running:
                killed_trial = running[0]
                process.send_signal(signal.SIGKILL)
                break
    finally:
        process.wait(timeout=60)
    assert killed_trial is not None, (
        f"never saw a running trial: {process.stderr.read().decode()[-2000:]}"
    )  # type: ignore[union-attr]
    before = study_of(btc_userdir, "btc_tune")
    finished_before = {t.number: t.values for t in before.trials if t.state.is_finished()}

    resumed = subprocess.run(
        command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    study = study_of(btc_userdir, "btc_tune")
    numbers = [t.number for t in study.trials]
    assert len(numbers) == len(set(numbers))
    interrupted = [t for t in study.trials if t.user_attrs.get(INTERRUPTED)]
    assert [t.number for t in interrupted] == [killed_trial.number]
    # The kill can land while the trial's parameters are being suggested: the retry keeps those
    # the killed trial had stored and samples the rest.
    stored = interrupted[0].params
    assert killed_trial.params.items() <= stored.items()
    retry = [t for t in study.trials if t.user_attrs.get("retry_of") == killed_trial.number]
    assert len(retry) == 1 and retry[0].state.is_finished()
    assert stored.items() <= retry[0].params.items()
    assert counts(study).finished == trials
    for number, values in finished_before.items():  # nothing finished before was lost or redone
        assert study.trials[number].values == values
    client = MlflowClient(default_tracking_uri(btc_userdir))
    runs = child_runs(client, "btc_tune", study.user_attrs["mlflow_parent_run_id"])
    by_trial = {int(r.data.tags["optuna.trial"]): r for r in runs}
    assert len(runs) == len(by_trial) == len(study.trials)
    killed_run = by_trial[killed_trial.number]  # its process died: the trial was reclaimed
    assert killed_run.info.status == "KILLED"
    assert killed_run.data.tags["optuna.state"] == "interrupted"
    assert sum(r.info.status == "FINISHED" for r in runs) == trials
    assert (btc_userdir / "strategies" / "RegimeStrategy.json").exists()


def test_sqlite_storage_timeout_and_resume(
    userdir: Path, tmp_path: Path, cli: Callable[..., CliResult]
) -> None:
    spec = write_spec(tmp_path / "t.toml", "timed_tune")
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    args = ("tune", spec, "--storage", storage, "--userdir", userdir)
    result = cli(*args, "--trials", "50", "--timeout", "1")
    assert result.code == 0, result.err
    assert "time is up" in result.out
    study = optuna.load_study(study_name="timed_tune", storage=storage)
    started = len(study.trials)
    assert 1 <= started < 50 and counts(study).running == 0
    client = MlflowClient(default_tracking_uri(userdir))
    parent = client.get_run(study.user_attrs["mlflow_parent_run_id"])
    assert (
        parent.data.tags["tune.state"] == "incomplete"
        and "registered_version" not in parent.data.tags
    )
    assert not (userdir / "optuna" / "journal.log").exists() or "timed_tune" not in {
        s.study_name for s in optuna.get_all_study_summaries(open_storage(None, UserDir(userdir)))
    }
    result = cli(*args, "--trials", str(started + 1))
    assert result.code == 0, result.err
    study = optuna.load_study(study_name="timed_tune", storage=storage)
    assert len(study.trials) == started + 1
    assert (
        "registered_version" in client.get_run(study.user_attrs["mlflow_parent_run_id"]).data.tags
    )


def test_storage_urls_are_checked_and_passwords_never_shown(tmp_path: Path) -> None:
    from experiments.tuning.request import TuneError
    from experiments.tuning.storage import storage_label

    assert storage_label("postgresql://bot:s3cret@db.example:5432/optuna", UserDir(tmp_path)) == (
        "postgresql://***@db.example:5432/optuna"
    )
    assert storage_label(None, UserDir(tmp_path)) == str(tmp_path / "optuna" / "journal.log")
    with pytest.raises(TuneError, match="unsupported --storage"):
        open_storage("redis://localhost", UserDir(tmp_path))


def test_example_tune_sections_pass_every_check(tmp_path: Path) -> None:
    from experiments.tuning.objective import check_tuning

    specs = sorted((ROOT / "experiments" / "specs").glob("*.toml"))
    tuned = [load_experiment(path) for path in specs if load_experiment(path).tune is not None]
    assert {spec.name for spec in tuned} == {"btc_1h_lightgbm", "btc_1h_hmm_lstm"}
    for spec in tuned:
        assert spec.tune is not None
        check_tuning(spec, spec.tune, strategy_defaults(spec, UserDir(tmp_path)))


def test_failing_trials_are_recorded_and_a_failing_space_stops_the_study(
    userdir: Path, tmp_path: Path, cli: Callable[..., CliResult]
) -> None:
    # the rules model reads a feature column the frame does not have: every trial
    # fails at its first fold (values out of a declared range are refused earlier)
    spec = write_spec(tmp_path / "fail.toml", "failing_tune")
    text = (
        spec.read_text()
        .replace('kind = "lightgbm"', 'kind = "rules"')
        .replace("params = { n_estimators = 40, num_leaves = 7, min_child_samples = 20 }", "")
        .replace(
            '"model.params.num_leaves" = { type = "int", low = 3, high = 31 }',
            '"model.params.rsi_column" = { type = "categorical", choices = ["%-no_such_column"] }',
        )
        .replace(
            '"model.params.learning_rate" = { type = "float", low = 0.01, high = 0.3, log = true }',
            "",
        )
    )
    spec.write_text(text)
    result = cli("tune", spec, "--trials", "6", "--userdir", userdir)
    assert result.code == 2
    assert "3 trials in a row failed" in result.err and "no_such_column" in result.err
    study = study_of(userdir, "failing_tune")
    assert [t.state.name for t in study.trials] == ["FAIL"] * 3
    assert counts(study).failed == 3  # failures count towards --trials: no endless retries
    client = MlflowClient(default_tracking_uri(userdir))
    parent = client.get_run(study.user_attrs["mlflow_parent_run_id"])
    assert parent.info.status == "FAILED"
    for run in child_runs(client, "failing_tune", parent.info.run_id):
        assert run.info.status == "FAILED"
        assert "no_such_column" in run.data.tags["tradingbot.failure"]


def test_postgresql_storage_shared_by_two_workers_and_resumed(
    postgres: Any, userdir: Path, tmp_path: Path, cli: Callable[..., CliResult]
) -> None:
    postgres.psql("CREATE DATABASE optuna_workers;")
    storage = postgres.get_uri("optuna_workers")
    spec = write_spec(tmp_path / "pg.toml", "pg_tune")
    args = ("tune", spec, "--storage", storage, "--jobs", "2", "--userdir", userdir)
    result = cli(*args, "--trials", "5")
    assert result.code == 0, result.err
    study = optuna.load_study(study_name="pg_tune", storage=storage)
    assert len(study.trials) == 5 and counts(study).finished == 5
    assert len({t.user_attrs["pid"] for t in study.trials}) == 2
    # Resumed from the server: the same study grows to the new size, nothing lost or repeated.
    result = cli(*args, "--trials", "7")
    assert result.code == 0, result.err
    study = optuna.load_study(study_name="pg_tune", storage=storage)
    assert [t.number for t in study.trials] == list(range(7)) and counts(study).finished == 7
    assert len({tuple(sorted(t.params.items())) for t in study.trials}) == 7
    assert "pg_tune" not in {
        s.study_name for s in optuna.get_all_study_summaries(open_storage(None, UserDir(userdir)))
    }
    client = MlflowClient(default_tracking_uri(userdir))
    parent = study.user_attrs["mlflow_parent_run_id"]
    assert len(child_runs(client, "pg_tune", parent)) == 7
    assert client.get_run(parent).data.tags["optuna.storage"].startswith("postgresql://***@")


def test_unreachable_postgresql_is_a_clear_error_and_writes_nothing(
    userdir: Path, tmp_path: Path, cli: Callable[..., CliResult]
) -> None:
    spec = write_spec(tmp_path / "pg.toml", "pg_down")
    storage = "postgresql://bot:s3cret@127.0.0.1:9/optuna"  # port 9 (discard): nothing listens
    result = cli("tune", spec, "--storage", storage, "--trials", "2", "--userdir", userdir)
    assert result.code == 2
    assert "cannot open Optuna storage postgresql://***@127.0.0.1:9/optuna" in result.err
    assert "s3cret" not in result.out + result.err
    client = MlflowClient(default_tracking_uri(userdir))
    assert client.get_experiment_by_name("pg_down") is None


def test_a_continued_study_with_a_new_best_trial_is_finalised_again(
    userdir: Path, tmp_path: Path, cli: Callable[..., CliResult]
) -> None:
    """A better trial finished elsewhere (another machine, a later run) becomes the
    challenger when the study is continued; the parent run's best.* follow it."""
    spec = write_spec(tmp_path / "again.toml", "again_tune")
    result = cli("tune", spec, "--trials", "3", "--force", "toy", "--userdir", userdir)
    assert result.code == 0, result.err
    study = study_of(userdir, "again_tune")
    first = study.best_trial
    params = {
        **first.params,
        "model.params.num_leaves": 5 if first.params["model.params.num_leaves"] != 5 else 6,
    }
    study.add_trial(
        optuna.trial.create_trial(
            params=params,
            distributions=first.distributions,
            value=first.value + 100.0,
            user_attrs={"metrics": {"profit_total": first.value + 100.0}, "fits": 3},
        )
    )
    result = cli("tune", spec, "--trials", "4", "--force", "toy", "--userdir", userdir)
    assert result.code == 0, result.err
    client = MlflowClient(default_tracking_uri(userdir))
    tags = client.get_run(study.user_attrs["mlflow_parent_run_id"]).data.tags
    assert tags["best_trial"] == "3"
    assert {k: v for k, v in tags.items() if k.startswith("best.")} == {
        f"best.{k}": str(v) for k, v in params.items()
    }
    version = client.get_model_version_by_alias("again_tune", "challenger")
    assert int(version.version) == 2 and version.tags["optuna.trial"] == "3"
    use_uri(default_tracking_uri(userdir))
    assert (
        load_bundle("models:/again_tune@challenger").forecaster.num_leaves
        == params["model.params.num_leaves"]
    )


def test_a_trial_left_by_a_crashed_machine_is_reclaimed_and_the_study_finishes(
    userdir: Path, tmp_path: Path, cli: Callable[..., CliResult]
) -> None:
    """Another host's worker died mid-trial (no heartbeat for 15 minutes): its trial no
    longer blocks the study, its parameters run again, and its MLflow run is closed."""
    spec = write_spec(tmp_path / "ghost.toml", "ghost_tune")
    result = cli("tune", spec, "--trials", "2", "--userdir", userdir)
    assert result.code == 0, result.err
    study = study_of(userdir, "ghost_tune")
    client = MlflowClient(default_tracking_uri(userdir))
    parent = study.user_attrs["mlflow_parent_run_id"]
    ghost_run = client.create_run(
        client.get_run(parent).info.experiment_id, tags={"mlflow.parentRunId": parent}
    ).info.run_id
    ghost = study.ask(fixed_distributions=study.trials[0].distributions)
    for key, value in {
        "host": "crashed-box",
        "pid": 4711,
        "heartbeat": time.time() - 900,
        "mlflow_run_id": ghost_run,
    }.items():
        ghost.set_user_attr(key, value)

    result = cli("tune", spec, "--trials", "4", "--userdir", userdir)
    assert result.code == 0, result.err
    assert "registered models:/ghost_tune/" in result.out
    study = study_of(userdir, "ghost_tune")
    assert counts(study).finished == 4 and counts(study).running == 0
    reclaimed = study.trials[ghost.number]
    assert reclaimed.state == optuna.trial.TrialState.FAIL and reclaimed.user_attrs[INTERRUPTED]
    retry = [t for t in study.trials if t.user_attrs.get("retry_of") == ghost.number]
    assert len(retry) == 1 and retry[0].params == reclaimed.params
    assert client.get_run(ghost_run).info.status == "KILLED"


def test_a_study_waiting_on_a_live_worker_elsewhere_says_so(
    userdir: Path, tmp_path: Path, cli: Callable[..., CliResult]
) -> None:
    spec = write_spec(tmp_path / "busy.toml", "busy_tune")
    result = cli("tune", spec, "--trials", "1", "--userdir", userdir)
    assert result.code == 0, result.err
    study = study_of(userdir, "busy_tune")
    busy = study.ask(fixed_distributions=study.trials[0].distributions)
    for key, value in {"host": "busy-box", "pid": 4711, "heartbeat": time.time()}.items():
        busy.set_user_attr(key, value)
    result = cli("tune", spec, "--trials", "2", "--userdir", userdir)
    assert result.code == 0, result.err
    assert f"still running elsewhere: trial {busy.number} on busy-box (pid 4711" in result.out
    study = study_of(userdir, "busy_tune")
    assert study.trials[busy.number].state == optuna.trial.TrialState.RUNNING
    assert len(study.trials) == 2  # nothing started: the live worker's trial makes two


def test_only_one_worker_finalises_a_finished_study(
    userdir: Path, tmp_path: Path, cli: Callable[..., CliResult]
) -> None:
    """Another machine holds the study's finalise claim: this one refits and registers
    nothing and says who does; once that machine is gone, the next call finalises."""
    spec = write_spec(tmp_path / "claim.toml", "claim_tune")
    result = cli("tune", spec, "--trials", "1", "--userdir", userdir)
    assert result.code == 0, result.err
    storage = open_storage(None, UserDir(userdir))
    client = MlflowClient(default_tracking_uri(userdir))
    versions = len(client.search_model_versions("name = 'claim_tune'"))
    claim = optuna.create_study(study_name=claim_name("claim_tune"), storage=storage).ask()
    for key, value in {"host": "other-box", "pid": 4711, "heartbeat": time.time()}.items():
        claim.set_user_attr(key, value)

    result = cli("tune", spec, "--trials", "2", "--userdir", userdir)
    assert result.code == 0, result.err
    said = " ".join(result.out.split())  # the console wraps long lines
    assert "being refitted and registered by other-box (pid 4711" in said
    assert "registered models:/" not in result.out
    assert counts(study_of(userdir, "claim_tune")).finished == 2
    assert len(client.search_model_versions("name = 'claim_tune'")) == versions

    storage.set_trial_user_attr(claim._trial_id, "heartbeat", time.time() - 900)  # it died
    result = cli("tune", spec, "--trials", "2", "--userdir", userdir)
    assert result.code == 0, result.err
    assert "registered models:/claim_tune/" in result.out
    study = study_of(userdir, "claim_tune")
    parent = client.get_run(study.user_attrs["mlflow_parent_run_id"])
    assert parent.data.tags["best_trial"] == str(study.best_trial.number)
    assert claim_name("claim_tune") not in {
        s.study_name for s in optuna.get_all_study_summaries(storage)
    }


def test_the_tune_bar_shows_running_folds_and_keeps_its_time_on_80_columns() -> None:
    """Before: "0/4 ... running 0" for minutes, and the elapsed time was cut at 80
    columns behind a long description."""
    import io

    from rich.console import Console

    from experiments.tuning.request import Counts
    from tradingbot import tune_progress

    out = io.StringIO()
    console = Console(file=out, width=80, force_terminal=True, color_system=None)
    study = "btc_1h_hmm_lstm-a-rather-long-study-name-2026-12-01"
    with tune_progress(study, 20, console=console) as update:
        update(
            Counts(complete=2, pruned=1, failed=0, running=2), 0.1234, "#3 fold 2/4, #4 fold 1/4"
        )
    lines = [line.rstrip() for line in out.getvalue().splitlines() if "3/20" in line]
    final = lines[-1].split("\r")[-1]
    assert len(final) <= 80
    assert "0:00:0" in final and "best 0.1234" in final and "#3 fold 2/4" in final
    assert f"tuning study {study}: 20 trials" in out.getvalue()


def test_declared_strategy_parameters_are_the_tuning_space(tmp_path: Path) -> None:
    """strategy_parameters = "declared": the Optuna space is made from the blocks'
    declarations (the same ones Freqtrade's parameters come from); [tune.space] overrides."""
    from common.errors import SpecError
    from experiments.spec import parse_experiment
    from experiments.tuning.request import TuneRequest
    from strategies.composition import compositions_in
    from strategies.runner import REPO_STRATEGIES

    def request(strategy: str) -> TuneRequest:
        spec = parse_experiment(
            {
                "name": "declared",
                "model": {"kind": "lightgbm"},
                "backtest": {"strategy": strategy},
                "tune": {
                    "strategy_parameters": "declared",
                    "space": {"strategy.sma_window": {"type": "int", "low": 20, "high": 40}},
                },
            },
            source="test",
        )
        return TuneRequest(spec=spec, context=local_context(tmp_path / "ud"), trials=1)

    space = request("TrendPullbackStrategy").tune.space
    declared = compositions_in(REPO_STRATEGIES)["TrendPullbackStrategy"].params()
    assert set(space) == {f"strategy.{p.name}" for p in declared}
    assert space["strategy.sma_window"].high == 40  # the spec's own range wins
    atr = space["strategy.atr_multiple"]
    assert (atr.low, atr.high, getattr(atr, "step", None)) == (1.0, 6.0, 0.1)
    with pytest.raises(SpecError, match="not composed from blocks"):
        _ = request("RegimeAllocationStrategy").tune


def test_a_tuned_result_worse_than_buy_and_hold_is_not_applied_unless_forced(
    userdir: Path, tmp_path: Path
) -> None:
    """Issue 24 item 6: a study whose every trial lost money wrote the parameter file
    that every later backtest of the strategy then loaded."""
    from experiments.tuning.finalise import _applied, _gate
    from experiments.tuning.request import TuneRequest

    spec = load_experiment(write_spec(tmp_path / "gate.toml", "gate_tune"))
    strategy = strategy_defaults(spec, UserDir(userdir))
    losing = {
        "test.profit_total": -0.2,
        "test.return_over_drawdown": -0.8,
        "test.baseline.always_long.return_over_drawdown": 1.5,
    }
    request = TuneRequest(spec=spec, context=local_context(userdir), trials=1)
    params_file = userdir / "strategies" / "RegimeStrategy.json"
    params_file.unlink(missing_ok=True)
    refused = _gate(request, losing)
    assert not refused.passed and refused.verdict.startswith("refused: held-out test window")
    assert _applied(request, strategy, refused) is None and not params_file.exists()
    forced_request = dataclasses.replace(request, force_reason="on purpose")
    forced = _gate(forced_request, losing)
    assert forced.passed and forced.verdict.startswith("forced past: ")
    assert _applied(forced_request, strategy, forced) == params_file and params_file.exists()
    winning = losing | {"test.return_over_drawdown": 2.0}
    assert _gate(request, winning).verdict.startswith("passed: ")
