"""Where a spec's jobs run (issue 27): ``[compute]``, ``--executor``, ``--jobs``."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from common.errors import SpecError
from experiments.spec import parse_experiment
from tests.conftest import CliResult, import_synthetic

BASE = {"name": "c", "data": {"pair": "BTC/USDT"}, "model": {"kind": "lightgbm"}}
WHITELIST_SPEC = """
name = "wl_compute"
[data]
pairs = ["ETH/USDT", "XRP/USDT"]
timeframe = "1h"
[model]
kind = "lightgbm"
"""


def test_where_a_spec_runs_is_not_part_of_its_hash() -> None:
    plain = parse_experiment(BASE, source="t")
    on_ray = parse_experiment({**BASE, "compute": {"executor": "ray", "jobs": 8}}, source="t")
    assert on_ray.compute is not None and on_ray.compute.executor == "ray"
    assert on_ray.hash == plain.hash
    with pytest.raises(SpecError, match=r"compute\.executor"):
        parse_experiment({**BASE, "compute": {"executor": "dask"}}, source="t")
    with pytest.raises(SpecError, match=r"compute\.jobs"):
        parse_experiment({**BASE, "compute": {"jobs": 0}}, source="t")


def _whitelist(tmp_path: Path) -> tuple[Path, Path]:
    userdir = tmp_path / "ud"
    for seed, pair in enumerate(("ETH/USDT", "XRP/USDT"), start=1):
        import_synthetic(userdir, pair, candles=600, seed=seed)
    spec = tmp_path / "wl.toml"
    spec.write_text(WHITELIST_SPEC)
    return userdir, spec


def test_an_unknown_executor_is_refused_before_anything_runs(
    tmp_path: Path, cli: Callable[..., CliResult]
) -> None:
    userdir, spec = _whitelist(tmp_path)
    result = cli("train", spec, "--executor", "dask", "--userdir", userdir)
    assert result.code == 2 and "'dask': choose local or ray" in result.err
    assert not (userdir / "mlflow.db").exists()


def test_an_unreachable_ray_cluster_is_one_line_and_nothing_is_written(
    tmp_path: Path, cli: Callable[..., CliResult], monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("ray", reason="Ray is the optional extra .[ray]: not installed here")
    userdir, spec = _whitelist(tmp_path)
    monkeypatch.setenv("RAY_ADDRESS", "127.0.0.1:1")  # nothing listens on port 1
    result = cli("train", spec, "--userdir", userdir)
    assert result.code == 2
    assert "cannot reach the Ray cluster at 127.0.0.1:1" in result.err
    assert "Traceback" not in result.err
    assert not (userdir / "mlflow.db").exists()


def test_options_win_over_the_spec_which_wins_over_ray_address(tmp_path: Path) -> None:
    from common.context import RunContext
    from common.executors import InProcess, ProcessPool
    from tradingbot._app import compute

    context = RunContext(tmp_path, "sqlite:///x.db", {"RAY_ADDRESS": "127.0.0.1:1"})
    local = parse_experiment({**BASE, "compute": {"executor": "local", "jobs": 3}}, source="t")
    with compute(None, None, context, local) as executor:
        assert isinstance(executor, ProcessPool) and executor.workers == 3
    with compute("local", 1, context, local) as executor:
        assert isinstance(executor, InProcess)
    plain = parse_experiment(BASE, source="t")
    with compute("local", 2, context, plain) as executor:
        assert isinstance(executor, ProcessPool)
