"""A non-editable install (``pip install .``) has its strategies and runs a backtest.

The package is built from a copy of the source tree and installed into a fresh virtual
environment, whose dependencies come from this environment's site-packages (added as a
plain path, so this checkout's editable install is not on it). The backtest then runs
from an unrelated directory: nothing can come from the checkout.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from tests.conftest import import_synthetic, run_in_own_group

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def _source_copy(target: Path) -> Path:
    listed = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    for name in listed:
        source = ROOT / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)
    return target


def _run(command: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return run_in_own_group(command, cwd=cwd, env=env)


@pytest.mark.skipif(shutil.which("git") is None, reason="git lists the files of the source tree")
def test_a_wheel_install_runs_a_backtest_with_the_shipped_strategies(tmp_path: Path) -> None:
    source = _source_copy(tmp_path / "src")
    venv = tmp_path / "venv"
    # without pip and setuptools of its own: both come from this environment (a recent
    # setuptools, that builds wheels without the wheel package)
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    purelib = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    (Path(purelib) / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    work = tmp_path / "elsewhere"
    work.mkdir()
    installed = _run(
        [
            str(python),
            "-m",
            "pip",
            "install",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            str(source),
        ],
        work,
        env,
    )
    assert installed.returncode == 0, installed.stdout[-3000:]
    where = _run([str(python), "-c", "import strategies; print(strategies.__file__)"], work, env)
    assert where.stdout.strip().startswith(purelib), where.stdout  # not the checkout
    shipped = _run(
        [str(python), "-c", "from strategies.install import SHIPPED_STRATEGIES as s; print(s)"],
        work,
        env,
    )
    assert shipped.stdout.strip() == str(venv / "share" / "tradingbot" / "strategies"), shipped

    userdir = work / "ud"
    import_synthetic(userdir, "BTC/USDT", candles=1500, seed=11)
    done = _run(
        [
            str(venv / "bin" / "tradingbot"),
            "backtest",
            "--strategy",
            "TrendPullbackStrategy",
            "--pair",
            "BTC/USDT",
            "--timeframe",
            "1h",
            "--timerange",
            "20210115-20210301",
            "--userdir",
            str(userdir),
        ],
        work,
        env,
    )
    assert done.returncode == 0, done.stdout[-3000:]
    assert "journal:" in done.stdout and "positions added" in done.stdout
    installed_strategy = userdir / "strategies" / "TrendPullbackStrategy.py"
    assert (
        installed_strategy.read_bytes()
        == (ROOT / "user_data" / "strategies" / "TrendPullbackStrategy.py").read_bytes()
    )
    assert (userdir / "strategies" / "compositions" / "TrendPullbackStrategy.toml").exists()
