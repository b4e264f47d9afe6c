"""`tradingbot retrain`: refit on the latest candles, promote only what is not worse."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from common.layout import UserDir
from ml.tracking import configure, default_tracking_uri
from tests.conftest import CliResult, import_synthetic, local_context

SPEC = """
name = "re_m"
seed = 4

[data]
pair = "BTC/USDT"
timerange = "20210101-20210301"

[regime]
n_restarts = 1
n_iter = 20

[model]
kind = "lightgbm"
params = { n_estimators = 15, num_leaves = 5 }

[walk_forward]
folds = 1
test_size = 300
"""


def test_retrain_applies_its_rule_and_records_it(
    tmp_path: Path, cli: Callable[..., CliResult]
) -> None:
    userdir = tmp_path / "ud"
    import_synthetic(userdir, "BTC/USDT", candles=1900, seed=8)
    spec = tmp_path / "re.toml"
    spec.write_text(SPEC)
    client = configure(default_tracking_uri(userdir), UserDir(userdir))

    first = cli("retrain", spec, "--userdir", userdir)  # no champion yet: promoted
    assert first.code == 0, first.err
    assert "rule: promote the new version if" in first.out and "no champion yet" in first.out
    champion = client.get_model_version_by_alias("re_m", "champion")
    run = client.get_run(champion.run_id)
    # the latest candles: the spec's end is dropped
    assert run.data.tags["data.last"].startswith("2021-03-21")

    # the champion now knows every candle: nothing unseen to compare on, it stays
    again = cli("retrain", spec, "--userdir", userdir)
    assert again.code == 0, again.err
    assert "champion kept" in again.out and "too few to compare" in again.out
    assert str(client.get_model_version_by_alias("re_m", "champion").version) == str(
        champion.version
    )
    newest = client.get_model_version_by_alias("re_m", "challenger")
    tags = client.get_run(newest.run_id).data.tags
    assert tags["retrain.decision"].startswith(
        "kept champion: only 1 candle(s) after"
    )  # the last has no target
    assert tags["retrain.champion_version"] == str(champion.version)
    assert "not worse than the champion's" in tags["retrain.rule"]


def test_retrain_compares_on_candles_neither_model_has_seen(
    tmp_path: Path, cli: Callable[..., CliResult]
) -> None:
    from experiments.spec import load_experiment
    from experiments.training import train
    from experiments.training.retrain import retrain
    from ml.registry import promote

    userdir = tmp_path / "ud"
    import_synthetic(userdir, "BTC/USDT", candles=1900, seed=9)
    spec_path = tmp_path / "re.toml"
    spec_path.write_text(SPEC)
    spec = load_experiment(spec_path)
    uri = default_tracking_uri(userdir)
    old = train(spec, context=local_context(userdir, uri))  # up to 2021-03-01
    client = configure(uri, UserDir(userdir))
    promote(client, "re_m", old.version, "first", user="pytest", force=True)

    result = retrain(spec, context=local_context(userdir, uri))
    assert result.compared_candles == 300  # the new fold's test window, all after 2021-03-01
    assert (
        result.challenger_return_over_drawdown is not None
        and result.champion_return_over_drawdown is not None
    )
    champion = str(client.get_model_version_by_alias("re_m", "champion").version)
    assert champion == str(result.trained.version if result.promoted else old.version)
    decision = client.get_run(result.trained.run_id).data.tags["retrain.decision"]
    assert decision.startswith("promoted: " if result.promoted else "kept champion: ")
    assert "on 300 candles neither had seen" in decision
