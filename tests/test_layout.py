"""The user-dir layout is named once (common.layout): no other module spells a path of it."""

from __future__ import annotations

import ast
from pathlib import Path

from common.layout import UserDir

ROOT = Path(__file__).resolve().parents[1]
# file and folder names only the layout may spell
NAMES = {
    "mlflow.db",
    "mlartifacts",
    "optuna.db",
    "strategies_registry.sqlite",
    "backtest_results",
    "tradesv3.dryrun.sqlite",
    "tradesv3.live.sqlite",
    "tradesv3.replay.sqlite",
}


def _spellings(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    return [
        f"{path.relative_to(ROOT)}:{node.lineno}: {node.value!r}"
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and id(node) not in docstrings
        and node.value in NAMES
    ]


def test_no_module_but_the_layout_spells_a_user_dir_path() -> None:
    found = [
        spelled
        for package in ("common", "features", "ml", "strategies", "experiments", "tradingbot")
        for path in sorted((ROOT / package).rglob("*.py"))
        if path != ROOT / "common" / "layout.py"
        for spelled in _spellings(path)
    ]
    assert found == []


def test_the_layout_names_what_freqtrade_and_the_stores_expect(tmp_path: Path) -> None:
    layout = UserDir(tmp_path)
    assert layout.mlflow_db == tmp_path / "mlflow.db"
    assert layout.data("binance") == tmp_path / "data" / "binance"
    assert layout.market_snapshot("binance") == tmp_path / "markets" / "binance.json"
    assert layout.walk_forward("abc").parent == layout.backtests / "walk_forward"
    assert layout.trades_db(live=False).name == "tradesv3.dryrun.sqlite"
    assert not any(tmp_path.iterdir())  # asking for a path creates nothing


def test_a_prepared_user_dir_leaves_freqtrade_no_folder_to_create(tmp_path: Path) -> None:
    """Freqtrade creates a missing folder of its user dir after checking that nothing is
    in its place: two backtests starting at once in a new user dir raced there (a
    scorecard's markets on two Ray workers, 'exists already and is not a directory')."""
    from freqtrade.configuration.directory_operations import create_userdata_dir

    from strategies.runner import ensure_freqtrade_userdir

    ensure_freqtrade_userdir(UserDir(tmp_path))
    before = sorted(p.name for p in tmp_path.iterdir())
    create_userdata_dir(str(tmp_path), create_dir=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == before
