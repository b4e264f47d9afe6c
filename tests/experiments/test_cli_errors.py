"""Faults of the disk and the store give one-line errors (exit 2), never a traceback."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from common.layout import UserDir
from features.data import import_candles
from features.data.synthetic import generate
from tests.conftest import CliResult


@pytest.fixture
def read_only_userdir(tmp_path: Path) -> Iterator[Path]:
    """A user dir with data, an MLflow store and incidents, then made read-only:
    by permissions for a normal user, by a read-only bind mount for root (which
    permissions do not stop)."""
    from ml.tracking import configure, default_tracking_uri
    from strategies.risk import RiskManager, RiskSettings

    source = tmp_path / "ud"
    generate(600, seed=3)[0].to_feather(tmp_path / "c.feather")
    import_candles(
        tmp_path / "c.feather",
        pair="BTC/USDT",
        timeframe="1h",
        exchange="binance",
        layout=UserDir(source),
    )
    configure(default_tracking_uri(source), UserDir(source))
    RiskManager(RiskSettings.for_userdir(UserDir(source))).record_incident("warning", "t", "x")
    if os.geteuid() != 0:
        for path in [source, *source.rglob("*")]:
            path.chmod(0o555 if path.is_dir() else 0o444)
        try:
            yield source
        finally:
            for path in [source, *source.rglob("*")]:
                path.chmod(0o755 if path.is_dir() else 0o644)
        return
    mount = tmp_path / "ro"
    mount.mkdir()
    mounted = subprocess.run(["mount", "--bind", str(source), str(mount)], capture_output=True)
    if mounted.returncode != 0 or not shutil.which("mount"):
        pytest.skip(f"root without a read-only bind mount here: {mounted.stderr!r}")
    try:
        remount = subprocess.run(
            ["mount", "-o", "remount,bind,ro", str(mount)], capture_output=True
        )
        if remount.returncode != 0:
            pytest.skip(f"cannot remount read-only here: {remount.stderr!r}")
        yield mount
    finally:
        subprocess.run(
            ["umount", "-l", str(mount)], check=False
        )  # lazy: MLflow keeps its file open


COMMANDS = [
    ["risk", "disable"],
    ["backup"],
    ["risk", "enable", "--reason", "x", "--minutes", "5"],
    ["features", "build", "--pair", "BTC/USDT", "--timeframe", "1h", "--out", "{ud}/f.parquet"],
    ["regimes", "--pair", "BTC/USDT", "--timeframe", "1h", "--out", "{ud}/r.csv"],
    ["strategies", "sync"],
    ["idea", "create", "--title", "t", "--hypothesis", "h"],
]


def test_a_read_only_user_dir_gives_one_line_errors(
    read_only_userdir: Path, cli: Callable[..., CliResult]
) -> None:
    for command in COMMANDS:
        args = [a.format(ud=read_only_userdir) for a in command]
        result = cli(*args, "--userdir", read_only_userdir)
        assert result.code == 2, (command, result.err)
        assert "Traceback" not in result.err
        assert "must be writable" in result.err, (command, result.err)


def _commands(group: object, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    import typer.main

    command = typer.main.get_command(group) if not hasattr(group, "commands") else group
    found = [prefix]
    for name, sub in getattr(command, "commands", {}).items():
        found += _commands(sub, (*prefix, name)) if hasattr(sub, "commands") else [(*prefix, name)]
    return found


def test_flags_show_no_value_type_in_any_help(cli: Callable[..., CliResult]) -> None:
    """Before: every flag read `--live <bool>` as if it took a value."""
    from tradingbot import app

    commands = _commands(app)
    assert ("paper",) in commands and ("risk", "enable") in commands
    for command in commands:
        shown = cli(*command, "--help")
        assert shown.code == 0, (command, shown.err)
        assert "<bool>" not in shown.out, command
    assert "--pair" in cli("backtest", "--help").out and "<str>" in cli("backtest", "--help").out


@pytest.mark.parametrize(
    "args",
    [
        ["train", "experiments/specs/btc_1h_lightgbm.toml", "--pair", "XXX/USDT"],
        ["tune", "nope.toml"],
        ["backtest", "--pair", "XXX/USDT", "--timeframe", "1h", "--timerange", "20200101-"],
        ["train", "nope.toml"],
    ],
)
def test_user_errors_come_before_the_heavy_imports(tmp_path: Path, args: list[str]) -> None:
    """Before: a missing pair took 5-7 s to report, behind imports of torch, MLflow and
    Freqtrade. Now it is reported before any of them is imported."""
    from tests.conftest import run_python

    script = (
        "import sys\n"
        "from tradingbot.main import run\n"
        f"code = run([*{args!r}, '--userdir', {str(tmp_path)!r}])\n"
        "heavy = sorted(m for m in ('torch', 'mlflow', 'freqtrade', 'lightgbm', 'optuna') "
        "if m in sys.modules)\n"
        "print('RESULT', code, heavy)\n"
    )
    done = run_python(script)  # its own process group, ended whatever happens
    assert "RESULT 2 []" in done.stdout, done.stdout


def test_help_shows_spec_sections_as_written(cli: Callable[..., CliResult]) -> None:
    """Before: rich read `[data]` as markup and `train --help` said "a whitelist ( pairs)"."""
    shown = " ".join(cli("train", "--help").out.split())
    assert "([data] pairs)" in shown and 'with [data] pooling = "pooled"' in shown
    assert "with a [tune] section" in " ".join(cli("tune", "--help").out.split())


def test_a_composed_strategy_brings_its_timeframe(
    cli: Callable[..., CliResult], tmp_path: Path
) -> None:
    """Before: a 4h composition ran at whatever --timeframe said, silently, and without
    --timeframe the command refused to guess."""
    from strategies.install import install_strategies

    userdir = tmp_path / "ud"
    install_strategies(UserDir(userdir))
    (userdir / "strategies" / "compositions" / "FourHour.toml").write_text(
        '[strategy]\nname = "FourHour"\ntimeframe = "4h"\nentry = ["trend_filter"]\n'
    )
    common = ("--pair", "BTC/USDT", "--timerange", "20210101-20210301", "--userdir", userdir)
    default = cli("backtest", "--strategy", "FourHour", *common)
    assert default.code == 2 and "BTC/USDT 4h" in " ".join(default.err.split())
    asked = cli("backtest", "--strategy", "FourHour", "--timeframe", "1h", *common)
    assert "FourHour is composed for 4h; it runs at 1h" in " ".join(asked.out.split())
    assert asked.code == 2 and "BTC/USDT 1h" in " ".join(asked.err.split())
