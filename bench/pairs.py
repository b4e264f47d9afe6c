"""Benchmark: a 10-pair whitelist, one model per pair, against FreqAI on the same windows.

Data: the 10 pairs of Freqtrade's test candles (5m, quoted in BTC); 6 days of training,
2-day test windows over 2018-01-18 .. 2018-01-30 (6 windows), as bench/backtest_vs_freqai.py.

* FreqAI: one ``freqtrade backtesting --freqaimodel LightGBMRegressor`` over the
  whitelist with ``FreqaiRegimeStrategy``; FreqAI retrains every pair in every window.
* Ours: the command a user runs, ``tradingbot train SPEC --jobs <cores> --backtest``, as a
  process of its own (since session 20 its Freqtrade process is forked from the pool's
  fork server): one rolling walk-forward LightGBM per pair (with its regime
  model), an MLflow parent run, 10 models registered as ``challenger``, then the
  walk-forward backtest of the challengers over the whitelist (each pair's
  out-of-sample predictions drive one Freqtrade backtest of all 10 pairs). Until
  session 17 the bench called the library in its own, already imported process, and
  ran training and backtest as two steps. Promoting the models (``tradingbot
  promote``, about 0.3 s a model) is the decision that follows the backtest, and is
  not timed (until session 16 it was).

Each side is a fresh process (FreqAI's Freqtrade, our command), offline, on this
machine; wall times include everything each does, imports too. FreqAI's time / ours
is the ratio (goal: > 1, ours faster). The CPU seconds of each side (every
process it starts, read from /proc) bound what any schedule can reach: on N cores ours
cannot end sooner than its CPU seconds / N. The last line bounds ours in the order the
command does its work: it starts its first model after its imports and store (start),
and backtests after its last model is registered (backtest and exit); between them its
pairs' runs (their MLflow start to end, added up) can at best share the workers evenly.

    .venv/bin/python bench/pairs.py
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import NamedTuple

from common.layout import UserDir

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

from bench.backtest_vs_freqai import import_test_candles, lightgbm_spec  # noqa: E402
from experiments.freqai_import import spec_toml  # noqa: E402
from ml.tracking import configure, default_tracking_uri  # noqa: E402
from strategies.results import parse_result_zip  # noqa: E402
from strategies.runner import BacktestRequest, freqai_section, run_backtest  # noqa: E402

DATA = ROOT.parent / "shared" / "data" / "freqtrade-testdata"
PAIRS = (
    "ADA/BTC",
    "DASH/BTC",
    "ETC/BTC",
    "ETH/BTC",
    "LTC/BTC",
    "NXT/BTC",
    "TRX/BTC",
    "XLM/BTC",
    "XMR/BTC",
    "ZEC/BTC",
)
TIMERANGE = "20180118-20180130"
JOBS = os.cpu_count() or 1  # pairs trained at once (tradingbot train --jobs)


def freqai(userdir: Path) -> tuple[float, int]:
    start = time.perf_counter()
    request = BacktestRequest(
        strategy="FreqaiRegimeStrategy",
        pairs=PAIRS,
        timeframe="5m",
        timerange=TIMERANGE,
        max_open_trades=len(PAIRS),
        freqai={**freqai_section(verbosity=-1), "identifier": "bench_pairs"},
        freqaimodel="LightGBMRegressor",
    )
    run = run_backtest(request, UserDir(userdir), environment=os.environ, use_cache=False)
    trades = parse_result_zip(run.result_zip, "FreqaiRegimeStrategy").metrics.trades
    return time.perf_counter() - start, trades


class Split(NamedTuple):
    """One of our commands in parts, from its MLflow runs' times (seconds)."""

    labels: tuple[str, str, str]  # how the three parts below are printed
    start: float  # from the command's start to its first model's run
    training: float  # from there to the training's end
    after: float  # from there to the command's exit: backtest, summaries, exit
    run_seconds: float  # the models' runs, start to end, added up


SPLITS: dict[str, Split] = {}  # ours, by spec name


class ProcessTreeCpu:
    """The CPU seconds (user + system) of the processes this one starts while it is
    active, and of theirs: every process whose parent is in the tree, read from
    /proc every 50 ms (a process that ends between two reads loses at most its last
    50 ms). Both sides are measured alike: Freqtrade's process and its threads for
    FreqAI; our command, its pool's fork server and workers, and Freqtrade's process."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self._latest: dict[int, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._tick = os.sysconf("SC_CLK_TCK")

    def _read(self) -> None:
        parents: dict[int, int] = {}
        used: dict[int, float] = {}
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                text = (entry / "stat").read_text()
            except OSError:
                continue
            fields = text.rsplit(")", 1)[1].split()  # after the command's name
            pid = int(entry.name)
            parents[pid] = int(fields[1])
            used[pid] = (int(fields[11]) + int(fields[12])) / self._tick
        tree = {os.getpid()}
        grown = True
        while grown:
            grown = False
            for pid, parent in parents.items():
                if parent in tree and pid not in tree:
                    tree.add(pid)
                    grown = True
        for pid in tree - {os.getpid()}:
            self._latest[pid] = max(self._latest.get(pid, 0.0), used[pid])

    def _watch(self) -> None:
        while not self._stop.wait(0.05):
            self._read()

    def __enter__(self) -> ProcessTreeCpu:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.seconds = sum(self._latest.values())


def _command(
    userdir: Path, name: str, market: dict[str, object], jobs: int, labels: tuple[str, str, str]
) -> tuple[float, int]:
    """``tradingbot train SPEC [--jobs N] --backtest`` in a process of its own; returns
    its wall time and the backtest's trades, and puts its :class:`Split` in SPLITS under
    ``name``: the time from its start to the first training run's start (imports, the
    fork server, the store), from there to the training's end, and from there to its
    exit (the backtest, the summaries, the process's end). The first and the last are
    what the command does before and after its models, whatever the number of cores."""
    spec = lightgbm_spec(name, market)
    path = userdir / f"{name}.toml"
    path.write_text(spec_toml(spec.model_dump(mode="json", exclude_unset=True)))
    options = ["--jobs", str(jobs)] if jobs > 1 else []
    command = [sys.executable, "-m", "tradingbot", "train", str(path), *options, "--backtest"]
    began = time.time()
    start = time.perf_counter()
    done = subprocess.run(
        [*command, "--userdir", str(userdir)],
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        check=False,
    )
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"{' '.join(command)} failed:\n{(done.stdout + done.stderr)[-3000:]}")
    client = configure(default_tracking_uri(userdir), UserDir(userdir))
    trained = client.get_experiment_by_name(name)
    backtests = client.get_experiment_by_name("backtests")
    assert trained is not None and backtests is not None
    runs = client.search_runs([trained.experiment_id], "attributes.status = 'FINISHED'")
    training_end = max(run.info.end_time for run in runs) / 1000
    # the models' runs: a whitelist's parent run (tag "whitelist") starts before any job
    models = [run for run in runs if "whitelist" not in run.data.tags]
    first_start = min(run.info.start_time for run in models) / 1000
    (backtested,) = client.search_runs([backtests.experiment_id])
    run_seconds = sum(run.info.end_time - run.info.start_time for run in models) / 1000
    SPLITS[name] = Split(
        labels,
        start=first_start - began,
        training=training_end - first_start,
        after=seconds - (training_end - began),
        run_seconds=run_seconds,
    )
    return seconds, int(backtested.data.metrics["closed.trades"])


def ours(userdir: Path) -> tuple[float, int]:
    # the same spec as the 2-pair bench, over the whitelist
    labels = (
        "  of which: start, to the first pair's run",
        "  of which: train 10 pairs",
        "  of which: backtest, summaries, exit",
    )
    return _command(userdir, "bench_pairs", {"pairs": list(PAIRS)}, JOBS, labels)


def pooled(userdir: Path) -> tuple[float, int]:
    """One pooled model over the whitelist (``[data] pooling = "pooled"``, the same folds),
    then the same walk-forward backtest, each pair trading its own out-of-sample
    predictions of the pooled folds."""
    pooling: dict[str, object] = {"pairs": list(PAIRS), "pooling": "pooled"}
    labels = (
        "  of which: start, to its run",
        "  of which: train the pooled model",
        "  of which: its backtest, summaries, exit",
    )
    return _command(userdir, "bench_pooled", pooling, 1, labels)


def main() -> None:
    if not DATA.exists():
        sys.exit(f"needs Freqtrade's test candles in {DATA}")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for folder, label, runner in (
            ("freqai", "FreqAI LightGBMRegressor, one backtest", freqai),
            ("ours", f"ours: train --jobs {JOBS} --backtest", ours),
            ("pooled", "ours pooled: train --backtest", pooled),
        ):
            userdir = Path(tmp) / folder  # each its own user dir
            import_test_candles(userdir, PAIRS)
            with ProcessTreeCpu() as cpu:
                seconds, trades = runner(userdir)
            rows.append((label, seconds, trades, cpu.seconds))
    print(
        f"data: {len(PAIRS)} pairs 5m ({', '.join(PAIRS)}), windows 6 d train / 2 d test "
        f"over {TIMERANGE}; offline, {os.cpu_count()} cores"
    )
    # cores: the CPU seconds over the wall seconds, how many cores a side kept busy
    print(f"{'pipeline':<42}{'wall s':>10}{'trades':>8}{'CPU s':>8}{'cores':>7}")
    for label, seconds, trades, cpu_seconds in rows:
        cores_busy = cpu_seconds / seconds
        print(f"{label:<42}{seconds:>10.1f}{trades:>8}{cpu_seconds:>8.1f}{cores_busy:>7.2f}")
    for split in SPLITS.values():
        parts = (split.start, split.training, split.after)
        for label, seconds in zip(split.labels, parts, strict=True):
            print(f"{label:<42}{seconds:>10.1f}")
    print(f"ratio FreqAI / ours pooled (end to end): {rows[0][1] / rows[2][1]:.2f}x")
    print(f"ratio FreqAI / ours (end to end): {rows[0][1] / rows[1][1]:.2f}x (goal > 1)")
    # on this machine's cores, no schedule can make ours faster than this
    cores = os.cpu_count() or 1
    print(
        f"CPU ours / FreqAI: {rows[1][3] / rows[0][3]:.2f}x; the best wall-time ratio "
        f"{cores} cores allow ours, {cores} x FreqAI's wall s / ours' CPU s: "
        f"{cores * rows[0][1] / rows[1][3]:.2f}x"
    )
    # the command's start and its backtest come before and after every model; between
    # them the pairs' runs can at best share the workers evenly
    split = SPLITS["bench_pairs"]
    best = split.start + split.run_seconds / JOBS + split.after
    print(
        f"ours in this order at best: start {split.start:.1f} + the pairs' runs "
        f"{split.run_seconds:.1f} s / {JOBS} workers + backtest and exit {split.after:.1f} "
        f"= {best:.1f} s; "
        f"ratio at most {rows[0][1] / best:.2f}x"
    )


if __name__ == "__main__":
    main()
