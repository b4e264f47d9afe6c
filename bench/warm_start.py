"""Benchmark: warm-started walk-forward regime fits against cold ones, on the seeded
synthetic market whose true regimes are known.

For each seed, the same walk-forward (6 rolling folds of 3,000 training and 800 test
hourly candles, LightGBM with 10 trees: the forecaster hardly matters here) is run
with ``[regime] warm_start`` off (every fold: 3 random EM starts) and on (folds after
the first start EM once from the previous fold's HMM). Printed per run: the
out-of-sample accuracy of the regime decision against the truth, its switches per
1,000 candles, and the wall time of the walk-forward.

    .venv/bin/python bench/warm_start.py [--seeds 3 4 5]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from experiments.spec import parse_experiment  # noqa: E402
from features.data.synthetic import default_market, generate  # noqa: E402
from features.pipeline import build  # noqa: E402
from ml import regime_memo  # noqa: E402
from ml.fold_training import TrainingJob, walk_forward  # noqa: E402


def run(candles: pd.DataFrame, truth: np.ndarray, warm: bool) -> tuple[float, float, float]:
    regime_memo._fits.clear()  # every run fits for itself
    regime_memo._readouts.clear()
    spec = parse_experiment(
        {
            "name": "warm",
            "seed": 1,
            "regime": {"warm_start": warm, "n_restarts": 3},
            "model": {"kind": "lightgbm", "params": {"n_estimators": 10}},
            "walk_forward": {"folds": 6, "scheme": "rolling", "train_size": 3000, "test_size": 800},
        },
        source="bench",
    )
    features = build(candles, spec.feature_spec)
    job = TrainingJob.single(
        name="warm",
        candles=candles,
        features=features,
        feature_spec=spec.feature_spec,
        config=spec.training,
        pair="BTC/USDT",
        timeframe="1h",
        seed=1,
    )
    names = np.array([r.name for r in default_market().regimes])
    start = time.perf_counter()
    predictions = pd.concat([result.predictions for result in walk_forward(job)])
    seconds = time.perf_counter() - start
    decided = predictions["regime"].to_numpy()
    accuracy = float((decided == names[truth][predictions.index]).mean())
    switches = 1000.0 * float((decided[1:] != decided[:-1]).mean())
    return accuracy, switches, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[3, 4, 5])
    args = parser.parse_args()
    print(f"{'seed':<6}{'warm start':<12}{'accuracy':>10}{'switches/1000':>15}{'seconds':>9}")
    totals = {False: 0.0, True: 0.0}
    for seed in args.seeds:
        candles, truth = generate(8000, seed=seed)
        candles["date"] = pd.date_range(
            "2020-01-01", periods=len(candles), freq="1h", tz="UTC"
        ).astype("datetime64[ns, UTC]")
        for warm in (False, True):
            accuracy, switches, seconds = run(candles, truth, warm)
            totals[warm] += seconds
            print(
                f"{seed:<6}{'on' if warm else 'off':<12}{accuracy:>10.4f}{switches:>15.1f}{seconds:>9.1f}"
            )
    print(f"walk-forward time, warm / cold: {totals[True] / totals[False]:.2f}x")


if __name__ == "__main__":
    main()
