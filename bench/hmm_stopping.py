"""Benchmark: where the regime HMM's EM stops, and what that costs and decides.

Data: bench/pairs.py's 10 pairs (Freqtrade's 5m test candles, from 2018-01-12) and its
walk-forward: 6 rolling folds of 6 days' training and 2 days' test candles, the regime
columns and settings of its spec (3 states, 2 random starts in the first fold, later
folds warm-started from the fold before). Each stopping rule fits its own chain:

* today's: stop when an iteration gains less than 1e-4 in total log-likelihood, at
  most 100 iterations (``RegimeHMM``'s and ``[regime] n_iter``'s defaults);
* per candle: stop below 1e-5 nats x the training candles, at most 100 iterations;
* converged (the reference): below 1e-9, at most 2,000 iterations.

Printed per rule, over the 60 fits: seconds per fit, EM iterations, the share of fits
that hit the iteration cap, and the share of test candles whose regime decision differs
from the converged chain's.

A second table compares hmmlearn's two forward-backward implementations under today's
rule on the same 60 training windows, each fitted from the same two random starts:
log space (hmmlearn's default) and scaled probabilities (what ``RegimeHMM`` runs, see
``ml.models.regime.fit_em``): seconds per fit, EM iterations, the share of fits whose
iteration count differs, and the largest difference of the fitted log-likelihoods per
candle.

    .venv/bin/python bench/hmm_stopping.py
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from hmmlearn.hmm import GaussianHMM  # noqa: E402

from bench.backtest_vs_freqai import CANDLES_PER_DAY, DATA, lightgbm_spec  # noqa: E402
from bench.pairs import PAIRS  # noqa: E402
from features.pipeline import build  # noqa: E402
from ml.models.regime import RegimeHMM  # noqa: E402

FOLDS, TRAIN_DAYS, TEST_DAYS = 6, 6, 2
# name: (tolerance, or None for per candle; iteration cap)
RULES: dict[str, tuple[float | None, int]] = {
    "today: 1e-4 in total, 100 iterations": (1e-4, 100),
    "per candle: 1e-5 x candles, 100 iterations": (None, 100),
    "converged: 1e-9, 2,000 iterations": (1e-9, 2000),
}


def regime_rows(pair: str) -> np.ndarray:
    spec = lightgbm_spec("hmm_stopping", {"pairs": list(PAIRS)})
    candles = pd.read_feather(DATA / f"{pair.replace('/', '_')}-5m.feather")
    candles = candles[candles["date"] >= pd.Timestamp("2018-01-12", tz="UTC")]
    features = build(candles.reset_index(drop=True), spec.feature_spec)
    x = features[list(spec.training.regime.columns)].to_numpy(dtype="float64")
    return x[np.isfinite(x).all(axis=1)]


def chain(x: np.ndarray, tol: float | None, cap: int) -> list[tuple[float, int, np.ndarray]]:
    """Each fold's (seconds, EM iterations, test-candle decisions) for one rule."""
    train, test = TRAIN_DAYS * CANDLES_PER_DAY, TEST_DAYS * CANDLES_PER_DAY
    previous, out = None, []
    for fold in range(FOLDS):
        start = fold * test
        rows = x[start : start + train + test]
        model = RegimeHMM(
            n_states=3,
            n_restarts=2,
            n_iter=cap,
            tol=1e-5 * train if tol is None else tol,
            random_state=0,
            init_from=previous,
        )
        began = time.perf_counter()
        model.fit(rows[:train])
        seconds = time.perf_counter() - began
        out.append((seconds, model.em_iterations_, model.predict(rows)[train:]))
        previous = model
    return out


def implementations(x: np.ndarray) -> dict[str, list[tuple[float, int, float]]]:
    """Each training window's cold fits (seconds, EM iterations, log-likelihood per candle)
    by each hmmlearn implementation, from the same random starts."""
    train, test = TRAIN_DAYS * CANDLES_PER_DAY, TEST_DAYS * CANDLES_PER_DAY
    out: dict[str, list[tuple[float, int, float]]] = {"log": [], "scaling": []}
    for fold in range(FOLDS):
        rows = x[fold * test : fold * test + train]
        z = (rows - rows.mean(axis=0)) / rows.std(axis=0)
        for seed in (0, 1):
            for implementation, fits in out.items():
                model = GaussianHMM(3, "full", n_iter=100, tol=1e-4, random_state=seed)
                model.implementation = implementation
                began = time.perf_counter()
                model.fit(z)
                seconds = time.perf_counter() - began
                model.implementation = "log"
                fits.append((seconds, model.monitor_.iter, model.score(z) / len(z)))
    return out


def main() -> None:
    if not DATA.exists():
        sys.exit(f"needs Freqtrade's test candles in {DATA}")
    fits: dict[str, list[tuple[float, int, np.ndarray]]] = {name: [] for name in RULES}
    by_implementation: dict[str, list[tuple[float, int, float]]] = {"log": [], "scaling": []}
    for pair in PAIRS:
        x = regime_rows(pair)
        for name, (tol, cap) in RULES.items():
            fits[name] += chain(x, tol, cap)
        for implementation, rows in implementations(x).items():
            by_implementation[implementation] += rows
    reference = [decisions for _, _, decisions in fits[list(RULES)[-1]]]
    print(
        f"data: {len(PAIRS)} pairs 5m from 2018-01-12, {FOLDS} rolling folds of "
        f"{TRAIN_DAYS} d training / {TEST_DAYS} d test, {len(reference)} fits per rule"
    )
    print(f"{'stopping rule':<46}{'s/fit':>7}{'iters':>7}{'capped':>8}{'differs':>9}")
    for name, (_, cap) in RULES.items():
        seconds = np.mean([s for s, _, _ in fits[name]])
        iterations = [i for _, i, _ in fits[name]]
        capped = np.mean([i >= cap for i in iterations])
        differs = np.mean(
            [np.mean(d != r) for (_, _, d), r in zip(fits[name], reference, strict=True)]
        )
        print(f"{name:<46}{seconds:>7.3f}{np.mean(iterations):>7.1f}{capped:>8.0%}{differs:>9.1%}")

    log, scaled = by_implementation["log"], by_implementation["scaling"]
    print(f"\nhmmlearn implementation, today's rule, {len(log)} cold fits from the same starts")
    print(
        f"{'implementation':<46}{'s/fit':>7}{'iters':>7}{'other iters':>13}{'max dLL/candle':>16}"
    )
    iteration_differs = np.mean([a[1] != b[1] for a, b in zip(log, scaled, strict=True)])
    largest = max(abs(a[2] - b[2]) for a, b in zip(log, scaled, strict=True))
    for name, rows in (("log space (hmmlearn's default)", log), ("scaled (RegimeHMM)", scaled)):
        seconds, iterations = np.mean([r[0] for r in rows]), np.mean([r[1] for r in rows])
        other = f"{iteration_differs:.1%}" if rows is scaled else ""
        gap = f"{largest:.1e}" if rows is scaled else ""
        print(f"{name:<46}{seconds:>7.3f}{iterations:>7.1f}{other:>13}{gap:>16}")


if __name__ == "__main__":
    main()
