"""Benchmark: how fast the CLI answers ``--help`` and the user errors that need no work,
and how fast a command's process ends once its work is done.

Each command runs as a user runs it (``.venv/bin/tradingbot`` in a fresh process, no
warm cache but the OS's), five times; the table shows the median and the worst wall
time against the target of 1.5 s. The errors must be found before heavy imports
(torch, MLflow, Freqtrade, LightGBM, Optuna).

The second table: a process that has imported what ``tradingbot train --backtest``
holds at its end (the training pipeline, MLflow, the backtest's modules, Freqtrade's),
timed from its last statement to its end, five times each way: the interpreter's own
ending, which frees every module, and :func:`common.process_end.exit_without_teardown`,
which the ``tradingbot`` command and Freqtrade's wrapper use.

    .venv/bin/python bench/cli_startup.py
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARGET_S = 1.5
REPEATS = 5
# what the command has imported when it ends: its pipeline, the backtest, Freqtrade's
HELD_AT_THE_END = (
    "tradingbot.main",
    "experiments.training",
    "experiments.backtesting.run",
    "freqtrade.optimize.backtesting",
    "strategies.composed",
)
ENDINGS = {
    "the interpreter's own ending": "",
    "exit_without_teardown": (
        "from common.process_end import exit_without_teardown; exit_without_teardown(0)"
    ),
}


def timed(command: list[str]) -> tuple[float, int, str]:
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    return (
        time.perf_counter() - start,
        done.returncode,
        done.stderr.strip().splitlines()[:1][0] if done.stderr.strip() else "",
    )


def main() -> None:
    tradingbot = str(Path(sys.executable).with_name("tradingbot"))
    spec = ROOT / "experiments" / "specs" / "btc_1h_lightgbm.toml"
    with tempfile.TemporaryDirectory() as tmp:
        empty = Path(tmp) / "ud"
        cases = {
            "tradingbot --help": [tradingbot, "--help"],
            "train: missing spec file": [
                tradingbot,
                "train",
                f"{tmp}/none.toml",
                "--userdir",
                str(empty),
            ],
            "train: pair without data": [tradingbot, "train", str(spec), "--userdir", str(empty)],
            "backtest: bad timeframe": [
                tradingbot,
                "backtest",
                "--strategy",
                "RegimeStrategy",
                "--pair",
                "BTC/USDT",
                "--timeframe",
                "7q",
                "--timerange",
                "20200101-20200201",
                "--userdir",
                str(empty),
            ],
        }
        print(f"{'command':<30}{'median s':>10}{'worst s':>10}{'exit':>6}  first line of stderr")
        worst_all = 0.0
        for label, command in cases.items():
            runs = [timed(command) for _ in range(REPEATS)]
            seconds = [r[0] for r in runs]
            worst_all = max(worst_all, max(seconds))
            print(
                f"{label:<30}{statistics.median(seconds):>10.2f}{max(seconds):>10.2f}{runs[0][1]:>6}  {runs[0][2][:60]}"
            )
    verdict = "met" if worst_all < TARGET_S else "NOT met"
    print(f"target: every answer under {TARGET_S} s: {verdict} (worst {worst_all:.2f} s)")
    print()
    print(f"{'a process ends, after':<30}{'median s':>10}{'worst s':>10}")
    for label, ending in ENDINGS.items():
        seconds = [ending_time(ending) for _ in range(REPEATS)]
        print(f"{label:<30}{statistics.median(seconds):>10.2f}{max(seconds):>10.2f}")


def ending_time(ending: str) -> float:
    """Seconds from the last statement of a process holding HELD_AT_THE_END to its end
    (the clock read on both sides is the machine's)."""
    imports = "; ".join(f"import {name}" for name in HELD_AT_THE_END)
    code = f"{imports}; import time; print(time.time(), flush=True); {ending}"
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    ended = time.time()
    return ended - float(done.stdout.split()[0])


if __name__ == "__main__":
    main()
