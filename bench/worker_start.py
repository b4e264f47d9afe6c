"""Benchmark: what a local pool worker's first job costs beyond its later ones, by what
the pool's fork server preloads.

Data and spec: bench/pairs.py's (Freqtrade's 5m test candles, LightGBM and the regime
HMM per fold). For each preload, a fresh Python process (the fork server is one per
process) makes a one-worker pool, starts its fork server (``warm``) while it creates the
tracking store, and trains 4 pairs in that worker, one after another; each job is timed
inside the worker. Printed: the wait from the pool's first job submitted to its start
in the worker (the fork server's imports not yet done), the first job, and the mean of
the other three.

* nothing: every import happens in the first job;
* the libraries: the training modules, LightGBM and hmmlearn (session 16's list);
* ``experiments.preload``: what the CLI's workers start with (the libraries, the regime
  filter's compiled kernel, MLflow's installed-package map).

    .venv/bin/python bench/worker_start.py
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

PRELOADS: dict[str, tuple[str, ...]] = {
    "nothing": (),
    "the libraries": ("experiments.training.whitelist", "lightgbm", "hmmlearn.hmm"),
    "experiments.preload (the CLI's)": ("experiments.preload",),
}
PAIRS = 4


@dataclass(frozen=True)
class Timed:
    """A job that also says when it started and ended (wall clock, seconds)."""

    job: Any

    def run(self) -> tuple[float, float, Any]:
        began = time.time()
        result = self.job.run()
        return began, time.time(), result


def measure(preload: Sequence[str]) -> dict[str, Any]:
    """In this process: the pool's first-job wait and each job's seconds. As the CLI
    does, the fork server starts before this process imports the training modules."""
    from common.executors import ProcessPool

    spans: list[tuple[float, float]] = []
    submitted: list[float] = []

    class TimedPool(ProcessPool):
        def run_all(
            self, jobs: Sequence[Any], *, on_done: Callable[..., None] | None = None
        ) -> list[Any]:
            submitted.append(time.time())
            timed = super().run_all([Timed(job) for job in jobs])
            spans.extend((began, ended) for began, ended, _ in timed)
            return [result for _, _, result in timed]

    with tempfile.TemporaryDirectory() as tmp, TimedPool(1, preload) as pool:
        pool.warm()
        from bench.backtest_vs_freqai import import_test_candles, lightgbm_spec
        from bench.pairs import PAIRS as WHITELIST
        from common.context import RunContext
        from experiments.training import train_whitelist
        from ml.tracking import default_tracking_uri

        userdir = import_test_candles(Path(tmp), WHITELIST[:PAIRS])
        spec = lightgbm_spec("worker_start", {"pairs": list(WHITELIST[:PAIRS])})
        context = RunContext(userdir, default_tracking_uri(userdir), os.environ)
        train_whitelist(spec, context=context, executor=pool)
    seconds = [ended - began for began, ended in spans]
    return {"wait": spans[0][0] - submitted[0], "first": seconds[0], "later": seconds[1:]}


def main() -> None:
    if len(sys.argv) > 1:  # the child: one preload
        print(json.dumps(measure(json.loads(sys.argv[1]))))
        return
    from bench.backtest_vs_freqai import DATA

    if not DATA.exists():
        sys.exit(f"needs Freqtrade's test candles in {DATA}")
    rows = []
    for label, preload in PRELOADS.items():
        child = subprocess.run(
            [sys.executable, __file__, json.dumps(preload)],
            capture_output=True,
            text=True,
            check=True,
        )
        figures = json.loads(child.stdout.strip().splitlines()[-1])
        rows.append((label, figures))
    print(f"data: {PAIRS} pairs of bench/pairs.py, 5m; one worker, jobs one after another")
    print(f"{'fork server preloads':<34}{'wait s':>8}{'first job s':>13}{'later jobs s':>14}")
    for label, figures in rows:
        later = sum(figures["later"]) / len(figures["later"])
        print(f"{label:<34}{figures['wait']:>8.2f}{figures['first']:>13.2f}{later:>14.2f}")


if __name__ == "__main__":
    main()
