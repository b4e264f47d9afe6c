"""Shipped strategies installed into a user dir like a package's config files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from strategies.install import MANIFEST, SHIPPED_STRATEGIES, install_strategies

SHIPPED = sorted(p.name for p in SHIPPED_STRATEGIES.glob("*.py")) + sorted(
    f"compositions/{p.name}" for p in (SHIPPED_STRATEGIES / "compositions").glob("*.toml")
)


def test_missing_files_are_copied_and_a_second_run_changes_nothing(tmp_path: Path) -> None:
    first = install_strategies(tmp_path)
    assert first.copied == SHIPPED
    for name in SHIPPED:
        assert (tmp_path / "strategies" / name).read_bytes() == (
            SHIPPED_STRATEGIES / name
        ).read_bytes()
    again = install_strategies(tmp_path)
    assert again.copied == again.updated == again.kept_edited == []


def test_an_edited_copy_is_kept_and_an_untouched_older_one_updated(tmp_path: Path) -> None:
    install_strategies(tmp_path)
    folder = tmp_path / "strategies"
    edited, older = folder / "RegimeStrategy.py", folder / "RegimeRulesStrategy.py"
    edited.write_text(edited.read_text() + "\n# my change\n")
    # an untouched copy of an older release: its file and the manifest agree
    older.write_text("# release 0.1\n")
    manifest = json.loads((folder / MANIFEST).read_text())
    import hashlib

    manifest[older.name] = hashlib.sha256(older.read_bytes()).hexdigest()
    (folder / MANIFEST).write_text(json.dumps(manifest))

    done = install_strategies(tmp_path)
    assert done.kept_edited == ["RegimeStrategy.py"]
    assert done.updated == ["RegimeRulesStrategy.py"]
    assert edited.read_text().endswith("# my change\n")
    assert older.read_bytes() == (SHIPPED_STRATEGIES / older.name).read_bytes()


def test_the_repositorys_own_user_data_is_left_alone() -> None:
    done = install_strategies(SHIPPED_STRATEGIES.parent)
    assert done.copied == done.updated == done.kept_edited == []
    assert not (SHIPPED_STRATEGIES / MANIFEST).exists()


def test_a_strategy_is_one_toml_file(tmp_path: Path) -> None:
    """A composition dropped into <userdir>/strategies/compositions becomes a strategy
    Freqtrade loads, with its declared parameters; a bad one is refused by name."""
    from freqtrade.resolvers import StrategyResolver

    from common.errors import SpecError

    install_strategies(tmp_path)
    folder = tmp_path / "strategies"
    (folder / "compositions" / "MyTrend.toml").write_text(
        "[strategy]\n"
        'name = "MyTrend"\n'
        'doc = "Long above the 30-candle average."\n'
        'entry = ["trend_filter"]\n'
        'exit = ["trend_break", "time_stop"]\n'
        "[strategy.parameters]\n"
        "sma_window = 30\n"
    )
    assert install_strategies(tmp_path).generated == ["MyTrend.py"]
    strategy = StrategyResolver.load_strategy(
        {
            "strategy": "MyTrend",
            "strategy_path": str(folder),
            "user_data_dir": tmp_path,
            "stake_currency": "USDT",
            "dry_run": True,
        }
    )
    assert strategy.sma_window.value == 30 and strategy.max_candles.value == 48
    assert install_strategies(tmp_path).generated == []  # nothing changed
    (folder / "compositions" / "MyTrend.toml").unlink()
    install_strategies(tmp_path)
    assert not (folder / "MyTrend.py").exists()  # a generated class goes with its TOML
    (folder / "compositions" / "Broken.toml").write_text('[strategy]\nname = "Broken"\n')
    with pytest.raises(SpecError, match=r"Broken\.toml: .*entry"):
        install_strategies(tmp_path)
