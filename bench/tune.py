"""Benchmark: what pruning saves, and how trials per minute scale with worker processes.

Everything runs through the real ``tradingbot tune`` path (``experiments.tuning.tune``:
journal storage, MLflow child runs, the final refit and registration), each
configuration in its own fresh user dir, on the real BTC/USDT 1h candles
(2019-01-01..2020-06-01; a seeded synthetic market of the same size without
../shared/data). The model is a small LightGBM with a 3-state HMM; the objective is
the replayed RegimeStrategy Sharpe (``--objective``, e.g. log_loss) over 6
walk-forward folds (``--folds``; the 4,800 validation candles are the same for any
number of folds).

1. Pruning: per seed of the spec (sampler and models), a study of ``--trials`` trials
   without a pruner sets the target: its best value, and the model fits (one per fold
   run) it spent until it first got there. Then, from the same space and seed, a study
   with the median pruner, one with the 25th-percentile pruner (a trial survives a
   fold only in the top 25%) and one with Hyperband (successive halving brackets over
   the folds) each run, 10 trials at a time (resumed), until a trial reaches the
   target or they have spent as many fits as the whole unpruned study: pruning buys
   more trials for the same fits, so a pruned study gets those trials. The ratio is
   the unpruned fits to the target over the pruned fits to the target; a pruned
   study that never got there counts at its bound (unpruned fits to the target over
   all it spent, <= 1). Geometric mean over seeds; target >= 3x fewer. Then, from the
   unpruned studies, how well the value after the first k folds predicts the final
   value (Spearman over the trials): what any pruner can know when it decides.
2. Throughput: trials per minute with 1 and with 2 worker processes (no pruner).

    .venv/bin/python bench/tune.py [--trials 30] [--seeds 11 12 13 14 15] [--throughput-trials 10]
        [--pruners median percentile hyperband] [--objective sharpe] [--folds 6]
        [--skip-pruning] [--skip-throughput]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from common.context import RunContext
from common.layout import UserDir

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import optuna  # noqa: E402
from scipy.stats import spearmanr  # noqa: E402

from experiments.spec import parse_experiment  # noqa: E402
from experiments.tuning.request import TuneRequest  # noqa: E402
from experiments.tuning.storage import open_storage  # noqa: E402
from experiments.tuning.study import tune  # noqa: E402
from features.data import import_candles  # noqa: E402
from features.data.synthetic import generate  # noqa: E402
from ml.tracking import default_tracking_uri  # noqa: E402

REAL = ROOT.parent / "shared" / "data" / "binance-csv" / "Binance_BTCUSDT_1h.csv.gz"
FOLDS = 6  # default; --folds changes it, the validation rows stay the same
VALIDATION_ROWS = 4800  # the last 4,800 candles of the tuning window, split into the folds
STARTUP_TRIALS = 5  # trials every pruner lets finish before it prunes
CHUNK = 10  # trials a pruned study adds at a time while it looks for the unpruned best


def spec(pruner: str, name: str, seed: int, objective: str, folds: int) -> Any:
    timerange = "20190101-20200601" if REAL.exists() else None
    return parse_experiment(
        {
            "name": name,
            "seed": seed,
            "data": {"pair": "BTC/USDT", "timeframe": "1h", "timerange": timerange},
            "regime": {"n_states": 3, "n_restarts": 1, "n_iter": 50},
            "model": {
                "kind": "lightgbm",
                "params": {"n_estimators": 60, "min_child_samples": 100},
            },
            "walk_forward": {"folds": folds, "test_size": VALIDATION_ROWS // folds},
            "tune": {
                "objective": objective,
                "pruner": pruner,
                "startup_trials": STARTUP_TRIALS,
                "test_fraction": 0.2,
                "space": {
                    "model.params.num_leaves": {"type": "int", "low": 3, "high": 63},
                    "model.params.learning_rate": {
                        "type": "float",
                        "low": 0.01,
                        "high": 0.3,
                        "log": True,
                    },
                    "strategy.entry_threshold": {
                        "type": "float",
                        "low": 0.50,
                        "high": 0.60,
                        "step": 0.01,
                    },
                    "strategy.exit_threshold": {
                        "type": "float",
                        "low": 0.40,
                        "high": 0.50,
                        "step": 0.01,
                    },
                    "strategy.stoploss": {
                        "type": "float",
                        "low": -0.15,
                        "high": -0.02,
                        "step": 0.01,
                    },
                },
            },
        },
        source="bench/tune.py",
    )


def userdir(root: Path, label: str) -> Path:
    path = root / label
    if REAL.exists():
        import_candles(
            REAL, pair="BTC/USDT", timeframe="1h", exchange="binance", layout=UserDir(path)
        )
    else:
        candles, _ = generate(12_500, seed=5)  # 2020-01-01 onwards: the timerange is dropped
        source = root / "synthetic.feather"
        candles.to_feather(source)
        import_candles(
            source, pair="BTC/USDT", timeframe="1h", exchange="binance", layout=UserDir(path)
        )
    return path


def trials_span(study: optuna.Study) -> float:
    """Seconds from the first trial's start to the last trial's end (no set-up, no refit)."""
    starts = [t.datetime_start for t in study.trials if t.datetime_start]
    ends = [t.datetime_complete for t in study.trials if t.datetime_complete]
    return (max(ends) - min(starts)).total_seconds()


def request_for(
    directory: Path,
    label: str,
    pruner: str,
    trials: int,
    jobs: int,
    seed: int,
    objective: str,
    folds: int,
) -> TuneRequest:
    return TuneRequest(
        spec=spec(pruner, f"bench_{label}", seed, objective, folds),
        context=RunContext(directory, default_tracking_uri(directory), os.environ),
        trials=trials,
        jobs=jobs,
    )


def tuned(request: TuneRequest) -> tuple[optuna.Study, float]:
    """Run ``tune``; the study as stored and the command's wall time."""
    started = time.perf_counter()
    tune(request)
    wall = time.perf_counter() - started
    storage = open_storage(None, request.context.layout)
    return optuna.load_study(study_name=request.spec.name, storage=storage), wall


def run(
    root: Path,
    label: str,
    pruner: str,
    trials: int,
    jobs: int,
    seed: int,
    objective: str = "sharpe",
    folds: int = FOLDS,
) -> tuple[optuna.Study, float]:
    directory = userdir(root, label)
    return tuned(request_for(directory, label, pruner, trials, jobs, seed, objective, folds))


def run_until(
    root: Path,
    label: str,
    pruner: str,
    seed: int,
    objective: str,
    folds: int,
    target: float,
    budget: int,
) -> tuple[optuna.Study, float]:
    """Resume the study ``CHUNK`` trials at a time until a complete trial reaches
    ``target`` or the study has spent ``budget`` fits; wall time summed."""
    directory = userdir(root, label)
    trials, wall = 0, 0.0
    while True:
        trials += CHUNK
        request = request_for(directory, label, pruner, trials, 1, seed, objective, folds)
        study, seconds = tuned(request)
        wall += seconds
        if fits_to_reach(study, target) is not None or total_fits(study) >= budget:
            return study, wall
        if trials >= budget:  # every trial failed before its first fit: give up
            return study, wall


def total_fits(study: optuna.Study) -> int:
    return sum(int(t.user_attrs.get("fits", 0)) for t in study.trials)


def at_least(study: optuna.Study, value: float, target: float) -> bool:
    """``value`` is as good as ``target`` in the study's direction."""
    if study.direction == optuna.study.StudyDirection.MAXIMIZE:
        return value >= target
    return value <= target


def fits_to_reach(study: optuna.Study, target: float) -> int | None:
    """Model fits spent (in trial order) until a complete trial first reached ``target``."""
    spent = 0
    for trial in sorted(study.trials, key=lambda t: t.number):
        spent += int(trial.user_attrs.get("fits", 0))
        complete = trial.state == optuna.trial.TrialState.COMPLETE
        if complete and trial.value is not None and at_least(study, trial.value, target):
            return spent
    return None


def early_value_correlation(study: optuna.Study) -> list[float]:
    """Spearman correlation, over the complete trials of an unpruned study, between the
    value reported after fold k and the final value: how much a pruner can know at k."""
    trials = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    final = np.array([t.value for t in trials])
    return [
        float(spearmanr([t.intermediate_values[step] for t in trials], final).statistic)
        for step in range(len(trials[0].intermediate_values))
    ]


def pruning(
    root: Path, trials: int, seeds: list[int], pruners: list[str], objective: str, folds: int
) -> tuple[dict[str, list[float]], dict[str, int]]:
    """Per seed: the unpruned study sets the target; each pruned study runs until it
    reaches it or has spent the unpruned study's fits.

    Returns the ratios per pruner, and per pruner in how many seeds it reached the
    target (otherwise its ratio is its bound)."""
    print(
        f"\n{'seed':<6}{'pruner':<12}{'trials':>8}{'pruned':>8}{'fits':>7}{'best':>9}"
        f"{'fits to target':>16}{'ratio':>8}{'wall s':>9}"
    )
    ratios: dict[str, list[float]] = {pruner: [] for pruner in pruners}
    reached = dict.fromkeys(pruners, 0)
    correlations = []
    for seed in seeds:
        plain, wall = run(root, f"plain{seed}", "none", trials, 1, seed, objective, folds)
        correlations.append(early_value_correlation(plain))
        target, budget = plain.best_value, total_fits(plain)
        plain_fits = fits_to_reach(plain, target)
        assert plain_fits is not None  # its best trial is complete
        print(
            f"{seed:<6}{'no pruner':<12}{len(plain.trials):>8}{0:>8}{budget:>7}"
            f"{plain.best_value:>9.4f}{plain_fits:>16}{'':>8}{wall:>9.1f}",
            flush=True,
        )
        for pruner in pruners:
            study, wall = run_until(
                root, f"{pruner}{seed}", pruner, seed, objective, folds, target, budget
            )
            fits = fits_to_reach(study, target)
            if fits is None:  # never got there: the most it could have saved
                ratio, shown, cell = plain_fits / max(total_fits(study), 1), "never", "<="
            else:
                ratio, shown, cell = plain_fits / fits, str(fits), ""
                reached[pruner] += 1
            ratios[pruner].append(ratio)
            n_pruned = sum(t.state == optuna.trial.TrialState.PRUNED for t in study.trials)
            print(
                f"{seed:<6}{pruner:<12}{len(study.trials):>8}{n_pruned:>8}{total_fits(study):>7}"
                f"{study.best_value:>9.4f}{shown:>16}{cell + f'{ratio:.2f}x':>8}{wall:>9.1f}",
                flush=True,
            )
    direction = "higher" if plain.direction == optuna.study.StudyDirection.MAXIMIZE else "lower"
    print(
        f"values: {objective} on the validation folds ({direction} is better); target: "
        "the unpruned study's best; wall s includes each resumed run's refit"
    )
    print(
        "\nhow well the value after the first k folds predicts the final value "
        "(Spearman over each unpruned study's trials):"
    )
    print(f"{'seed':<6}" + "".join(f"{f'k={k + 1}':>8}" for k in range(folds)))
    for seed, row in zip(seeds, correlations, strict=True):
        print(f"{seed:<6}" + "".join(f"{rho:>8.2f}" for rho in row))
    mean = np.mean(correlations, axis=0)
    print(f"{'mean':<6}" + "".join(f"{rho:>8.2f}" for rho in mean))
    return ratios, reached


def throughput(root: Path, trials: int) -> dict[int, float]:
    rates = {}
    print()
    for jobs in (1, 2):
        study, wall = run(root, f"jobs{jobs}", "none", trials, jobs, 11)
        span = trials_span(study)
        rates[jobs] = len(study.trials) / span * 60.0
        print(
            f"{jobs} worker(s): {len(study.trials)} trials in {span:.1f} s "
            f"(first start to last end) = {rates[jobs]:.2f} trials/min; "
            f"whole command {wall:.1f} s with set-up and the final refit",
            flush=True,
        )
    return rates


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--trials", type=int, default=30)
    parser.add_argument("--seeds", type=int, nargs="+", default=[11, 12, 13, 14, 15])
    parser.add_argument("--throughput-trials", type=int, default=10)
    parser.add_argument(
        "--pruners",
        nargs="+",
        choices=["median", "percentile", "hyperband"],
        default=["median", "percentile", "hyperband"],
    )
    parser.add_argument(
        "--objective",
        default="sharpe",
        help="the [tune] objective of the pruning studies (e.g. sharpe, log_loss)",
    )
    parser.add_argument(
        "--folds",
        type=int,
        default=FOLDS,
        help=f"walk-forward folds of the pruning studies ({VALIDATION_ROWS} validation candles in all)",
    )
    parser.add_argument("--skip-pruning", action="store_true")
    parser.add_argument("--skip-throughput", action="store_true")
    args = parser.parse_args()
    data = "real BTC/USDT 1h" if REAL.exists() else "synthetic (no ../shared/data)"
    print(
        f"data: {data}; pruning studies: objective {args.objective}, {args.folds} walk-forward "
        f"folds of {VALIDATION_ROWS // args.folds} candles; {os.cpu_count()} CPUs"
    )
    summary = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        if not args.skip_pruning:
            ratios, reached = pruning(
                root, args.trials, args.seeds, args.pruners, args.objective, args.folds
            )
            for label, values in ratios.items():
                mean = float(np.exp(np.mean(np.log(values))))  # every ratio is > 0
                summary.append(
                    f"{label} {mean:.2f}x (geometric mean of {', '.join(f'{v:.2f}' for v in values)}; "
                    f"reached the unpruned best in {reached[label]} of {len(values)} seeds, "
                    "the others at their bound)"
                )
            summary[-1] += "; target >= 3x"
        if not args.skip_throughput:
            rates = throughput(root, args.throughput_trials)
            summary.append(
                f"trials/min {rates[1]:.2f} with 1 worker, {rates[2]:.2f} with 2 "
                f"({rates[2] / rates[1]:.2f}x)"
            )
    print(
        "SUMMARY fits saved by pruning, to the unpruned study's best value: " + "; ".join(summary)
    )


if __name__ == "__main__":
    main()
