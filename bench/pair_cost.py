"""Benchmark: what one pair's training costs, part by part.

Data and spec: bench/pairs.py's (Freqtrade's 5m test candles, 6 rolling folds of 6
days' training and 2 days' test, LightGBM and the regime HMM per fold, then the final
model). One warm process trains a first pair (imports, caches), then 4 more in-process
(``--jobs 1``); the parts are timed by wrapping the functions that do them, and printed
per pair, averaged over the 4. "the rest" is everything not wrapped: reading candles,
features, fold predictions, scores and baselines, the runs' set-up.

    .venv/bin/python bench/pair_cost.py
"""

from __future__ import annotations

import functools
import os
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

import experiments.training.pipeline as pipeline  # noqa: E402
import experiments.training.record as record  # noqa: E402
import ml.bundle as bundle  # noqa: E402
from bench.backtest_vs_freqai import import_test_candles, lightgbm_spec  # noqa: E402
from bench.pairs import PAIRS  # noqa: E402
from common.context import RunContext  # noqa: E402
from common.executors import InProcess  # noqa: E402
from experiments.training import train_whitelist  # noqa: E402
from ml.tracking import default_tracking_uri  # noqa: E402

SECONDS: Counter[str] = Counter()
# part: (module, function) as the training pipeline calls it
PARTS: dict[str, tuple[Any, str]] = {
    "the HMM's EM (7 fits)": (bundle, "fit_regimes"),
    "the forecaster's fits (7 LightGBM)": (bundle, "fit_forecaster"),
    "logging the model": (pipeline, "log_bundle"),
    "registration": (pipeline, "register_finished_run"),
    "records: spec": (record, "log_spec"),
    "records: folds": (record, "log_fold"),
    "records: out-of-sample": (record, "log_out_of_sample"),
    "records: final model": (record, "log_final"),
}


def _timed(part: str, function: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(function)
    def timed(*args: Any, **kwargs: Any) -> Any:
        began = time.perf_counter()
        try:
            return function(*args, **kwargs)
        finally:
            SECONDS[part] += time.perf_counter() - began

    return timed


def main() -> None:
    for part, (module, name) in PARTS.items():
        setattr(module, name, _timed(part, getattr(module, name)))
    measured = PAIRS[1:5]
    with tempfile.TemporaryDirectory() as tmp:
        userdir = import_test_candles(Path(tmp), PAIRS[:5])
        context = RunContext(userdir, default_tracking_uri(userdir), os.environ)
        warm = lightgbm_spec("pair_cost_warm", {"pairs": [PAIRS[0]]})
        train_whitelist(warm, context=context, executor=InProcess())
        SECONDS.clear()
        began = time.perf_counter()
        spec = lightgbm_spec("pair_cost", {"pairs": list(measured)})
        train_whitelist(spec, context=context, executor=InProcess())
        total = (time.perf_counter() - began) / len(measured)
    print(f"data: {', '.join(measured)} 5m, bench/pairs.py's spec; one warm process")
    print(f"{'part of a pair':<40}{'s':>8}")
    for part in PARTS:
        print(f"{part:<40}{SECONDS[part] / len(measured):>8.2f}")
    rest = total - sum(SECONDS.values()) / len(measured)
    print(f"{'the rest':<40}{rest:>8.2f}")
    print(f"{'a pair in all':<40}{total:>8.2f}")


if __name__ == "__main__":
    main()
