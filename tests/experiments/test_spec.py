"""Experiment specs (experiments/spec.py): time ranges, whitelists, the registry-name rule,
stable hashes, trial parameters, and clear errors for bad files."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from common.errors import SpecError
from experiments.spec import load_experiment, parse_experiment
from features.timerange import TimeRange
from ml.model_uris import model_name

ROOT = Path(__file__).resolve().parents[2]
SPECS = ROOT / "experiments" / "specs"


def test_timerange_is_freqtrades_with_open_ends_in_utc() -> None:
    both = TimeRange.parse("20200101-20200301")
    assert both.start == datetime(2020, 1, 1, tzinfo=UTC) and both.end == datetime(
        2020, 3, 1, tzinfo=UTC
    )
    assert str(both) == "20200101-20200301"
    assert TimeRange.parse("-20200301").start is None and TimeRange.parse("").end is None
    for bad, reason in (
        ("2020", "invalid timerange"),
        ("20201301-", "invalid date"),
        ("20200301-20200101", "ends before"),
    ):
        with pytest.raises(SpecError, match=reason):
            TimeRange.parse(bad)


def test_a_whitelist_spec_gives_one_named_spec_per_pair() -> None:
    spec = parse_experiment(
        {
            "name": "w",
            "model": {"kind": "lightgbm"},
            "data": {"pairs": ["ETH/BTC", "LTC/BTC"], "timeframe": "5m"},
        },
        source="test",
    )
    assert spec.is_whitelist and spec.data.pair == "ETH/BTC"
    eth = spec.for_pair("ETH/BTC")
    assert eth.name == model_name("w", "ETH/BTC") == "w__ETH_BTC"
    assert not eth.is_whitelist and eth.data.timeframe == "5m"
    with pytest.raises(SpecError, match="not in the whitelist"):
        spec.for_pair("XRP/BTC")
    single = parse_experiment({"name": "s", "model": {"kind": "rules"}}, source="test")
    assert single.for_pair(single.data.pair) is single


def test_the_hash_follows_the_content_and_not_the_order() -> None:
    a = parse_experiment({"name": "h", "seed": 1, "model": {"kind": "lightgbm"}}, source="a")
    b = parse_experiment({"model": {"kind": "lightgbm"}, "seed": 1, "name": "h"}, source="b")
    assert a.hash == b.hash
    assert (
        parse_experiment({"name": "h", "seed": 2, "model": {"kind": "lightgbm"}}, source="c").hash
        != a.hash
    )


def test_the_shipped_specs_keep_the_hashes_of_earlier_releases() -> None:
    """Tuned specs hash as they did before [tune] strategy_parameters existed: a study or
    a registered model made from them is still recognised."""
    hashes = {path.name: load_experiment(path).hash for path in sorted(SPECS.glob("*.toml"))}
    assert hashes == {
        "btc_1h_hmm_lstm.toml": "c5821d21b689b444",
        "btc_1h_lightgbm.toml": "0f32e01f577dade0",
        "btc_1h_lstm.toml": "4033936f702ef6c4",
        "btc_1h_regime_allocation.toml": "f21b2d62fd4f7e3f",
        "btc_1h_regime_allocation_sized.toml": "020a02f0e76adcf2",
        "btc_1h_rules.toml": "67a8c89b2f646654",
        "btc_1h_volatility.toml": "6dff12b874478f93",  # since its model became har (issue 25)
    }


def test_trial_parameters_make_a_checked_spec_without_tune() -> None:
    spec = load_experiment(SPECS / "btc_1h_lightgbm.toml")
    trial = spec.with_params({"model.params.num_leaves": 9, "strategy.entry_threshold": 0.6})
    assert trial.tune is None and trial.model.params["num_leaves"] == 9
    with pytest.raises(SpecError, match="regime"):
        spec.with_params({"regime.n_states": 0})


def test_overrides_are_validated() -> None:
    spec = load_experiment(SPECS / "btc_1h_lightgbm.toml")
    assert spec.with_overrides(timeframe="4h").data.timeframe == "4h"
    with pytest.raises(SpecError, match="invalid override"):
        spec.with_overrides(pair="BTCUSDT")


def test_bad_files_name_the_file_and_the_fix(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="not found") as missing:
        load_experiment(tmp_path / "none.toml")
    assert "experiments/specs" in str(missing.value)
    broken = tmp_path / "broken.toml"
    broken.write_text("name = \n")
    with pytest.raises(SpecError, match=r"broken\.toml: not valid TOML"):
        load_experiment(broken)
    unknown = tmp_path / "unknown.toml"
    unknown.write_text('name = "u"\n[model]\nkind = "prophet"\n')
    with pytest.raises(SpecError, match=r"unknown\.toml"):
        load_experiment(unknown)
