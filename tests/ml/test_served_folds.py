"""Walk-forward backtests read a training run's folds (issue 27's lean records): from
``walk_forward/folds.json`` now, and from a child run per fold for runs recorded before."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pandas as pd
from mlflow.tracking import MlflowClient

from common.layout import UserDir
from experiments.spec import parse_experiment
from tests.conftest import import_synthetic, local_context

SPEC = {
    "name": "folds_m",
    "seed": 4,
    "data": {"pair": "BTC/USDT", "timerange": "20210101-20210301"},
    "regime": {"n_restarts": 1, "n_iter": 20},
    "model": {"kind": "lightgbm", "params": {"n_estimators": 15, "num_leaves": 5}},
    "walk_forward": {"folds": 2, "test_size": 200},
}


def _as_recorded_before(
    client: MlflowClient, run_id: str, folds: list[dict[str, Any]], workdir: Path
) -> None:
    """Turn ``run_id`` into a run as recorded before folds.json and the stitched
    predictions: a child run per fold with its bundle and window under ``fold/``."""
    run = client.get_run(run_id)
    for fold in folds:
        index = fold["fold"]
        folder = workdir / f"fold_{index}"
        folder.mkdir(parents=True)
        client.download_artifacts(run_id, f"walk_forward/fold_{index}/bundle.joblib", str(folder))
        (folder / "window.json").write_text(
            json.dumps({"train": fold["train"], "out_of_sample": fold["out_of_sample"]})
        )
        child = client.create_run(
            run.info.experiment_id, tags={"mlflow.parentRunId": run_id, "fold": str(index)}
        ).info.run_id
        client.log_artifact(child, str(folder / "window.json"), "fold")
        bundle = next(folder.rglob("bundle.joblib"))
        client.log_artifact(child, str(bundle), "fold")
        client.set_terminated(child)
    artefacts = Path(urlparse(run.info.artifact_uri).path)
    (artefacts / "walk_forward" / "folds.json").unlink()
    (artefacts / "walk_forward" / "predictions.parquet").unlink()


def test_a_run_recorded_before_folds_json_is_still_walked_forward(tmp_path: Path) -> None:
    from experiments.training import train
    from ml.serving.served import logged_folds, stitch_walk_forward
    from ml.tracking import configure, default_tracking_uri

    userdir = tmp_path / "ud"
    import_synthetic(userdir, "BTC/USDT", candles=1900, seed=8)
    result = train(
        parse_experiment(SPEC, source="t"), context=local_context(userdir), keep_folds=True
    )
    client = configure(default_tracking_uri(userdir), UserDir(userdir))
    layout = UserDir(userdir)
    now, _, counted = stitch_walk_forward(client, result.run_id, layout, "binance", tmp_path / "a")
    folds = logged_folds(client, result.run_id, tmp_path / "folds")
    assert counted == len(folds) == 2

    _as_recorded_before(client, result.run_id, folds, tmp_path / "old")
    assert logged_folds(client, result.run_id, tmp_path / "gone") == []
    before, _, counted = stitch_walk_forward(
        client, result.run_id, layout, "binance", tmp_path / "b"
    )
    assert counted == 2  # its fold runs
    # predicted again from the fold runs' bundles: what training had logged
    logged, again = pd.read_parquet(now), pd.read_parquet(before)
    pd.testing.assert_series_equal(logged["date"], again["date"])
    pd.testing.assert_series_equal(logged["p_up"], again["p_up"], rtol=1e-9)
