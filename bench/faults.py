"""Kill commands at their dangerous moments, run them again, and count what is left.

Each case runs one ``tradingbot`` command in a child process that SIGKILLs itself
at a chosen point (just before a named function runs), then runs the same command
again normally, as a user would, and inspects the user dir:

    python bench/faults.py [--cases train.during_register,tune.before_params_file] [--keep DIR]

Printed: one row per case and a totals line. Goal: every column but ``kills`` zero.

* ``kills``: the child died by SIGKILL at its point (1), or never reached it (0:
  the case proves nothing and is counted under ``missed``);
* ``leftover``: model versions never completely registered, or aliases on them;
* ``duplicate``: more than one version for one run (and tuning trial);
* ``running``: MLflow runs still RUNNING after the second call;
* ``tags``: finished runs still tagged ``tradingbot.failure`` (a resumed tune's parent);
* ``files``: lost or partial files: temporary files left behind, candles or the
  tuned parameter file missing after the second call;
* ``tmpdir``: folders and files left in the case's own ``$TMPDIR`` after the second
  call (a killed command's working folders: the next command must remove them);
* ``failed``: the second call did not exit 0.

Nothing here is mocked: real imports, training, Optuna studies, MLflow stores and
Freqtrade backtests on a seeded synthetic market; only the moment of death is chosen.
"""

from __future__ import annotations

import argparse
import importlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from common.layout import UserDir

ROOT = Path(__file__).resolve().parents[1]
# run as a script, bench/ comes first on the path, and bench/features.py would hide
# the features package
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

PAIR, TIMEFRAME, EXCHANGE = "BTC/USDT", "1h", "binance"
CANDLES = 2200

TRAIN_SPEC = """
name = "{name}"
seed = 3
[data]
pair = "BTC/USDT"
timeframe = "1h"
exchange = "binance"
timerange = "-{train_end}"
[regime]
n_states = 2
n_restarts = 1
n_iter = 20
[model]
kind = "lightgbm"
params = {{ n_estimators = 30, num_leaves = 7, min_child_samples = 30 }}
[walk_forward]
folds = 1
test_size = 300
"""

TUNE_SPEC = (
    TRAIN_SPEC
    + """
[tune]
objective = "profit_total"
startup_trials = 2
pruner = "none"
test_fraction = 0.2
[tune.space]
"model.params.num_leaves" = {{ type = "int", low = 3, high = 15 }}
"strategy.entry_threshold" = {{ type = "float", low = 0.50, high = 0.60, step = 0.01 }}
"""
)


@dataclass(frozen=True)
class Case:
    """Kill ``command`` just before ``target`` (``module:attribute.path``) runs for the
    ``nth`` time, then run ``command`` again."""

    name: str
    command: list[str]
    target: str
    nth: int = 1
    needs_model: bool = False
    check_params_file: bool = False
    check_breaker: bool = False


CASES = [
    Case(
        "import.before_rename",
        ["data", "import", "{candles}", "--pair", PAIR, "--timeframe", TIMEFRAME],
        "pathlib:Path.replace",
    ),
    Case("train.inside_run", ["train", "{train_spec}"], "ml.registry:log_bundle_model"),
    Case("train.before_register", ["train", "{train_spec}"], "mlflow:register_model"),
    Case(
        "train.during_register",
        ["train", "{train_spec}"],
        "mlflow.tracking:MlflowClient.set_registered_model_alias",
    ),
    Case(
        "train.after_alias",
        ["train", "{train_spec}"],
        "mlflow.tracking:MlflowClient.set_model_version_tag",
    ),
    Case(
        "tune.mid_trial",
        ["tune", "{tune_spec}", "--trials", "4", "--force", "fault bench"],
        "experiments.tuning.objective:run_trial",
        nth=2,
        check_params_file=True,
    ),
    Case(
        "tune.before_register",
        ["tune", "{tune_spec}", "--trials", "3", "--force", "fault bench"],
        "mlflow:register_model",
        check_params_file=True,
    ),
    Case(
        "tune.during_register",
        ["tune", "{tune_spec}", "--trials", "3", "--force", "fault bench"],
        "mlflow.tracking:MlflowClient.set_model_version_tag",
        check_params_file=True,
    ),
    Case(
        "tune.before_params_file",
        ["tune", "{tune_spec}", "--trials", "3", "--force", "fault bench"],
        "experiments.tuning.finalise:_applied",
        check_params_file=True,
    ),
    Case(
        "promote.before_alias",
        ["promote", "fault_model", "--version", "1", "--reason", "fault bench", "--force"],
        "mlflow.tracking:MlflowClient.set_registered_model_alias",
        needs_model=True,
    ),
    Case(
        "risk.enable_before_incident",
        ["risk", "enable", "--reason", "fault bench", "--minutes", "5"],
        "strategies.risk_log:IncidentLog.record_incident",
        check_breaker=True,
    ),
    Case(
        "backtest.while_logging",
        [
            "backtest",
            "--pair",
            PAIR,
            "--timeframe",
            TIMEFRAME,
            "--timerange",
            "{backtest_range}",
            "--model",
            "fault_model@champion",
            "--no-cache",
        ],
        "mlflow:log_artifact",
        needs_model=True,
    ),
]


# -- the child: die at the chosen point ---------------------------------------------------

OUR_PACKAGES = ("features.", "ml.", "strategies.", "experiments.")
PRELOADED = (
    "experiments.training.pipeline",
    "experiments.tuning.study",
    "experiments.tuning.finalise",
    "experiments.tuning.worker",
    "experiments.backtesting.run",
    "experiments.tuning.objective",
    "features.data",
    "ml.registry",
    "strategies.risk_log",
)


def _resolve(target: str) -> tuple[Any, str]:
    module_name, path = target.split(":")
    owner: Any = importlib.import_module(module_name)
    *parents, attribute = path.split(".")
    for name in parents:
        owner = getattr(owner, name)
    return owner, attribute


def child(target: str, nth: int, argv: list[str]) -> int:
    """Run the CLI with ``target`` replaced by a function that SIGKILLs this process
    on its ``nth`` call (before the original runs)."""
    for name in PRELOADED:  # the CLI imports them lazily; their names are patched below
        importlib.import_module(name)
    owner, attribute = _resolve(target)
    original = getattr(owner, attribute)
    calls = {"n": 0}

    def fatal(*args: Any, **kwargs: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == nth:
            os.kill(os.getpid(), signal.SIGKILL)
        return original(*args, **kwargs)

    setattr(owner, attribute, fatal)
    for module in list(sys.modules.values()):  # modules that imported the name themselves
        name = getattr(module, "__name__", "")
        if name.startswith(OUR_PACKAGES) and getattr(module, attribute, None) is original:
            setattr(module, attribute, fatal)
    from tradingbot import run

    return run(argv)


# -- the parent: set up, kill, rerun, inspect ---------------------------------------------


@dataclass
class Row:
    case: str
    kills: int = 0
    missed: int = 0
    leftover: int = 0
    duplicate: int = 0
    running: int = 0
    tags: int = 0
    files: int = 0
    tmpdir: int = 0
    failed: int = 0
    notes: list[str] = field(default_factory=list)

    COLUMNS = (
        "kills",
        "missed",
        "leftover",
        "duplicate",
        "running",
        "tags",
        "files",
        "tmpdir",
        "failed",
    )


def _cli(args: list[str], userdir: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return _run([sys.executable, "-m", "tradingbot", *args, "--userdir", str(userdir)], env)


def _run(command: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    process = subprocess.Popen(
        command,
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        out, err = process.communicate(timeout=900)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    return subprocess.CompletedProcess(command, process.returncode, out, err)


def _prepare(root: Path, env: dict[str, str]) -> dict[str, str]:
    """Synthetic candles to import, specs, and a base user dir with the candles imported
    and a champion to backtest."""
    from features.data.synthetic import generate

    candles, _ = generate(CANDLES, seed=21)
    source = root / "candles.feather"
    candles.to_feather(source)
    train_end = f"{candles['date'].iloc[-450]:%Y%m%d}"  # backtests run after it
    (root / "train.toml").write_text(TRAIN_SPEC.format(name="fault_model", train_end=train_end))
    (root / "tune.toml").write_text(TUNE_SPEC.format(name="fault_tune", train_end=train_end))
    base = root / "base"
    for args in (
        ["data", "import", str(source), "--pair", PAIR, "--timeframe", TIMEFRAME],
        ["train", str(root / "train.toml")],
        ["promote", "fault_model", "--version", "1", "--reason", "fault bench", "--force"],
    ):
        done = _cli(args, base, env)
        if done.returncode != 0:
            raise SystemExit(f"set-up failed: {' '.join(args)}\n{done.stderr[-2000:]}")
    last = candles["date"].iloc[-1]
    start = candles["date"].iloc[-400]
    return {
        "candles": str(source),
        "train_spec": str(root / "train.toml"),
        "tune_spec": str(root / "tune.toml"),
        "backtest_range": f"{start:%Y%m%d}-{last:%Y%m%d}",
    }


_INSPECTING = threading.Lock()  # MLflow's tracking URI is one per process


def _inspect(userdir: Path, row: Row, case: Case) -> None:
    with _INSPECTING:
        _inspect_store(userdir, row, case)


def _inspect_store(userdir: Path, row: Row, case: Case) -> None:
    import mlflow
    from mlflow.tracking import MlflowClient

    import ml.registry
    from ml.tracking import default_tracking_uri

    temporaries = [p for p in userdir.rglob(".*.tmp")]
    row.files += len(temporaries)
    row.notes += [f"temporary file left: {p.relative_to(userdir)}" for p in temporaries]
    if not (userdir / "data" / EXCHANGE / "BTC_USDT-1h.feather").exists():
        row.files += 1
        row.notes.append("candles missing")
    if case.check_params_file and not (userdir / "strategies" / "RegimeStrategy.json").exists():
        row.files += 1
        row.notes.append("tuned parameter file missing")
    if case.check_breaker:
        from strategies.risk import RiskManager, RiskSettings

        breaker = RiskManager(RiskSettings.for_userdir(UserDir(userdir))).breaker_decision()
        if breaker.code != "cb_active":
            row.files += 1
            row.notes.append(f"breaker not in force after the second call: {breaker.code}")
    if not (userdir / "mlflow.db").exists():
        return
    uri = default_tracking_uri(userdir)
    mlflow.set_tracking_uri(uri)
    try:
        client = MlflowClient(uri, registry_uri=uri)
    except Exception as exc:  # a store the faults left unusable
        row.failed += 1
        row.notes.append(f"the MLflow store cannot be opened: {type(exc).__name__}")
        return
    for experiment in client.search_experiments():
        for run in client.search_runs([experiment.experiment_id]):
            if run.info.status == "RUNNING":
                row.running += 1
                row.notes.append(f"run {run.info.run_id} of {experiment.name} still RUNNING")
            if run.info.status == "FINISHED" and "tradingbot.failure" in run.data.tags:
                row.tags += 1
                row.notes.append(f"finished run {run.info.run_id} still tagged as failed")
    for model in client.search_registered_models():
        versions = client.search_model_versions(f"name = '{model.name}'")
        keys: dict[tuple[str, str], int] = {}
        for version in versions:
            key = (str(version.run_id), version.tags.get("optuna.trial", ""))
            keys[key] = keys.get(key, 0) + 1
            status = client.get_run(version.run_id).info.status if version.run_id else "none"
            # code that marks complete registrations (older code did not)
            tag = getattr(ml.registry, "REGISTRATION_TAG", None)
            if status != "FINISHED" or (tag and version.tags.get(tag) != "complete"):
                row.leftover += 1
                row.notes.append(f"{model.name} v{version.version} incomplete (run {status})")
        row.duplicate += sum(count - 1 for count in keys.values())
        for alias, number in (model.aliases or {}).items():
            if not any(v.version == number for v in versions):
                row.leftover += 1
                row.notes.append(f"alias {alias} points at a missing version {number}")


def _left_in(tmpdir: Path) -> list[Path]:
    """What is in a case's ``$TMPDIR`` (our scratch root itself is not a leftover, what
    is in it is)."""
    found = []
    for path in tmpdir.iterdir():
        if path.is_dir() and path.name.startswith("tradingbot-") and path.name[11:].isdigit():
            found += list(path.iterdir())
        else:
            found.append(path)
    return found


def run_case(
    case: Case, root: Path, base: Path, values: dict[str, str], env: dict[str, str]
) -> Row:
    row = Row(case.name)
    userdir = root / case.name
    shutil.copytree(base, userdir)
    tmpdir = root / f"{case.name}.tmp"  # the case's own $TMPDIR: what a kill leaves shows
    tmpdir.mkdir()
    env = {**env, "TMPDIR": str(tmpdir)}
    if case.name.startswith("import."):
        shutil.rmtree(userdir / "data")
    if not case.needs_model:
        for store in ("mlflow.db", "mlartifacts"):
            path = userdir / store
            shutil.rmtree(path) if path.is_dir() else path.unlink(missing_ok=True)
    args = [a.format(**values) for a in case.command]
    killed = _run(
        [
            sys.executable,
            str(Path(__file__).resolve()),
            "child",
            case.target,
            str(case.nth),
            "--",
            *args,
            "--userdir",
            str(userdir),
        ],
        env,
    )
    if killed.returncode == -signal.SIGKILL:
        row.kills = 1
    else:
        row.missed = 1
        row.notes.append(f"not killed (exit {killed.returncode}): {killed.stderr.strip()[-300:]}")
    again = _cli(args, userdir, env)
    if again.returncode != 0:
        row.failed = 1
        row.notes.append(f"second call exit {again.returncode}: {again.stderr.strip()[-500:]}")
    _inspect(userdir, row, case)
    left = _left_in(tmpdir)
    row.tmpdir += len(left)
    row.notes += [f"left in $TMPDIR: {p.relative_to(tmpdir)}" for p in left]
    return row


def concurrent_start(root: Path, base: Path, values: dict[str, str], env: dict[str, str]) -> Row:
    """Two trainings started at once on a user dir without an MLflow store."""
    row = Row("concurrent.new_store")
    userdir = root / row.case
    shutil.copytree(base / "data", userdir / "data")
    spec = root / "train2.toml"
    spec.write_text(
        Path(values["train_spec"]).read_text().replace('"fault_model"', '"fault_other"')
    )
    commands = [
        [sys.executable, "-m", "tradingbot", "train", path, "--userdir", str(userdir)]
        for path in (values["train_spec"], str(spec))
    ]
    processes = [
        subprocess.Popen(
            c,
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        for c in commands
    ]
    try:
        for process in processes:
            _, err = process.communicate(timeout=900)
            if process.returncode != 0:
                row.failed += 1
                row.notes.append(f"exit {process.returncode}: {err.strip()[-500:]}")
    finally:
        for process in processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
    _inspect(userdir, row, Case(row.case, [], ""))
    return row


def print_table(rows: list[Row], seconds: float) -> None:
    header = f"{'case':<26}" + "".join(f"{c:>10}" for c in Row.COLUMNS)
    print(header)
    print("-" * len(header))
    for row in rows:
        print(f"{row.case:<26}" + "".join(f"{getattr(row, c):>10}" for c in Row.COLUMNS))
    totals = {c: sum(getattr(r, c) for r in rows) for c in Row.COLUMNS}
    print("-" * len(header))
    print(f"{'total':<26}" + "".join(f"{totals[c]:>10}" for c in Row.COLUMNS))
    for row in rows:
        for note in row.notes:
            print(f"  {row.case}: {note}")
    bad = sum(v for k, v in totals.items() if k != "kills")
    verdict = "all zero" if bad == 0 else f"{bad} problem(s)"
    print(
        f"faults: {totals['kills']} kills in {len(rows)} cases, {verdict} "
        f"(leftover {totals['leftover']}, duplicate {totals['duplicate']}, running "
        f"{totals['running']}, tags {totals['tags']}, files {totals['files']}, "
        f"tmpdir {totals['tmpdir']}, failed {totals['failed']}, "
        f"missed {totals['missed']}) in {seconds:.0f} s"
    )


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] == "child":
        target, nth, separator, *rest = args[1:]
        assert separator == "--"
        return child(target, int(nth), rest)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", help="comma-separated case names (default: all)")
    parser.add_argument("--keep", type=Path, help="work in this directory and keep it")
    options = parser.parse_args(args)
    wanted = set(options.cases.split(",")) if options.cases else None
    env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true", "PYTHONPATH": str(ROOT)}
    env = {k: v for k, v in env.items() if not k.startswith(("RISK_", "MLFLOW_TRACKING_URI"))}
    env["RISK_MAX_CONCURRENT_BACKTESTS"] = "1"  # a dead backtest's lock must not block
    started = time.monotonic()
    root = options.keep or Path(tempfile.mkdtemp(prefix="tradingbot-faults-"))
    root.mkdir(parents=True, exist_ok=True)
    try:
        values = _prepare(root, env)
        chosen = [case for case in CASES if wanted is None or case.name in wanted]
        # the cases share nothing (each its own copy of the user dir and its own $TMPDIR):
        # as many at once as there are cores, their rows in the cases' order
        with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as cases:
            rows = list(
                cases.map(lambda case: run_case(case, root, root / "base", values, env), chosen)
            )
        if wanted is None or "concurrent.new_store" in wanted:
            rows.append(concurrent_start(root, root / "base", values, env))
    finally:
        if options.keep is None:
            shutil.rmtree(root, ignore_errors=True)
    print_table(rows, time.monotonic() - started)
    problems = sum(getattr(r, c) for r in rows for c in Row.COLUMNS if c != "kills")
    return 0 if problems == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
