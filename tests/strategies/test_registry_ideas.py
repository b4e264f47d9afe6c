"""Strategy registry (from source) and the idea -> decision workflow."""

from __future__ import annotations

import sqlite3
import subprocess
from collections.abc import Callable
from pathlib import Path

from mlflow.tracking import MlflowClient

from common.layout import UserDir
from ml.tracking import configure, default_tracking_uri
from strategies.catalogue import introspect
from tests.conftest import CliResult

ROOT = Path(__file__).resolve().parents[2]


def test_introspection_reads_the_real_strategies() -> None:
    strategies = {s.name: s for s in introspect(ROOT / "user_data" / "strategies")}
    assert set(strategies) == {
        "RegimeAllocationStrategy",
        "RegimeStrategy",
        "RegimeRulesStrategy",
        "FreqaiRegimeStrategy",
        "TrendPullbackStrategy",
    }
    allocation = strategies["RegimeAllocationStrategy"]
    assert allocation.model == "models:/btc_1h_regime_allocation@champion"
    assert "confirm_trade_entry" in allocation.methods
    regime = strategies["RegimeStrategy"]
    assert regime.timeframe == "1h" and regime.stoploss == -0.05
    assert regime.model == "models:/btc_1h_hmm_lstm@champion"
    assert {(p.name, p.default, p.space) for p in regime.parameters} == {
        ("entry_threshold", 0.55, "buy"),
        ("exit_threshold", 0.47, "sell"),
    }
    assert {"&-p_up", "&-regime", "do_predict"} <= set(regime.uses_columns)
    assert regime.entry_blocks == ["model_probability", "regime_filter", "regime_sizing"]
    rules = strategies["RegimeRulesStrategy"]  # the base class's methods are listed too
    assert rules.model == "models:/btc_1h_rules@champion" and rules.timeframe == "1h"
    assert not rules.parameters and "confirm_trade_entry" in rules.methods
    assert {"&-prediction", "do_predict"} <= set(rules.uses_columns)
    assert strategies["TrendPullbackStrategy"].uses_columns == []  # no model
    assert strategies["FreqaiRegimeStrategy"].indicators == ["NATR", "ROC", "RSI"]


def test_sync_and_the_decision_workflow(cli: Callable[..., CliResult], tmp_path: Path) -> None:
    userdir, docs = tmp_path / "ud", tmp_path / "docs"
    synced = cli("strategies", "sync", "--docs", docs, "--userdir", userdir)
    assert synced.code == 0, synced.err
    assert "| `RegimeStrategy` | 1h |" in (docs / "STRATEGY_CATALOGUE.md").read_text()
    with sqlite3.connect(userdir / "registry" / "strategies_registry.sqlite") as db:
        assert db.execute("SELECT count(*) FROM strategies").fetchone() == (5,)

    configure(default_tracking_uri(userdir), UserDir(userdir)).create_experiment("regime_gate")
    made = cli(
        "idea",
        "create",
        "--title",
        "Regime gate",
        "--hypothesis",
        "Skipping bear regimes cuts drawdown",
        "--strategy",
        "RegimeStrategy",
        "--experiment",
        "regime_gate",
        "--userdir",
        userdir,
    )
    assert made.code == 0 and "idea #1" in made.out
    assert "#1 [open] Regime gate" in cli("idea", "list", "--userdir", userdir).out
    bad = cli(
        "idea", "decide", "1", "--decision", "maybe", "--rationale", "x", "--userdir", userdir
    )
    assert bad.code == 2 and "unknown decision" in bad.err
    results = docs / "RESULTS.md"
    done = cli(
        "idea",
        "decide",
        "1",
        "--decision",
        "Park",
        "--rationale",
        "needs a longer test window",
        "--results",
        results,
        "--userdir",
        userdir,
    )
    assert done.code == 0, done.err
    assert "#1 [park]" in cli("idea", "list", "--userdir", userdir).out
    text = results.read_text()
    assert "| 1 | Regime gate | RegimeStrategy | regime_gate | park |" in text
    assert "Decision: **park**" in text
    tags = MlflowClient(default_tracking_uri(userdir)).get_experiment_by_name("regime_gate").tags
    assert tags["tradingbot.decision"] == "park: needs a longer test window"
    missing = cli(
        "idea", "decide", "7", "--decision", "reject", "--rationale", "x", "--userdir", userdir
    )
    assert missing.code == 2 and "no idea #7" in missing.err


def test_committed_strategies_doc_is_up_to_date() -> None:
    from strategies.catalogue import markdown

    expected = markdown(introspect(ROOT / "user_data" / "strategies"))
    assert (ROOT / "docs" / "STRATEGY_CATALOGUE.md").read_text() == expected, (
        "run: tradingbot strategies sync"
    )


def test_generated_documents_stay_in_the_user_dir(
    cli: Callable[..., CliResult], tmp_path: Path
) -> None:
    repo_docs = {p: p.stat().st_mtime_ns for p in (ROOT / "docs").glob("*")}
    userdir = tmp_path / "ud"
    assert cli("strategies", "sync", "--userdir", userdir).code == 0
    assert (userdir / "docs" / "STRATEGY_CATALOGUE.md").exists()
    made = cli("idea", "create", "--title", "t", "--hypothesis", "h", "--userdir", userdir)
    assert made.code == 0, made.err
    decided = cli(
        "idea", "decide", "1", "--decision", "park", "--rationale", "r", "--userdir", userdir
    )
    assert decided.code == 0, decided.err
    assert (userdir / "docs" / "RESULTS.md").exists()
    assert {p: p.stat().st_mtime_ns for p in (ROOT / "docs").glob("*")} == repo_docs
    ignored = subprocess.run(
        [
            "git",
            "check-ignore",
            "user_data/backups/x",
            "user_data/mlflow.db.lock",
            "user_data/docs/x",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    if ignored.returncode != 128:  # 128: not a git checkout (an sdist); nothing to check
        assert ignored.stdout.split() == [
            "user_data/backups/x",
            "user_data/mlflow.db.lock",
            "user_data/docs/x",
        ]


def test_an_idea_names_an_experiment_that_exists(
    cli: Callable[..., CliResult], tmp_path: Path
) -> None:
    userdir = tmp_path / "ud"
    args = ("idea", "create", "--title", "t", "--hypothesis", "h", "--userdir", userdir)
    bad = cli(*args, "--experiment", "nope")
    assert bad.code == 2 and "no MLflow experiment named 'nope'" in bad.err
    configure(default_tracking_uri(userdir), UserDir(userdir)).create_experiment("real_one")
    assert cli(*args, "--experiment", "real_one").code == 0


def test_sync_lists_the_users_own_compositions(
    cli: Callable[..., CliResult], tmp_path: Path
) -> None:
    """Before: only the shipped strategies were listed, and a strategy without a model
    was labelled "(FreqAI)"."""
    from strategies.install import install_strategies

    userdir = tmp_path / "ud"
    install_strategies(UserDir(userdir))
    (userdir / "strategies" / "compositions" / "MyBreakout.toml").write_text(
        '[strategy]\nname = "MyBreakout"\ndoc = "Mine."\nentry = ["trend_filter"]\n'
    )
    synced = cli("strategies", "sync", "--userdir", userdir)
    assert synced.code == 0 and "MyBreakout" in synced.out
    catalogue = (userdir / "docs" / "STRATEGY_CATALOGUE.md").read_text()
    rows = {
        line.split("|")[1].strip(): line
        for line in catalogue.splitlines()
        if line.startswith("| `")
    }
    assert "none (candles only)" in rows["`MyBreakout`"]
    assert "none (candles only)" in rows["`TrendPullbackStrategy`"]
    assert "(FreqAI)" in rows["`FreqaiRegimeStrategy`"]
