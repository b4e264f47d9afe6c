"""Whitelist specs: one model per pair, one parent run, one naming rule."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

from experiments.spec import load_experiment, model_name, parse_experiment
from features.data import import_candles
from features.data.synthetic import generate
from features.errors import SpecError
from ml.tracking import configure, default_tracking_uri
from tests.conftest import CliResult

PAIRS = ("ETH/USDT", "XRP/USDT")
SPEC = """
name = "wl_lgbm"
seed = 3

[data]
pairs = ["ETH/USDT", "XRP/USDT"]
timeframe = "1h"

[regime]
n_restarts = 1
n_iter = 20

[model]
kind = "lightgbm"
params = { n_estimators = 20, num_leaves = 7, min_child_samples = 20 }

[walk_forward]
folds = 1
test_size = 400
"""


def _import(userdir: Path, tmp: Path, pair: str, seed: int, candles: int = 2000) -> None:
    frame, _ = generate(candles, seed=seed)
    frame["date"] = pd.date_range("2021-01-01", periods=candles, freq="1h", tz="UTC").astype(
        "datetime64[ns, UTC]"
    )
    source = tmp / f"{pair.replace('/', '_')}.feather"
    frame.to_feather(source)
    import_candles(source, pair=pair, timeframe="1h", exchange="binance", userdir=userdir)


def test_spec_pairs_are_checked_and_name_one_model_each(tmp_path: Path) -> None:
    spec = parse_experiment(
        {"name": "w", "data": {"pairs": list(PAIRS)}, "model": {"kind": "lightgbm"}},
        source="t",
    )
    assert spec.data.whitelist == PAIRS and spec.is_whitelist
    one = spec.for_pair("XRP/USDT")
    assert one.name == model_name("w", "XRP/USDT") == "w__XRP_USDT"
    assert one.data.pair == "XRP/USDT" and not one.is_whitelist
    assert spec.with_overrides(pair="ETH/USDT").name == "w__ETH_USDT"
    with pytest.raises(SpecError, match="not in the whitelist"):
        spec.for_pair("BTC/USDT")
    for data, message in (
        ({"pair": "BTC/USDT", "pairs": ["ETH/USDT"]}, "either pair or pairs"),
        ({"pairs": ["ETH/USDT", "ETH/USDT"]}, "ETH/USDT more than once"),
        ({"pairs": ["ETHUSDT"]}, "not a pair: write BASE/QUOTE"),
    ):
        with pytest.raises(SpecError, match=message):
            parse_experiment({"name": "w", "data": data, "model": {"kind": "lightgbm"}}, source="t")
    # a single-pair spec keeps its hash (studies and caches made before whitelists)
    single = parse_experiment({"name": "s", "model": {"kind": "lightgbm"}}, source="t")
    assert "pairs" not in single.model_dump_json(exclude_defaults=True)
    assert (
        single.hash
        == parse_experiment(
            {"name": "s", "data": {"pair": "BTC/USDT"}, "model": {"kind": "lightgbm"}}, source="t"
        ).hash
    )


def test_a_missing_pair_is_named_before_anything_is_recorded(
    tmp_path: Path, cli: Callable[..., CliResult]
) -> None:
    userdir = tmp_path / "ud"
    _import(userdir, tmp_path, "ETH/USDT", seed=1, candles=600)
    spec = tmp_path / "wl.toml"
    spec.write_text(SPEC)
    result = cli("train", spec, "--userdir", userdir)
    assert result.code == 2 and "XRP/USDT" in result.err and "ETH/USDT" not in result.err
    assert not (userdir / "mlflow.db").exists()


@pytest.mark.slow
def test_train_fits_one_model_per_pair_under_one_parent_run(
    tmp_path: Path, cli: Callable[..., CliResult]
) -> None:
    userdir = tmp_path / "ud"
    for seed, pair in enumerate(PAIRS, start=11):
        _import(userdir, tmp_path, pair, seed)
    spec_path = tmp_path / "wl.toml"
    spec_path.write_text(SPEC)
    result = cli("train", spec_path, "--userdir", userdir)
    assert result.code == 0, result.err
    assert "wl_lgbm__ETH_USDT" in result.out and "wl_lgbm__XRP_USDT" in result.out

    client = configure(default_tracking_uri(userdir), userdir)
    experiment = client.get_experiment_by_name("wl_lgbm")
    runs = client.search_runs([experiment.experiment_id])
    parents = [r for r in runs if r.data.tags.get("whitelist") == "ETH/USDT,XRP/USDT"]
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    parent = parents[0]
    pair_runs = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert sorted(r.data.tags["pair"] for r in pair_runs) == list(PAIRS)
    assert {"ETH_USDT.calmar", "XRP_USDT.calmar"} <= set(parent.data.metrics)
    for pair in PAIRS:
        name = model_name("wl_lgbm", pair)
        version = client.get_model_version_by_alias(name, "challenger")
        run = client.get_run(version.run_id)
        assert run.data.tags["pair"] == pair and run.info.experiment_id == experiment.experiment_id

    # the whitelist's name promotes every pair's challenger
    promoted = cli("promote", "wl_lgbm", "--reason", "first whitelist", "--userdir", userdir)
    assert promoted.code == 0, promoted.err
    for pair in PAIRS:
        champion = client.get_model_version_by_alias(model_name("wl_lgbm", pair), "champion")
        assert champion.tags["promotion_reason"] == "first whitelist"
    refused = cli("promote", "wl_lgbm", "--version", "1", "--reason", "x", "--userdir", userdir)
    assert refused.code == 2 and "whitelist of 2 models" in refused.err
    # --pair trains one pair of the whitelist under its own name
    assert load_experiment(spec_path).with_overrides(pair="XRP/USDT").name == "wl_lgbm__XRP_USDT"
