"""Benchmark: the feature pipeline against the same indicators computed directly.

Builds the default spec on the real BTC/USDT 1h candles (33,413 after import;
a seeded synthetic market of the same size when ../shared/data is absent)
several times and prints the median seconds and candles/s. In the same run, the
baseline computes the same columns with direct TA-Lib/numpy/pandas calls (no
spec, no validation, no dispatch). The last line is the ratio ours / baseline.
Target: <= 0.3 s for the default spec on this file.

    .venv/bin/python bench/features.py [--repeats 9]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import talib

from common.layout import UserDir

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from features.data import import_candles, load_candles  # noqa: E402
from features.data.synthetic import generate  # noqa: E402
from features.feature_spec import default_spec  # noqa: E402
from features.pipeline import build  # noqa: E402

REAL = ROOT.parent / "shared" / "data" / "binance-csv" / "Binance_BTCUSDT_1h.csv.gz"


def load() -> tuple[pd.DataFrame, str]:
    if REAL.exists():
        with tempfile.TemporaryDirectory() as tmp:
            import_candles(
                REAL, pair="BTC/USDT", timeframe="1h", exchange="binance", layout=UserDir(Path(tmp))
            )
            return load_candles(
                UserDir(Path(tmp)), "binance", "BTC/USDT", "1h"
            ), f"real {REAL.name}"
    candles, _ = generate(33_413, seed=7)
    return candles, "synthetic (../shared/data not found)"


def baseline(c: pd.DataFrame) -> pd.DataFrame:
    """The default spec's columns, written out by hand with direct library calls."""
    o, h, low, cl, v = (
        c[k].to_numpy(dtype="float64") for k in ("open", "high", "low", "close", "volume")
    )
    log_close = np.log(cl)
    out: dict[str, np.ndarray] = {}
    for w in (1, 4, 24):
        r = np.full_like(cl, np.nan)
        r[w:] = log_close[w:] - log_close[:-w]
        out[f"lr{w}"] = r
    r1 = pd.Series(out["lr1"])
    for w in (24, 168):
        out[f"rv{w}"] = r1.rolling(w).std().to_numpy()
    rng = pd.Series(np.log(h / low))
    upper = pd.Series((h - np.maximum(o, cl)) / cl)
    lower = pd.Series((np.minimum(o, cl) - low) / cl)
    out["range1"], out["range24"] = rng.to_numpy(), rng.rolling(24).mean().to_numpy()
    out["uw1"], out["uw24"] = upper.to_numpy(), upper.rolling(24).mean().to_numpy()
    out["lw1"], out["lw24"] = lower.to_numpy(), lower.rolling(24).mean().to_numpy()
    out["body"] = np.log(cl / o)
    lv = pd.Series(np.log1p(v))
    for w in (24, 168):
        roll = lv.rolling(w)
        out[f"vz{w}"] = ((lv - roll.mean()) / roll.std()).to_numpy()
    close = pd.Series(cl)
    out["cz24"] = ((close - close.rolling(24).mean()) / close.rolling(24).std()).to_numpy()
    out["rsi"] = talib.RSI(cl, 14)
    out["natr"] = talib.NATR(h, low, cl, 14)
    out["adx"] = talib.ADX(h, low, cl, 14)
    out["mfi"] = talib.MFI(h, low, cl, v, 14)
    bu, bm, bl = talib.BBANDS(cl, 20)
    out["bbw"] = (bu - bl) / bm
    with np.errstate(divide="ignore", invalid="ignore"):
        out["bbp"] = np.where(bu - bl > 0, (cl - bl) / (bu - bl), 0.5)
    out["macd"] = talib.MACD(cl, 12, 26, 9)[2] / cl
    return pd.DataFrame(out)


def timed(fn: Callable[[], object], repeats: int) -> list[float]:
    fn()  # warm caches and imports
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=9)
    args = parser.parse_args()
    candles, source = load()
    spec = default_spec()
    ours = timed(lambda: build(candles, spec), args.repeats)
    base = timed(lambda: baseline(candles), args.repeats)
    n = len(candles)
    print(f"data: {source}, {n:,} candles; default spec {spec.hash}; {args.repeats} repeats")
    print(f"{'variant':<28}{'median s':>10}{'min s':>10}{'candles/s':>14}")
    for name, times in (("pipeline build(spec)", ours), ("direct TA-Lib/numpy baseline", base)):
        median = statistics.median(times)
        print(f"{name:<28}{median:>10.4f}{min(times):>10.4f}{n / median:>14,.0f}")
    target = "met" if statistics.median(ours) <= 0.3 else "MISSED"
    print(f"target <= 0.3 s: {target}")
    print(f"ratio pipeline/baseline: {statistics.median(ours) / statistics.median(base):.2f}x")


if __name__ == "__main__":
    main()
