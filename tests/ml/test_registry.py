"""The registry's rules (ml/registry.py): what a version's description says, which URI
serves which version, and promotions refused with a reason."""

from __future__ import annotations

from pathlib import Path

import pytest

from common.layout import UserDir
from ml.evaluation import evaluation_of, metric, run_summary
from ml.model_source import RegistryError, served_version
from ml.registry import promote
from ml.tracking import configure, default_tracking_uri

WALK_FORWARD = {
    "overall.total_return": 0.42,
    "overall.max_drawdown": 0.2,
    "overall.calmar": 1.5,
    "overall.sharpe": 1.1,
    "baseline.always_long.total_return": 0.8,
    "baseline.always_long.max_drawdown": 0.55,
    "baseline.sma50_daily.profit_total": 0.3,
}


def test_a_description_puts_the_model_beside_buy_and_hold_and_sma50() -> None:
    assert evaluation_of(WALK_FORWARD) == ("overall.", "walk-forward", "walk-forward out of sample")
    assert metric(WALK_FORWARD, "baseline.sma50_daily.", "total_return") == 0.3  # either name
    assert metric(WALK_FORWARD, "overall.", "winrate") is None
    summary = run_summary(WALK_FORWARD).splitlines()
    assert summary[0] == (
        "Walk-forward out of sample: return 42.0%, max drawdown 20.0%, Calmar 1.50, Sharpe 1.10."
    )
    assert summary[1].startswith("Buy and hold on the same candles: return 80.0%")
    assert summary[2] == "SMA50 daily on the same candles: return 30.0%."
    assert run_summary({"loss": 1.0}) == ""
    tuned = {"test.profit_total": 0.1, "validation.profit_total": 0.2}
    assert evaluation_of(tuned) == ("test.", "tune test", "held-out test window")


def test_served_version_reads_numbered_uris_without_a_registry() -> None:
    assert served_version("models:/btc/3") == ("btc", "3")
    assert served_version("runs:/abc/model") is None
    assert served_version("models:/btc/latest") is None


def test_promotions_are_refused_with_the_reason(tmp_path: Path) -> None:
    userdir = tmp_path / "ud"
    client = configure(default_tracking_uri(userdir), UserDir(userdir))
    with pytest.raises(RegistryError, match="no model named 'ghost'"):
        promote(client, "ghost", 1, "because")
    client.create_registered_model("half")
    client.create_model_version("half", source=str(tmp_path / "nothing"))
    with pytest.raises(RegistryError, match="has no version 7"):
        promote(client, "half", 7, "because")
    with pytest.raises(RegistryError, match="has no @challenger"):
        promote(client, "half", None, "because")
    with pytest.raises(RegistryError, match="needs a reason"):
        promote(client, "half", 1, "  ")
    with pytest.raises(RegistryError, match="never completely registered"):
        promote(client, "half", 1, "because")
    with pytest.raises(Exception, match="champion"):
        client.get_model_version_by_alias("half", "champion")  # nothing moved


def test_the_gate_compares_with_buy_and_hold_on_the_same_candles() -> None:
    """Issue 24: a model that does worse than buy and hold is not promoted quietly.
    Calmar where the window allows it, the window's return over drawdown below 90 days."""
    from ml.evaluation import promotion_gate

    losing = WALK_FORWARD | {"baseline.always_long.calmar": 2.0}
    assert not promotion_gate(losing).passed
    assert "Calmar 1.50, below buy and hold's 2.00" in promotion_gate(losing).reason
    assert promotion_gate(WALK_FORWARD | {"baseline.always_long.calmar": 1.2}).passed
    short = {  # a tuning test window of 25 days: no Calmar recorded
        "test.profit_total": -0.05,
        "test.return_over_drawdown": -0.5,
        "test.baseline.always_long.return_over_drawdown": 0.8,
    }
    verdict = promotion_gate(short)
    assert not verdict.passed and "return over max drawdown -0.50" in verdict.reason
    assert not promotion_gate({"overall.calmar": 3.0}).passed  # nothing to compare with
    assert not promotion_gate({}).passed


def test_promote_refuses_a_version_that_loses_to_buy_and_hold_unless_forced(
    tmp_path: Path,
) -> None:
    import mlflow

    from ml.registry import GATE_TAG, check_promotion

    userdir = tmp_path / "ud"
    client = configure(default_tracking_uri(userdir), UserDir(userdir))
    with mlflow.start_run() as run:
        mlflow.log_metrics(WALK_FORWARD | {"baseline.always_long.calmar": 2.0})
    client.create_registered_model("loser")
    client.create_model_version("loser", source=str(tmp_path / "nothing"), run_id=run.info.run_id)
    with pytest.raises(RegistryError, match=r"below buy and hold's 2\.00") as refused:
        promote(client, "loser", 1, "looks fine")
    assert "--force" in (refused.value.hint or "")
    version, gate = check_promotion(client, "loser", 1, force=True)
    assert not gate.passed and str(version.version) == "1"
    # forced, it gets as far as loading the model (absent here): the gate let it through
    with pytest.raises(RegistryError, match="does not load"):
        promote(client, "loser", 1, "on purpose: a hedge", force=True)
    assert GATE_TAG == "tradingbot.gate"
