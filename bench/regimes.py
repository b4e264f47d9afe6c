"""Measure the regime model's choices on the seeded synthetic market with known regimes.

1. Which features: accuracy of the fitted, filtered regime decision on a held-out
   segment for several regime feature sets, next to the Bayes-optimal causal
   classifier (forward filter with the true generating parameters).
2. Which persistence control: switches per 1,000 candles and accuracy for plain
   argmax, hysteresis margins and a minimum dwell, next to the true regime's
   switch rate.

3. How fast the forward filter runs: time per candle of the compiled filter
   (``ml.filtering``) for 3 states, batch and one candle at a time as live trading
   calls it, beside the Python loop it replaced, in the same run (target: <= 1 us
   per candle in batch).

4. What training on one thread costs: a 3-state HMM fit and read-out on 3,000 candles
   with BLAS and OpenMP on one thread (as ``ml.models.regime_base.one_thread`` runs
   it, for the same digits on every machine) beside all the machine's threads.

The last line of part 2 is the chosen configuration's accuracy gap to Bayes and its
switch ratio to the truth (targets: within 3 points, at most 1.5x).

    .venv/bin/python bench/regimes.py [--candles 16000] [--seeds 3 4]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import halfnorm, norm

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from features.data.synthetic import MarketParams, default_market, generate  # noqa: E402
from features.feature_spec import parse_spec  # noqa: E402
from features.pipeline import build  # noqa: E402
from ml.filtering import (  # noqa: E402
    ForwardFilter,
    forward_filter,
    hysteresis,
    switches_per_1000,
)
from ml.models.regime import RegimeHMM  # noqa: E402

FEATURE_SETS = {
    "return, sqrt wick, log volume": ["log_return", "sqrt_wick", "log_volume"],
    "return, log range, log volume": ["log_return", "log_range", "log_volume"],
    "return, upper+lower wick, log volume": [
        "log_return",
        "upper_wick",
        "lower_wick",
        "log_volume",
    ],
    "return, sqrt wick": ["log_return", "sqrt_wick"],
    "return, log volume": ["log_return", "log_volume"],
}


def bayes(candles: pd.DataFrame, params: MarketParams) -> np.ndarray:
    o, h, low, c, v = (candles[k].to_numpy() for k in ("open", "high", "low", "close", "volume"))
    r = params.regimes
    loglik = (
        norm.logpdf(np.log(c / o)[:, None], [x.return_mean for x in r], [x.return_std for x in r])
        + halfnorm.logpdf(np.log(h / np.maximum(o, c))[:, None], scale=[x.wick_std for x in r])
        + halfnorm.logpdf(np.log(np.minimum(o, c) / low)[:, None], scale=[x.wick_std for x in r])
        + norm.logpdf(
            np.log(v)[:, None], [x.log_volume_mean for x in r], [x.log_volume_std for x in r]
        )
    )
    return np.exp(
        forward_filter(loglik, np.asarray(params.transition), np.full(len(r), 1 / len(r)))
    )


def features(candles: pd.DataFrame, kinds: list[str]) -> np.ndarray:
    spec = parse_spec({"features": [{"kind": k, "windows": [1]} for k in kinds]})
    return build(candles, spec).drop(columns="date").to_numpy()


def dwell(probabilities: np.ndarray, minimum: int) -> np.ndarray:
    out, current, since = np.empty(len(probabilities), dtype=np.int64), -1, 0
    for t, row in enumerate(probabilities):
        best = int(np.argmax(row))
        if current < 0 or (best != current and since >= minimum):
            current, since = best, 0
        else:
            since += 1
        out[t] = current
    return out


def python_forward_filter(
    log_likelihood: np.ndarray, transmat: np.ndarray, start: np.ndarray
) -> np.ndarray:
    """The per-candle Python loop the compiled filter replaced (numpy per step): the baseline."""
    out = np.empty_like(log_likelihood)
    joint = np.log(start) + log_likelihood[0]
    out[0] = joint - (joint.max() + np.log(np.exp(joint - joint.max()).sum()))
    for t in range(1, len(out)):
        peak = out[t - 1].max()
        joint = peak + np.log(np.exp(out[t - 1] - peak) @ transmat) + log_likelihood[t]
        out[t] = joint - (joint.max() + np.log(np.exp(joint - joint.max()).sum()))
    return out


def filter_speed(candles: int = 200_000) -> None:
    """Time per candle of the forward filter, 3 states; best of 5 runs each."""
    rng = np.random.default_rng(0)
    loglik = rng.normal(size=(candles, 3))
    transmat = np.array([[0.98, 0.01, 0.01], [0.02, 0.96, 0.02], [0.01, 0.03, 0.96]])
    start = np.full(3, 1 / 3)
    forward_filter(loglik[:10], transmat, start)  # compile (or load the cached build)

    def best(run, repeats: int = 5) -> float:  # type: ignore[no-untyped-def]
        times = []
        for _ in range(repeats):
            began = time.perf_counter()
            run()
            times.append(time.perf_counter() - began)
        return min(times)

    batch = best(lambda: forward_filter(loglik, transmat, start)) / candles
    online_rows = loglik[:20_000]

    def one_at_a_time() -> None:
        state = ForwardFilter(transmat, start, 0.5)
        for row in online_rows:
            state.update(row)

    online = best(one_at_a_time) / len(online_rows)
    python = best(lambda: python_forward_filter(loglik[:20_000], transmat, start), 2) / 20_000
    same = np.allclose(
        forward_filter(loglik[:20_000], transmat, start),
        python_forward_filter(loglik[:20_000], transmat, start),
        atol=1e-12,
    )
    print(f"\nforward filter, 3 states ({candles:,} candles; best of 5)")
    print(f"{'compiled, batch':<34}{batch * 1e6:>8.3f} us/candle")
    print(f"{'compiled, one candle per call':<34}{online * 1e6:>8.3f} us/candle")
    print(f"{'Python loop (the baseline)':<34}{python * 1e6:>8.3f} us/candle")
    print(f"batch is {python / batch:,.0f}x the Python loop; same values (1e-12): {same}")


def thread_cost(candles: int = 3_000, repeats: int = 3) -> None:
    from ml.models.regime import RegimeHMM

    frame, _ = generate(candles, seed=5)
    x = features(frame, ["log_return", "sqrt_wick"])
    x = x[np.isfinite(x).all(axis=1)]

    def fit_and_filter(one_thread: bool) -> float:
        model = RegimeHMM(n_states=3, n_restarts=2, random_state=0)
        fit = RegimeHMM.fit if one_thread else RegimeHMM.fit.__wrapped__  # type: ignore[attr-defined]
        read = RegimeHMM.filter if one_thread else RegimeHMM.filter.__wrapped__  # type: ignore[attr-defined]
        start = time.perf_counter()
        fit(model, x)
        read(model, x)
        return time.perf_counter() - start

    times = {flag: min(fit_and_filter(flag) for _ in range(repeats)) for flag in (False, True)}
    print(f"\nHMM fit + read-out, 3 states, {len(x):,} candles (best of {repeats})")
    print(f"{'all threads':<34}{times[False]:>8.2f} s")
    print(f"{'one thread (as trained)':<34}{times[True]:>8.2f} s")
    print(f"one thread / all threads: {times[True] / times[False]:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--candles", type=int, default=16_000)
    parser.add_argument("--seeds", type=int, nargs="+", default=[3, 4])
    parser.add_argument("--speed-only", action="store_true", help="only parts 3 and 4")
    args = parser.parse_args()
    filter_speed()
    thread_cost()
    if args.speed_only:
        return
    params = default_market()
    names = np.array([r.name for r in params.regimes])
    split = int(args.candles * 0.625)
    print(
        f"synthetic market, {args.candles:,} candles, train {split:,}, held out {args.candles - split:,}, seeds {args.seeds}"
    )
    print(f"\n{'regime features':<40}{'accuracy':>10}{'Bayes':>8}{'gap':>8}")
    chosen: dict[str, list[float]] = {"gap": [], "ratio": []}
    persistence_rows: dict[str, list[tuple[float, float]]] = {}
    for seed in args.seeds:
        candles, truth = generate(args.candles, seed=seed, params=params)
        held = slice(split, None)
        true_names = names[truth][held]
        bayes_p = bayes(candles, params)
        bayes_accuracy = float((bayes_p.argmax(axis=1)[held] == truth[held]).mean())
        true_rate = switches_per_1000(truth[held])
        for label, kinds in FEATURE_SETS.items():
            x = features(candles, kinds)
            model = RegimeHMM(n_states=3, random_state=0).fit(x[:split])
            decided = np.array(model.labels_)[model.predict(x)][held]
            accuracy = float((decided == true_names).mean())
            print(
                f"{label:<40}{accuracy:>10.4f}{bayes_accuracy:>8.4f}{accuracy - bayes_accuracy:>+8.4f}  (seed {seed})"
            )
            if label.startswith("return, sqrt wick, log volume"):
                probabilities = model.predict_proba(x)[held]
                labels = np.array(model.labels_)
                variants = {
                    "argmax (margin 0)": hysteresis(probabilities, 0.0),
                    **{
                        f"hysteresis margin {m}": hysteresis(probabilities, m)
                        for m in (0.2, 0.3, 0.5, 0.7)
                    },
                    **{f"minimum dwell {d}": dwell(probabilities, d) for d in (4, 8)},
                }
                for name, decisions in variants.items():
                    persistence_rows.setdefault(name, []).append(
                        (
                            float((labels[decisions] == true_names).mean()),
                            switches_per_1000(decisions) / true_rate,
                        )
                    )
                persistence_rows.setdefault("Bayes-optimal argmax", []).append(
                    (bayes_accuracy, switches_per_1000(bayes_p.argmax(axis=1)[held]) / true_rate)
                )
                chosen["gap"].append(
                    persistence_rows["hysteresis margin 0.5"][-1][0] - bayes_accuracy
                )
                chosen["ratio"].append(persistence_rows["hysteresis margin 0.5"][-1][1])
    print(f"\n{'persistence control':<28}{'accuracy':>10}{'switches / true switches':>26}")
    for name, rows in persistence_rows.items():
        print(
            f"{name:<28}{np.mean([a for a, _ in rows]):>10.4f}{np.mean([r for _, r in rows]):>26.2f}"
        )
    print(
        f"chosen (sqrt wick features, margin 0.5): accuracy gap to Bayes {np.mean(chosen['gap']):+.4f}, "
        f"switches {np.mean(chosen['ratio']):.2f}x the truth"
    )


if __name__ == "__main__":
    main()
