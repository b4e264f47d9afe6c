"""Shipped strategies installed into a user dir like a package's config files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from common.layout import UserDir
from strategies.install import MANIFEST, SHIPPED_STRATEGIES, install_strategies

SHIPPED = sorted(p.name for p in SHIPPED_STRATEGIES.glob("*.py")) + sorted(
    f"compositions/{p.name}" for p in (SHIPPED_STRATEGIES / "compositions").glob("*.toml")
)


def test_missing_files_are_copied_and_a_second_run_changes_nothing(tmp_path: Path) -> None:
    first = install_strategies(UserDir(tmp_path))
    assert first.copied == SHIPPED
    for name in SHIPPED:
        assert (tmp_path / "strategies" / name).read_bytes() == (
            SHIPPED_STRATEGIES / name
        ).read_bytes()
    again = install_strategies(UserDir(tmp_path))
    assert again.copied == again.updated == again.kept_edited == []


def test_an_edited_copy_is_kept_and_an_untouched_older_one_updated(tmp_path: Path) -> None:
    install_strategies(UserDir(tmp_path))
    folder = tmp_path / "strategies"
    edited, older = folder / "RegimeStrategy.py", folder / "RegimeRulesStrategy.py"
    edited.write_text(edited.read_text() + "\n# my change\n")
    # an untouched copy of an older release: its file and the manifest agree
    older.write_text("# release 0.1\n")
    manifest = json.loads((folder / MANIFEST).read_text())
    import hashlib

    manifest[older.name] = hashlib.sha256(older.read_bytes()).hexdigest()
    (folder / MANIFEST).write_text(json.dumps(manifest))

    done = install_strategies(UserDir(tmp_path))
    assert done.kept_edited == ["RegimeStrategy.py"]
    assert done.updated == ["RegimeRulesStrategy.py"]
    assert edited.read_text().endswith("# my change\n")
    assert older.read_bytes() == (SHIPPED_STRATEGIES / older.name).read_bytes()


def test_the_repositorys_own_user_data_is_left_alone() -> None:
    done = install_strategies(UserDir(SHIPPED_STRATEGIES.parent))
    assert done.copied == done.updated == done.kept_edited == []
    assert not (SHIPPED_STRATEGIES / MANIFEST).exists()


def test_a_strategy_is_one_toml_file(tmp_path: Path) -> None:
    """A composition dropped into <userdir>/strategies/compositions becomes a strategy
    Freqtrade loads, with its declared parameters; a bad one is refused by name."""
    from freqtrade.resolvers import StrategyResolver

    from common.errors import SpecError

    install_strategies(UserDir(tmp_path))
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
    assert install_strategies(UserDir(tmp_path)).generated == ["MyTrend.py"]
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
    assert install_strategies(UserDir(tmp_path)).generated == []  # nothing changed
    (folder / "compositions" / "MyTrend.toml").unlink()
    install_strategies(UserDir(tmp_path))
    assert not (folder / "MyTrend.py").exists()  # a generated class goes with its TOML
    (folder / "compositions" / "Broken.toml").write_text('[strategy]\nname = "Broken"\n')
    installed = install_strategies(UserDir(tmp_path))  # a bad file never stops the other strategies
    assert not (folder / "Broken.py").exists() and (folder / "RegimeStrategy.py").exists()
    from strategies.composition import composition_error

    error = composition_error(folder, "Broken")
    assert isinstance(error, SpecError) and "Broken.toml: entry" in str(error)
    assert installed.generated == []


def _composition(folder: Path, name: str, **fields: str) -> Path:
    lines = [f'name = "{name}"', 'entry = ["trend_filter"]']
    lines += [f"{key} = {value}" for key, value in fields.items()]
    path = folder / "compositions" / f"{name}.toml"
    path.write_text("[strategy]\n" + "\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_no_text_of_a_composition_becomes_code(tmp_path: Path) -> None:
    """A doc ending in a backslash once closed the generated docstring early and ran
    what followed when Freqtrade imported the file."""
    install_strategies(UserDir(tmp_path))
    folder = tmp_path / "strategies"
    marker = tmp_path / "pwned"
    code = f"import pathlib; pathlib.Path({str(marker)!r}).touch()"
    # a TOML literal string (no escapes): the doc ends in a backslash and holds code
    payload = "'''ok\\\"\"\"\n" + code + "\n\"\"\"\\'''"
    path = _composition(folder, "Sneaky", doc=payload)
    assert "import pathlib" in path.read_text()
    install_strategies(UserDir(tmp_path))
    generated = (folder / "Sneaky.py").read_text()
    assert "pathlib" not in generated and "doc" not in generated
    compile(generated, "Sneaky.py", "exec")
    namespace: dict[str, object] = {"__file__": str(folder / "Sneaky.py")}
    exec(generated, namespace)
    assert not marker.exists()
    assert "import pathlib" in str(namespace["Sneaky"].__doc__)  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("name", "content", "error"),
    [
        ("class", None, "Python keyword"),
        ("ComposedStrategy", None, "Tradingbot's or Freqtrade's classes"),
        ("RegimeAllocationStrategy", None, "not built from this composition"),
        (
            "Latin",
            b'[strategy]\nname = "Latin"\ndoc = "caf\xe9"\nentry = ["trend_filter"]\n',
            "UTF-8",
        ),
        ("Deep", b"x = " + b"[" * 50_000 + b"]" * 50_000, "bytes"),
        ("Nested", b"x = " + b"[" * 5_000 + b"]" * 5_000, "nested too deeply"),
        ("Huge", b'[strategy]\ndoc = "' + b"a" * 100_000 + b'"\n', "at most 65,536"),
        ("Folder", "dir", "not a regular file"),
        (
            "Remote",
            b'[strategy]\nname = "Remote"\nentry = ["trend_filter"]\nmodel = "/tmp/x.pkl"\n',
            "not a registry URI",
        ),
    ],
)
def test_a_bad_composition_is_named_and_left_out(
    tmp_path: Path, name: str, content: bytes | str | None, error: str
) -> None:
    from common.errors import SpecError
    from strategies.composition import composition_error

    install_strategies(UserDir(tmp_path))
    folder = tmp_path / "strategies"
    path = folder / "compositions" / f"{name}.toml"
    if content is None:
        _composition(folder, name)
    elif content == "dir":
        path.mkdir()
    else:
        assert isinstance(content, bytes)
        path.write_bytes(content)
    install_strategies(UserDir(tmp_path))  # no traceback, the other strategies stay
    assert (folder / "TrendPullbackStrategy.py").exists()
    found = composition_error(folder, name)
    assert isinstance(found, SpecError) and error in str(found), found
    if name != "RegimeAllocationStrategy":
        assert not (folder / f"{name}.py").exists()
    else:  # the shipped file stays the shipped file
        assert "GuardedStrategy" in (folder / f"{name}.py").read_text()
