"""`tradingbot import-freqai` (issue 28): FreqAI's documented config becomes a spec that
trains walk-forward offline, and every setting is reported, mapped or not."""

from __future__ import annotations

import json
import tomllib
from collections.abc import Callable
from pathlib import Path

import pytest

from common.errors import SpecError
from experiments.freqai_import import NOT_YET, convert
from experiments.spec import load_experiment, parse_experiment
from experiments.training import train
from tests.conftest import CliResult, import_synthetic, local_context

# The minimal config of Freqtrade's FreqAI docs ("Setting up the configuration file"),
# with the pair, timeframe and backtest timerange a user's config has around it.
FREQAI_DOCS_CONFIG = {
    "timeframe": "1h",
    "timerange": "20200301-20200401",
    "exchange": {"name": "binance", "pair_whitelist": ["BTC/USDT"]},
    "freqai": {
        "enabled": True,
        "purge_old_models": 2,
        "train_period_days": 30,
        "backtest_period_days": 7,
        "identifier": "unique-id",
        "feature_parameters": {
            "include_timeframes": ["5m", "15m", "4h"],
            "include_corr_pairlist": ["ETH/USDT"],
            "label_period_candles": 24,
            "include_shifted_candles": 2,
            "indicator_periods_candles": [10, 20],
        },
        "data_split_parameters": {"test_size": 0.25},
        "model_training_parameters": {"n_estimators": 100},
    },
}


def test_the_windows_labels_pairs_and_model_map_and_the_rest_is_named() -> None:
    imported = convert(FREQAI_DOCS_CONFIG)
    spec = imported.spec
    assert spec["name"] == "unique-id" and spec["data"]["pair"] == "BTC/USDT"
    # 30 training days of 1h candles before each 7-day window of the timerange
    assert spec["walk_forward"] == {
        "scheme": "rolling",
        "train_size": 720,
        "test_days": 7.0,
        "folds": 4,
        "start": "20200301",
    }
    assert spec["data"]["timerange"] == "20200131-20200401"
    assert spec["target"] == {"horizon": 24, "kind": "return"}
    features = spec["features"]
    assert features["reference_pairs"] == ["ETH/USDT"]
    assert features["include_shifted_candles"] == 2
    assert [h["timeframe"] for h in features["higher_timeframes"]] == ["4h"]
    windows = {f["kind"]: f.get("windows") for f in features["features"]}
    assert windows["rsi"] == [10, 14, 20]  # the default's 14 and FreqAI's periods
    assert windows["log_return"] == [1, 4, 10, 20, 24]
    assert spec["model"] == {
        "kind": "lightgbm",
        "params": {"n_estimators": 100, "validation_fraction": 0.25},
    }
    unmapped = {row.key for row in imported.report if not row.spec_key}
    assert unmapped == {"freqai.enabled"}
    assert spec["lifetime"] == {"purge_old_models": 2}
    assert all(row.note == NOT_YET for row in imported.report if row.key in unmapped)
    lower = next(r for r in imported.report if r.key.endswith("include_timeframes"))
    assert "below 1h (5m, 15m): " + NOT_YET in lower.note
    piped = json.loads(json.dumps(FREQAI_DOCS_CONFIG))
    piped["freqai"]["feature_parameters"] |= {
        "weight_factor": 0.9,
        "principal_component_analysis": True,
        "use_SVM_to_remove_outliers": True,
        "svm_params": {"shuffle": False, "nu": 0.1},
        "use_DBSCAN_to_remove_outliers": False,
        "noise_standard_deviation": 0.05,
        "outlier_protection_percentage": 20,
    }
    pipeline = convert(piped).spec["pipeline"]
    assert pipeline["weight_factor"] == 0.9 and pipeline["svm_params"]["nu"] == 0.1
    assert len(pipeline) == 7
    only_4h = json.loads(json.dumps(FREQAI_DOCS_CONFIG))
    del only_4h["freqai"]["feature_parameters"]["indicator_periods_candles"]
    only_4h["freqai"]["feature_parameters"]["include_timeframes"] = ["1h", "4h"]
    assert convert(only_4h).spec["features"] == {
        "preset": "default+4h",
        "reference_pairs": ["ETH/USDT"],
        "include_shifted_candles": 2,
    }
    expiring = json.loads(json.dumps(FREQAI_DOCS_CONFIG))
    expiring["freqai"]["expiration_hours"] = 12
    assert convert(expiring).spec["trust"] == {"expiration_hours": 12.0}
    expiring["freqai"]["fit_live_predictions_candles"] = 300
    ranged = convert(expiring).spec
    assert ranged["lifetime"] == {"fit_live_predictions_candles": 300, "purge_old_models": 2}
    expiring["freqai"]["continual_learning"] = True
    continual = convert(expiring).spec["lifetime"]
    assert continual == {
        "continual_learning": True,
        "fit_live_predictions_candles": 300,
        "purge_old_models": 2,
    }
    assert parse_experiment(ranged, source="t").lifetime.fit_live_predictions_candles == 300
    other = convert(FREQAI_DOCS_CONFIG, model="ReinforcementLearner").report
    assert "no ReinforcementLearner here yet" in next(
        r.note for r in other if r.key == "freqaimodel"
    )
    for freqai_model, kind in (
        ("XGBoostRegressor", "xgboost"),
        ("CatboostClassifier", "catboost"),
        ("SKLearnRandomForestClassifier", "random_forest"),
    ):
        booster = json.loads(json.dumps(FREQAI_DOCS_CONFIG))
        booster["freqai"]["model_training_parameters"] = {"n_estimators": 50, "n_jobs": 4}
        if kind == "catboost":
            booster["freqai"]["model_training_parameters"] = {"iterations": 50, "depth": 4}
        imported = convert(booster, model=freqai_model)
        spec = parse_experiment(imported.spec, source="t")  # a spec that loads
        assert spec.model.kind == kind
        trainer = [r for r in imported.report if r.key.endswith(".n_jobs")]
        assert all("set by the trainer" in r.note for r in trainer)
    # FreqAI's PyTorch models: the documented model_kwargs / trainer_kwargs, renamed
    torch_config = json.loads(json.dumps(FREQAI_DOCS_CONFIG))
    torch_config["freqai"]["conv_width"] = 30
    torch_config["freqai"]["model_training_parameters"] = {
        "learning_rate": 3e-4,
        "trainer_kwargs": {"n_steps": 5000, "batch_size": 64, "n_epochs": None},
        "model_kwargs": {"hidden_dim": 512, "dropout_percent": 0.2, "n_layer": 1},
    }
    transformer = convert(torch_config, model="PyTorchTransformerRegressor")
    assert parse_experiment(transformer.spec, source="t").model.params == {
        "learning_rate": 3e-4,
        "batch_size": 64,
        "d_model": 512,
        "dropout": 0.2,
        "num_layers": 1,
        "sequence_length": 30,
        "validation_fraction": 0.25,
    }
    notes = {r.key: r.note for r in transformer.report}
    assert notes["freqai.model_training_parameters.trainer_kwargs.n_steps"].startswith("trains")
    mlp = convert(torch_config, model="PyTorchMLPClassifier").spec
    assert (
        mlp["model"]["params"]["hidden_size"] == 512
        and "sequence_length" not in mlp["model"]["params"]
    )


def test_what_cannot_be_placed_is_one_clear_error() -> None:
    with pytest.raises(SpecError, match="no freqai section"):
        convert({"timeframe": "1h"})
    no_windows = json.loads(json.dumps(FREQAI_DOCS_CONFIG))
    del no_windows["freqai"]["train_period_days"]
    with pytest.raises(SpecError, match="train_period_days"):
        convert(no_windows)


@pytest.mark.slow
def test_the_docs_config_converts_and_trains_walk_forward_offline(
    tmp_path: Path, cli: Callable[..., CliResult]
) -> None:
    userdir = tmp_path / "ud"
    for seed, pair in enumerate(("BTC/USDT", "ETH/USDT"), start=3):
        import_synthetic(userdir, pair, candles=24 * 120, seed=seed, start="2020-01-01")
    config = tmp_path / "config_freqai.json"
    config.write_text("// a comment line, as Freqtrade allows\n" + json.dumps(FREQAI_DOCS_CONFIG))
    out = tmp_path / "imported.toml"
    result = cli("import-freqai", config, "--out", out)
    assert result.code == 0, result.err
    printed = " ".join(result.out.split())  # the table wraps to the terminal's width
    assert "settings mapped, 1 not (freqai.enabled)" in printed
    written = tomllib.loads(out.read_text())
    assert written["walk_forward"]["folds"] == 4
    assert written["features"]["include_shifted_candles"] == 2
    again = cli("import-freqai", config, "--out", out)
    assert again.code == 2 and "exists" in again.err  # a spec is never overwritten

    trained = train(load_experiment(out), context=local_context(userdir))
    assert trained.folds == 4
    first = trained.out_of_sample["date"].min()
    assert f"{first:%Y%m%d}" == "20200301"  # FreqAI's first backtest window
    assert {"always_long", "sma50_daily"} <= set(trained.baselines)
