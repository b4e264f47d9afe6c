"""Benchmark: our LSTM training loop against a bare torch loop, same model and data.

Both train the same network (``ml.models.lstm._Network``: LSTM + linear head)
with Adam and binary cross-entropy on the same standardised feature sequences
(default features of the real BTC/USDT 1h candles; a seeded synthetic market of
the same size without ../shared/data), the same batch size and epochs, on the same
samples. The bare loop materialises all windows up front and does nothing else;
ours (``LSTMForecaster.fit``) standardises, gathers windows per batch, records
the loss history and keeps the best weights. The ratio on the last line compares
like with like (no validation slice on either side; target: ours >= 0.9x). One
more row shows ours with its default 20% validation slice evaluated every epoch,
for information: that work is not in the bare loop.

    .venv/bin/python bench/train.py [--epochs 3] [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from common.layout import UserDir

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from features.data import import_candles, load_candles  # noqa: E402
from features.data.synthetic import generate  # noqa: E402
from features.feature_spec import default_spec  # noqa: E402
from features.pipeline import build, feature_columns  # noqa: E402
from ml.models.lstm import LSTMForecaster, _Network, sequence_ends  # noqa: E402
from ml.targets import TargetSpec, make_target  # noqa: E402

REAL = ROOT.parent / "shared" / "data" / "binance-csv" / "Binance_BTCUSDT_1h.csv.gz"
PARAMS = {
    "sequence_length": 32,
    "hidden_size": 32,
    "num_layers": 1,
    "dropout": 0.0,
    "batch_size": 256,
}


def load() -> tuple[np.ndarray, np.ndarray, str]:
    if REAL.exists():
        with tempfile.TemporaryDirectory() as tmp:
            import_candles(
                REAL, pair="BTC/USDT", timeframe="1h", exchange="binance", layout=UserDir(Path(tmp))
            )
            candles, source = (
                load_candles(UserDir(Path(tmp)), "binance", "BTC/USDT", "1h"),
                "real BTC/USDT 1h",
            )
    else:
        candles, _ = generate(33_413, seed=7)
        source = "synthetic (../shared/data not found)"
    frame = build(candles, default_spec())
    x = frame[feature_columns(frame)].to_numpy(dtype="float64")
    y = make_target(candles, TargetSpec()).to_numpy()
    return x, y, source


def bare_loop(
    x: np.ndarray, y: np.ndarray, epochs: int, seed: int, share: float = 1.0
) -> tuple[float, int]:
    """The plainest loop: pre-built windows, shuffle, step. Returns (seconds, samples)."""
    torch.manual_seed(seed)
    length, batch = PARAMS["sequence_length"], PARAMS["batch_size"]
    finite = np.isfinite(x).all(axis=1)
    mean, std = x[finite].mean(axis=0), x[finite].std(axis=0)
    z = np.nan_to_num((x - mean) / np.where(std == 0, 1, std))
    ends = sequence_ends(x, length)
    ends = ends[np.isfinite(y[ends])]
    ends = ends[: int(len(ends) * share)]
    windows = torch.as_tensor(
        np.stack([z[e - length + 1 : e + 1] for e in ends]), dtype=torch.float32
    )
    labels = torch.as_tensor(y[ends], dtype=torch.float32)
    network = _Network(x.shape[1], PARAMS["hidden_size"], PARAMS["num_layers"], PARAMS["dropout"])
    optimiser = torch.optim.Adam(network.parameters(), lr=1e-3)
    loss_fn = nn.BCEWithLogitsLoss()
    start = time.perf_counter()
    for _ in range(epochs):
        order = torch.randperm(len(windows))
        for i in range(0, len(order), batch):
            idx = order[i : i + batch]
            optimiser.zero_grad()
            loss_fn(network(windows[idx]), labels[idx]).backward()
            optimiser.step()
    return time.perf_counter() - start, len(windows) * epochs


def ours(
    x: np.ndarray, y: np.ndarray, epochs: int, seed: int, validation: float = 0.0
) -> tuple[float, int]:
    model = LSTMForecaster(
        max_epochs=epochs,
        patience=epochs + 1,
        validation_fraction=validation,
        device="cpu",
        random_state=seed,
        **PARAMS,
    )  # type: ignore[arg-type]
    model.fit(x, y)
    return model.train_seconds_, model.samples_seen_


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    x, y, source = load()
    print(
        f"data: {source}, {len(x):,} candles x {x.shape[1]} features; LSTM {PARAMS}; "
        f"{args.epochs} epochs, {args.repeats} repeats, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads"
    )
    variants = {
        "bare torch loop": lambda seed: bare_loop(x, y, args.epochs, seed),
        "LSTMForecaster.fit": lambda seed: ours(x, y, args.epochs, seed),
        "ours + 20% validation": lambda seed: ours(x, y, args.epochs, seed, validation=0.2),
    }
    rates: dict[str, list[float]] = {name: [] for name in variants}
    bare_loop(x, y, 1, 0)  # warm-up: lazy torch imports and allocator, not measured
    ours(x, y, 1, 0)
    for repeat in range(args.repeats):  # interleaved, so machine noise hits all alike
        for name, fn in variants.items():
            seconds, samples = fn(repeat)
            rates[name].append(samples / seconds)
    print(f"{'loop':<24}{'median samples/s':>18}{'min':>10}{'max':>10}")
    for name, values in rates.items():
        print(
            f"{name:<24}{statistics.median(values):>18,.0f}{min(values):>10,.0f}{max(values):>10,.0f}"
        )
    ratio = statistics.median(rates["LSTMForecaster.fit"]) / statistics.median(
        rates["bare torch loop"]
    )
    print(f"ratio ours/bare (samples/s): {ratio:.2f}x (target >= 0.9x)")


if __name__ == "__main__":
    main()
