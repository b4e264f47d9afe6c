"""`tradingbot train`, the MLflow store and registry, `promote`, and failure hygiene."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from common.layout import UserDir
from experiments.spec import load_experiment
from experiments.training import TrainResult, train
from features.data import import_candles, load_candles
from features.data.synthetic import generate
from ml.bundle import ModelBundle
from ml.model_source import load_bundle
from ml.serving.served import logged_folds
from ml.tracking import configure, default_tracking_uri, fail_stale_runs, process_tags
from tests.conftest import CliResult, local_context

SPEC = """
name = "{name}"
seed = 7

[data]
pair = "BTC/USDT"
timeframe = "1h"
exchange = "binance"

[regime]
n_states = 3
n_restarts = 1
n_iter = 30

[model]
kind = "{kind}"
params = {params}

[target]
kind = "direction"
horizon = 1

[walk_forward]
scheme = "expanding"
folds = 2
test_size = 600
"""
PARAMS = {
    "hmm_lstm": "{ sequence_length = 8, hidden_size = 8, max_epochs = 3, patience = 3, batch_size = 256 }",
    "lightgbm": "{ n_estimators = 40, num_leaves = 7, min_child_samples = 20 }",
}


def write_spec(path: Path, name: str, kind: str) -> Path:
    path.write_text(SPEC.format(name=name, kind=kind, params=PARAMS[kind]))
    return path


@dataclass
class Trained:
    userdir: Path
    spec_path: Path
    result: TrainResult
    client: MlflowClient


@pytest.fixture(scope="module")
def userdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("train")
    candles, _ = generate(3000, seed=4)
    source = root / "synthetic.feather"
    candles.to_feather(source)
    import_candles(
        source, pair="BTC/USDT", timeframe="1h", exchange="binance", layout=UserDir(root / "ud")
    )
    return root / "ud"


@pytest.fixture(scope="module")
def trained(userdir: Path) -> Trained:
    spec_path = write_spec(userdir.parent / "hmm_lstm.toml", "tiny_hmm_lstm", "hmm_lstm")
    uri = default_tracking_uri(userdir)
    result = train(
        load_experiment(spec_path),
        context=local_context(userdir, uri),
        spec_text=spec_path.read_text(),
    )
    return Trained(userdir, spec_path, result, configure(uri, UserDir(userdir)))


def test_the_run_carries_lineage_metrics_folds_and_artefacts(
    trained: Trained, tmp_path: Path
) -> None:
    client, result = trained.client, trained.result
    parent = client.get_run(result.run_id)
    assert parent.info.status == "FINISHED"
    tags = parent.data.tags
    for key in (
        "spec_hash",
        "feature_spec_hash",
        "data_sha256",
        "git_commit",
        "seed",
        "device",
        "bundle_sha256",
    ):
        assert tags.get(key), key
    assert tags["device"] == "cpu" and tags["seed"] == "7"
    assert parent.data.params["model.kind"] == "hmm_lstm"
    assert parent.data.params["model.params.hidden_size"] == "8"
    metrics = parent.data.metrics
    for key in (
        "overall.accuracy",
        "overall.log_loss",
        "overall.brier",
        "overall.return_over_drawdown",
        "overall.max_drawdown",
        "overall.turnover",
        "baseline.always_long.return_over_drawdown",
        "baseline.last_return_sign.max_drawdown",
        "regime.switches_per_1000",
    ):
        assert key in metrics, key
    # 2 folds of 600 hours: 50 days, too short for annualised figures, which are absent
    assert not {"overall.sharpe", "overall.calmar", "baseline.always_long.cagr"} & set(metrics)
    artefacts = {a.path for a in client.list_artifacts(result.run_id)}
    assert {"spec", "environment", "walk_forward"} <= artefacts
    assert "plots" not in artefacts  # drawn on demand: tradingbot report --training RUN
    assert {a.path for a in client.list_artifacts(result.run_id, "spec")} == {
        "spec/spec.json",
        "spec/spec.toml",
    }

    # the folds are in the run itself (issue 27's lean records), not child runs
    assert not client.search_runs(
        [result.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{result.run_id}'"
    )
    folds = logged_folds(client, result.run_id, tmp_path / "folds")
    assert [fold["fold"] for fold in folds] == [0, 1]
    for fold in folds:
        assert fold["out_of_sample"]["first"] > fold["train"]["last"]
        assert fold["train_rows"] > 0 and fold["test_rows"] > 0 and fold["device"] == "cpu"
    # lean: a fold model's training history only with --keep-folds; the final model's always
    assert not client.get_metric_history(result.run_id, "fold_0.train_loss")
    history = client.get_metric_history(result.run_id, "final.train_loss")
    assert [m.step for m in history] == list(range(len(history))) and len(history) >= 1
    # the logged model has the run's own figures (as MLflow links them), not the folds'
    (output,) = parent.outputs.model_outputs
    model_metrics = {m.key: m.value for m in client.get_logged_model(output.model_id).metrics}
    assert model_metrics["overall.accuracy"] == metrics["overall.accuracy"]
    assert not any(key.startswith("fold.") for key in model_metrics)
    accuracy = client.get_metric_history(result.run_id, "fold.accuracy")  # a point per fold
    assert sorted((m.step, m.value) for m in accuracy) == [
        (fold["fold"], fold["metrics"]["accuracy"]) for fold in folds
    ]
    # lean: a fold's baselines are in the fold table and folds.json, not metric rows
    assert not any(key.startswith("fold.baseline.") for key in parent.data.metrics)
    table = pd.read_csv(
        client.download_artifacts(result.run_id, "walk_forward/fold_metrics.csv", str(tmp_path))
    )
    assert list(table["always_long.total_return"]) == [
        fold["metrics"]["baseline.always_long.total_return"] for fold in folds
    ]
    # lean: no fold models; a fold's predictions are the run's stitched ones
    assert {a.path for a in client.list_artifacts(result.run_id, "walk_forward")} == {
        "walk_forward/folds.json",
        "walk_forward/fold_metrics.csv",
        "walk_forward/predictions.parquet",
    }
    assert not any("bundle_sha256" in fold for fold in folds)


def test_registered_with_alias_challenger(trained: Trained) -> None:
    version = trained.client.get_model_version_by_alias("tiny_hmm_lstm", "challenger")
    assert int(version.version) == trained.result.version
    assert version.run_id == trained.result.run_id
    assert (
        version.tags["data_sha256"]
        == trained.client.get_run(trained.result.run_id).data.tags["data_sha256"]
    )


def test_the_mlflow_ui_sees_model_development_a_summary_and_a_schema(trained: Trained) -> None:
    """Before: experiments opened in the UI's GenAI view, versions had no description
    and no signature."""
    from mlflow.models import get_model_info

    client = trained.client
    experiment = client.get_experiment(trained.result.experiment_id)
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"
    version = client.get_model_version("tiny_hmm_lstm", str(trained.result.version))
    assert version.description.startswith("Walk-forward out of sample: return ")
    assert "Buy and hold on the same candles: return " in version.description
    signature = get_model_info(f"models:/tiny_hmm_lstm/{version.version}").signature
    assert signature is not None
    assert {"date", "open", "high", "low", "close", "volume"} <= set(signature.inputs.input_names())
    assert {"date", "prediction", "p_up", "regime"} <= set(signature.outputs.input_names())


def test_promote_then_champion_in_a_fresh_process_predicts_exactly_the_bundle(
    trained: Trained, cli: Callable[..., CliResult], tmp_path: Path
) -> None:
    bad = cli(
        "promote", "tiny_hmm_lstm", "--version", "99", "--reason", "x", "--userdir", trained.userdir
    )
    assert bad.code == 2 and "has no version 99" in bad.err
    ok = cli(
        "promote",
        "tiny_hmm_lstm",
        "--version",
        str(trained.result.version),
        "--reason",
        "best walk-forward Sharpe",
        "--force",  # a toy model: the gate's verdict is recorded either way
        "--userdir",
        trained.userdir,
    )
    assert ok.code == 0, ok.err
    version = trained.client.get_model_version_by_alias("tiny_hmm_lstm", "champion")
    assert version.tags["promotion_reason"] == "best walk-forward Sharpe"
    assert version.tags["promoted_by"] and version.tags["promoted_at"]
    assert version.description.startswith("Promoted to champion on ")
    assert "best walk-forward Sharpe\n\nWalk-forward out of sample" in version.description
    assert "metric.overall.max_drawdown" in version.tags
    assert version.tags["tradingbot.gate"].startswith(("passed: ", "forced past: "))
    assert (
        "promoted to champion"
        in trained.client.get_run(trained.result.run_id).data.tags["tradingbot.decision"]
    )

    candles = (
        load_candles(UserDir(trained.userdir), "binance", "BTC/USDT", "1h")
        .iloc[-800:]
        .reset_index(drop=True)
    )
    candles_path = tmp_path / "candles.parquet"
    candles.to_parquet(candles_path)
    out = tmp_path / "fresh.parquet"
    script = (
        "import sys, mlflow, pandas as pd\n"
        f"mlflow.set_tracking_uri({default_tracking_uri(trained.userdir)!r})\n"
        "model = mlflow.pyfunc.load_model('models:/tiny_hmm_lstm@champion')\n"
        f"model.predict(pd.read_parquet({str(candles_path)!r})).to_parquet({str(out)!r})\n"
    )
    env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true"}
    subprocess.run([sys.executable, "-c", script], check=True, env=env, timeout=300)
    fresh = pd.read_parquet(out)
    in_memory = load_bundle("models:/tiny_hmm_lstm@champion").predict(candles)
    pd.testing.assert_frame_equal(fresh, in_memory, check_exact=True)
    # and the registered bundle is the one the run recorded
    assert (
        in_memory["p_up"].notna().sum() == 800 - 168 - 7
    )  # feature warm-up, then 8-candle sequences


def test_same_spec_and_seed_give_identical_metrics(userdir: Path) -> None:
    spec_path = write_spec(userdir.parent / "lgbm.toml", "tiny_lightgbm", "lightgbm")
    uri = default_tracking_uri(userdir)
    first = train(load_experiment(spec_path), context=local_context(userdir, uri))
    second = train(load_experiment(spec_path), context=local_context(userdir, uri))
    # equal, NaN included (annualised figures of a short window)
    assert pd.Series(first.metrics).equals(pd.Series(second.metrics))
    assert pd.DataFrame(first.baselines).equals(pd.DataFrame(second.baselines))
    assert (first.version, second.version) == (1, 2)


def test_a_failed_run_ends_failed_and_registers_nothing(
    userdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec_path = write_spec(userdir.parent / "fail.toml", "tiny_failing", "lightgbm")
    uri = default_tracking_uri(userdir)

    def broken(*_: object, **__: object) -> ModelBundle:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr("experiments.training.pipeline.fit_final", broken)
    with pytest.raises(RuntimeError, match="disk on fire"):
        train(load_experiment(spec_path), context=local_context(userdir, uri))
    client = configure(uri, UserDir(userdir))
    experiment = client.get_experiment_by_name("tiny_failing")
    runs = client.search_runs(
        [experiment.experiment_id], filter_string="tags.mlflow.parentRunId IS NULL"
    )
    assert [r.info.status for r in runs] == ["FAILED"]
    assert not client.search_model_versions("name = 'tiny_failing'")
    # the figures are sent after the model: a run that failed before keeps those it got to
    assert {"overall.accuracy", "fold.accuracy"} <= set(runs[0].data.metrics)

    def interrupted(*_: object, **__: object) -> ModelBundle:
        raise KeyboardInterrupt

    monkeypatch.setattr("experiments.training.pipeline.fit_final", interrupted)
    with pytest.raises(KeyboardInterrupt):
        train(load_experiment(spec_path), context=local_context(userdir, uri))
    statuses = sorted(
        r.info.status
        for r in client.search_runs(
            [experiment.experiment_id], filter_string="tags.mlflow.parentRunId IS NULL"
        )
    )
    assert statuses == ["FAILED", "KILLED"]
    assert not client.search_model_versions("name = 'tiny_failing'")


def test_runs_left_running_by_a_dead_process_are_marked_failed(userdir: Path) -> None:
    client = configure(default_tracking_uri(userdir), UserDir(userdir))
    experiment = client.create_experiment("stale_check")
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    orphan = client.create_run(experiment, tags={**process_tags(), "tradingbot.pid": str(dead.pid)})
    alive = client.create_run(
        experiment, tags={**process_tags(), "tradingbot.pid": str(os.getppid())}
    )
    assert fail_stale_runs(client, experiment) == [orphan.info.run_id]
    assert client.get_run(orphan.info.run_id).info.status == "FAILED"
    assert client.get_run(alive.info.run_id).info.status == "RUNNING"


def test_train_cli_with_overrides_and_spec_errors(
    userdir: Path, cli: Callable[..., CliResult], tmp_path: Path
) -> None:
    spec_path = write_spec(tmp_path / "cli.toml", "tiny_cli", "lightgbm")
    result = cli("train", spec_path, "--timerange", "20200101-20200401", "--userdir", userdir)
    assert result.code == 0, result.err
    assert "always_long" in result.out and "@challenger" in result.out
    run = MlflowClient(default_tracking_uri(userdir)).search_runs(
        [
            configure(default_tracking_uri(userdir), UserDir(userdir))
            .get_experiment_by_name("tiny_cli")
            .experiment_id
        ],
        filter_string="tags.mlflow.parentRunId IS NULL",
    )[0]
    assert run.data.params["data.timerange"] == "20200101-20200401"
    assert run.data.tags["data.last"].startswith("2020-03-31T23:00")

    typo = tmp_path / "typo.toml"
    typo.write_text(spec_path.read_text().replace("folds = 2", "fold = 2"))
    bad = cli("train", typo, "--userdir", userdir)
    assert bad.code == 2 and "walk_forward.fold: Extra inputs are not permitted" in bad.err
    few = cli("train", spec_path, "--timerange", "20200101-20200105", "--userdir", userdir)
    assert few.code == 2 and "only 96 BTC/USDT 1h candles" in few.err
    bad_range = cli("train", spec_path, "--timerange", "2020-01-01", "--userdir", userdir)
    assert bad_range.code == 2 and "timerange" in bad_range.err


def test_example_specs_are_valid() -> None:
    root = Path(__file__).resolve().parents[2] / "experiments" / "specs"
    names = sorted(p.stem for p in root.glob("*.toml"))
    assert names == [
        "btc_1h_hmm_lstm",
        "btc_1h_lightgbm",
        "btc_1h_lstm",
        "btc_1h_regime_allocation",
        "btc_1h_regime_allocation_sized",
        "btc_1h_rules",
        "btc_1h_volatility",
    ]
    for path in root.glob("*.toml"):
        spec = load_experiment(path)
        assert spec.name == path.stem


def test_two_user_dirs_never_mix(userdir: Path, tmp_path: Path) -> None:
    other = tmp_path / "other"
    source = tmp_path / "c.feather"
    generate(3000, seed=5)[0].to_feather(source)
    import_candles(
        source, pair="BTC/USDT", timeframe="1h", exchange="binance", layout=UserDir(other)
    )
    spec_path = write_spec(tmp_path / "mix.toml", "tiny_mix", "lightgbm")
    train(load_experiment(spec_path), context=local_context(userdir, default_tracking_uri(userdir)))
    train(load_experiment(spec_path), context=local_context(other, default_tracking_uri(other)))
    for directory in (userdir, other):
        client = configure(default_tracking_uri(directory), UserDir(directory))
        versions = client.search_model_versions("name = 'tiny_mix'")
        assert [str(v.version) for v in versions] == ["1"], directory
        experiment = client.get_experiment_by_name("tiny_mix")
        assert experiment.artifact_location.startswith(
            (directory / "mlartifacts").resolve().as_uri()
        )
    assert "MLFLOW_TRACKING_URI" not in os.environ


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("n_estimators = 40", "n_estimators = 0", "n_estimators = 0 is outside [1, inf)"),
        ("num_leaves = 7", "num_leaves = 0", "num_leaves = 0 is outside [2, 131072]"),
        (
            "n_estimators = 40",
            "n_estimators = 40, learning_rate = -0.1",
            "learning_rate = -0.1 is outside (0, inf)",
        ),
        ("n_states = 3", "n_states = 0", "regime[kind=hmm].n_states"),
        ("seed = 7", "seed = -1", "seed: Input should be greater than or equal to 0"),
    ],
)
def test_spec_values_out_of_range_are_one_line_errors_before_any_run(
    userdir: Path, cli: Callable[..., CliResult], tmp_path: Path, old: str, new: str, message: str
) -> None:
    spec_path = write_spec(tmp_path / "range.toml", "tiny_range", "lightgbm")
    spec_path.write_text(spec_path.read_text().replace(old, new))
    result = cli("train", spec_path, "--userdir", tmp_path / "fresh")
    assert result.code == 2 and message in result.err, result.err
    assert "Traceback" not in result.err
    assert not (tmp_path / "fresh" / "mlflow.db").exists()  # nothing recorded


def test_a_version_whose_run_did_not_finish_is_never_promoted_and_is_reconciled(
    trained: Trained,
) -> None:
    """What a registration killed inside its run left before registrations moved after
    the run's end: a version (with the challenger alias) whose run ended FAILED."""
    from mlflow.entities import RunStatus

    from ml.model_source import RegistryError
    from ml.registry import CHALLENGER, promote, reconcile
    from ml.tracking import use_uri

    use_uri(default_tracking_uri(trained.userdir))  # the source URI resolves in this store
    client = trained.client
    source = client.get_model_version("tiny_hmm_lstm", str(trained.result.version))
    experiment = client.get_experiment_by_name("tiny_hmm_lstm").experiment_id
    killed = client.create_run(experiment, tags=process_tags())
    leftover = client.create_model_version(
        "tiny_hmm_lstm", str(source.source), run_id=killed.info.run_id
    )
    client.set_registered_model_alias("tiny_hmm_lstm", CHALLENGER, leftover.version)
    client.set_terminated(killed.info.run_id, status=RunStatus.to_string(RunStatus.FAILED))
    with pytest.raises(RegistryError, match="never completely registered"):
        promote(
            client, "tiny_hmm_lstm", int(leftover.version), "looks fine", user="pytest", force=True
        )
    assert reconcile(client, "tiny_hmm_lstm") == [
        f"tiny_hmm_lstm v{leftover.version}: deleted (its run is FAILED)"
    ]
    versions = [v.version for v in client.search_model_versions("name = 'tiny_hmm_lstm'")]
    assert leftover.version not in versions and source.version in versions
    with pytest.raises(MlflowException):
        client.get_model_version_by_alias("tiny_hmm_lstm", CHALLENGER)
    assert reconcile(client, "tiny_hmm_lstm") == []  # idempotent; complete versions untouched


def test_keep_folds_logs_each_folds_model_and_a_report_draws_the_regimes_on_demand(
    userdir: Path, cli: Callable[..., CliResult], tmp_path: Path
) -> None:
    """Issue 27, lean records: a run keeps what lineage and serving need; the fold
    models with --keep-folds, the regime pictures from `report --training RUN`."""
    spec_path = write_spec(tmp_path / "keep.toml", "tiny_keep", "lightgbm")
    kept = cli("train", spec_path, "--keep-folds", "--userdir", userdir)
    assert kept.code == 0, kept.err
    client = configure(default_tracking_uri(userdir), UserDir(userdir))
    experiment = client.get_experiment_by_name("tiny_keep").experiment_id
    parent = client.search_runs([experiment], filter_string="tags.mlflow.parentRunId IS NULL")[0]
    folds = logged_folds(client, parent.info.run_id, tmp_path / "folds")
    assert len(folds) == 2
    for fold in folds:
        folder = f"walk_forward/fold_{fold['fold']}"
        files = {a.path for a in client.list_artifacts(parent.info.run_id, folder)}
        assert files == {f"{folder}/bundle.joblib", f"{folder}/predictions.parquet"}
        local = client.download_artifacts(
            parent.info.run_id, f"{folder}/bundle.joblib", str(tmp_path / folder)
        )
        assert fold["bundle_sha256"] == hashlib.sha256(Path(local).read_bytes()).hexdigest()
        history = client.get_metric_history(parent.info.run_id, f"fold_{fold['fold']}.val_loss")
        assert [m.step for m in history] == list(range(len(history))) and len(history) >= 1

    # a lean run of the same spec: the same figures, fewer files
    lean = train(load_experiment(spec_path), context=local_context(userdir))
    finite = {key: value for key, value in lean.metrics.items() if np.isfinite(value)}
    assert finite and all(parent.data.metrics[f"overall.{k}"] == v for k, v in finite.items())

    out = tmp_path / "report"
    drawn = cli("report", "--training", lean.run_id[:10], "--out", out, "--userdir", userdir)
    assert drawn.code == 0, drawn.err
    picture = out / "regimes_BTC_USDT.png"
    assert picture.stat().st_size > 10_000
    assert "regimes_BTC_USDT" in (out / "report.md").read_text()
    wrong = cli("report", "--training", "nosuchrun", "--out", out, "--userdir", userdir)
    assert wrong.code == 2 and "0 training runs with an id starting 'nosuchrun'" in wrong.err
    odd = cli("report", "--training", "ab' OR '", "--out", out, "--userdir", userdir)
    assert odd.code == 2 and "is not a run id" in odd.err
