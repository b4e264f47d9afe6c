"""`tradingbot paper`: dry-run by default, live only with explicit opt-in, keys never in files."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from experiments.paper import PaperError, trade_command
from tests.conftest import CliResult

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "user_data" / "config.dryrun.json"


def test_shipped_dryrun_config_is_paper_and_keyless() -> None:
    config = json.loads(CONFIG.read_text())
    assert config["dry_run"] is True
    assert config["exchange"]["key"] == "" and config["exchange"]["secret"] == ""
    assert config["strategy"] == "RegimeStrategy"


def test_command_is_dry_run_by_default(tmp_path: Path) -> None:
    command, env = trade_command(
        config=CONFIG,
        userdir=tmp_path,
        strategy=None,
        model="models:/m@champion",
        live=False,
        tracking_uri="sqlite:///x.db",
    )
    assert command[1:4] == ["-m", "freqtrade", "trade"] and "--dry-run" in command
    assert env["FREQTRADE__TRADINGBOT__MODEL_URI"] == "models:/m@champion"
    assert env["MLFLOW_TRACKING_URI"] == "sqlite:///x.db"


def test_keys_in_the_file_are_refused(tmp_path: Path) -> None:
    config = json.loads(CONFIG.read_text())
    config["exchange"]["key"] = "abc"
    path = tmp_path / "c.json"
    path.write_text(json.dumps(config))
    with pytest.raises(PaperError, match="secrets are written in the config") as error:
        trade_command(
            config=path, userdir=tmp_path, strategy=None, model=None, live=False, tracking_uri="x"
        )
    assert "exchange.key" in str(error.value) and "abc" not in str(error.value)


@pytest.mark.parametrize(
    "field", ["apiKey", "secret", "password", "uid", "privateKey", "walletAddress"]
)
def test_keys_in_ccxt_config_are_refused(tmp_path: Path, field: str) -> None:
    config = json.loads(CONFIG.read_text())
    config["exchange"]["ccxt_config"] = {"enableRateLimit": True, field: "S3CR3T-VALUE"}
    path = tmp_path / "c.json"
    path.write_text(json.dumps(config))
    with pytest.raises(PaperError, match=f"exchange.ccxt_config.{field}") as error:
        trade_command(
            config=path, userdir=tmp_path, strategy=None, model=None, live=False, tracking_uri="x"
        )
    assert "S3CR3T-VALUE" not in str(error.value) and "S3CR3T-VALUE" not in (error.value.hint or "")


def test_keys_brought_in_through_add_config_files_are_refused(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "keys.json").write_text(
        json.dumps({"exchange": {"ccxt_async_config": {"secret": "x"}}, "telegram": {"token": "t"}})
    )
    config = json.loads(CONFIG.read_text())
    config["add_config_files"] = ["sub/keys.json"]
    path = tmp_path / "c.json"
    path.write_text(json.dumps(config))
    with pytest.raises(PaperError) as error:
        trade_command(
            config=path, userdir=tmp_path, strategy=None, model=None, live=False, tracking_uri="x"
        )
    message = str(error.value)
    assert "keys.json: exchange.ccxt_async_config.secret" in message
    assert "keys.json: telegram.token" in message


def test_live_needs_keys_in_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("FREQTRADE__EXCHANGE__KEY", raising=False)
    with pytest.raises(PaperError, match="needs FREQTRADE__EXCHANGE__KEY"):
        trade_command(
            config=CONFIG, userdir=tmp_path, strategy=None, model=None, live=True, tracking_uri="x"
        )
    monkeypatch.setenv("FREQTRADE__EXCHANGE__KEY", "KEY-7f3a9")
    monkeypatch.setenv("FREQTRADE__EXCHANGE__SECRET", "SECRET-c41d2")
    command, _ = trade_command(
        config=CONFIG, userdir=tmp_path, strategy=None, model=None, live=True, tracking_uri="x"
    )
    assert "--dry-run" not in command
    assert "KEY-7f3a9" not in " ".join(command) and "SECRET-c41d2" not in " ".join(command)


def test_cli_refuses_live_without_the_explicit_opt_in(
    cli: Callable[..., CliResult], tmp_path: Path
) -> None:
    result = cli("paper", "--live", "--userdir", tmp_path)
    assert result.code == 2 and "--i-understand-live-risk" in result.err
