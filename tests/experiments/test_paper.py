"""`tradingbot paper`: dry-run by default, live only with explicit opt-in, keys never in files."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from common.layout import UserDir
from experiments.paper import trade_command
from strategies.trading_config import PaperError
from tests.conftest import CliResult, local_context

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
        context=local_context(tmp_path, "sqlite:///x.db"),
        strategy=None,
        model="models:/m@champion",
        live=False,
        check_exchange=False,
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
            config=path,
            context=local_context(tmp_path, "x"),
            strategy=None,
            model=None,
            live=False,
            check_exchange=False,
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
            config=path,
            context=local_context(tmp_path, "x"),
            strategy=None,
            model=None,
            live=False,
            check_exchange=False,
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
            config=path,
            context=local_context(tmp_path, "x"),
            strategy=None,
            model=None,
            live=False,
            check_exchange=False,
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
            config=CONFIG,
            context=local_context(tmp_path, "x"),
            strategy=None,
            model=None,
            live=True,
            check_exchange=False,
        )
    monkeypatch.setenv("FREQTRADE__EXCHANGE__KEY", "KEY-7f3a9")
    monkeypatch.setenv("FREQTRADE__EXCHANGE__SECRET", "SECRET-c41d2")
    command, _ = trade_command(
        config=CONFIG,
        context=local_context(tmp_path, "x"),
        strategy=None,
        model=None,
        live=True,
        check_exchange=False,
    )
    assert "--dry-run" not in command
    assert "KEY-7f3a9" not in " ".join(command) and "SECRET-c41d2" not in " ".join(command)


def test_cli_refuses_live_without_the_explicit_opt_in(
    cli: Callable[..., CliResult], tmp_path: Path
) -> None:
    result = cli("paper", "--live", "--userdir", tmp_path)
    assert result.code == 2 and "--i-understand-live-risk" in result.err


def test_paper_with_a_userdir_finds_its_strategy_and_keeps_its_database_there(
    tmp_path: Path,
) -> None:
    """Before: Freqtrade could not load RegimeStrategy from another user dir, and the
    shipped config's relative db_url landed under the working directory."""
    import subprocess
    import sys

    userdir = tmp_path / "mine"
    command, environment = trade_command(
        config=CONFIG,
        context=local_context(userdir, "x"),
        strategy=None,
        model=None,
        live=False,
        check_exchange=False,
    )
    assert "--db-url" not in command  # a database URL may hold a password: environment only
    db_url = environment["FREQTRADE__DB_URL"]
    assert db_url == f"sqlite:///{userdir.resolve() / 'tradesv3.dryrun.sqlite'}"
    listed = subprocess.run(
        [sys.executable, "-m", "freqtrade", "list-strategies", "--userdir", str(userdir), "-1"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=300,
    )
    assert listed.returncode == 0, listed.stderr[-2000:]
    names = set(listed.stdout.split())
    assert {"RegimeStrategy", "RegimeRulesStrategy", "RegimeAllocationStrategy"} <= names


@pytest.mark.parametrize(
    ("configured", "expected"),
    [
        (None, "{ud}/tradesv3.dryrun.sqlite"),
        ("sqlite:///user_data/tradesv3.dryrun.sqlite", "{ud}/tradesv3.dryrun.sqlite"),
        ("sqlite:///trades/paper.sqlite", "{ud}/trades/paper.sqlite"),
        ("sqlite:////var/lib/bot/trades.sqlite", "/var/lib/bot/trades.sqlite"),
        ("postgresql+psycopg://bot@db/trades", "postgresql+psycopg://bot@db/trades"),
    ],
)
def test_database_url_is_under_the_user_dir_unless_absolute(
    tmp_path: Path, configured: str | None, expected: str
) -> None:
    from strategies.trading_config import database_url

    settings = {} if configured is None else {"db_url": configured}
    got = database_url(settings, UserDir(tmp_path), {}, live=False)
    want = expected.format(ud=tmp_path.resolve())
    assert got == (want if "://" in want else f"sqlite:///{want}")


def test_paper_without_the_exchange_exits_with_a_clear_message(tmp_path: Path) -> None:
    """Before: Freqtrade logged "Could not load markets" and then hung until killed.
    The network is stubbed by ccxt's own proxy setting (which Freqtrade also uses) pointing
    at a port where nothing listens, so the exchange is unreachable on any machine."""
    import subprocess
    import sys

    config = json.loads(CONFIG.read_text())
    closed = "http://127.0.0.1:9"  # the discard port: nothing listens
    config["exchange"]["ccxt_config"] = {"httpsProxy": closed}
    path = tmp_path / "offline.json"
    path.write_text(json.dumps(config))
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "tradingbot",
            "paper",
            "--config",
            str(path),
            "--userdir",
            str(tmp_path / "ud"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 2, done.stdout + done.stderr
    assert "exchange binance is not reachable within 5 s" in done.stderr + done.stdout
    assert "Traceback" not in done.stderr


def _refused_paths(tmp_path: Path, config: dict[str, object]) -> str:
    path = tmp_path / "c.json"
    path.write_text(json.dumps(config))
    with pytest.raises(PaperError, match="secrets are written in the config") as error:
        trade_command(
            config=path,
            context=local_context(tmp_path, "x"),
            strategy=None,
            model=None,
            live=False,
            check_exchange=False,
        )
    return str(error.value)


@pytest.mark.parametrize(
    ("section", "value", "where"),
    [
        ("exchange", {"ccxt_config": {"headers": {"X-MBX-APIKEY": "v"}}}, "headers.X-MBX-APIKEY"),
        ("exchange", {"ccxt_config": {"API-KEY": "v"}}, "ccxt_config.API-KEY"),
        ("exchange", {"login": "v", "twofa": "v"}, "exchange.twofa"),
        ("webhook", {"enabled": True, "url": "https://hooks.example/T0K3N"}, "webhook.url"),
        ("db_url", "postgresql://bot:v@db/trades", "db_url (its password)"),
    ],
)
def test_every_spelling_of_a_secret_is_refused(
    tmp_path: Path, section: str, value: object, where: str
) -> None:
    config = json.loads(CONFIG.read_text())
    if isinstance(value, dict) and isinstance(config.get(section), dict):
        config[section].update(value)
    else:
        config[section] = value
    message = _refused_paths(tmp_path, config)
    assert where in message
    assert "T0K3N" not in message and ":v@" not in message


def test_a_database_password_never_reaches_the_command_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FREQTRADE__DB_URL", "postgresql://bot:pw-91c2@db/trades")
    command, environment = trade_command(
        config=CONFIG,
        context=local_context(tmp_path, "x"),
        strategy=None,
        model=None,
        live=False,
        check_exchange=False,
    )
    assert "pw-91c2" not in " ".join(command)
    assert environment["FREQTRADE__DB_URL"] == "postgresql://bot:pw-91c2@db/trades"
