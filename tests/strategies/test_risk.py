"""The risk manager: circuit breaker, locks, drawdown guardrail, live limits, incidents."""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from common.layout import UserDir
from strategies.risk import Position, RiskBlocked, RiskManager, RiskSettings, money
from tests.conftest import CliResult


def manager(tmp_path: Path, **overrides: object) -> RiskManager:
    return RiskManager(
        RiskSettings.for_userdir(UserDir(tmp_path), **overrides),
        correlation_id="cid-1",
        run_id="run-1",
    )


def test_settings_from_the_seed_environment_variables(tmp_path: Path) -> None:
    env = {
        "RISK_MAX_CONCURRENT_BACKTESTS": "2",
        "RISK_CONCURRENCY_TTL_SEC": "60",
        "RISK_STATE_DIR": str(tmp_path / "st"),
        "RISK_ALLOW_WHEN_CB": "1",
        "RISK_MAX_BACKTEST_DRAWDOWN_PCT": "0.2",
        "RISK_LIVE_MAX_CONCURRENT_TRADES": "3",
        "RISK_LIVE_MAX_PER_MARKET_EXPOSURE_PCT": "0.25",
        "RISK_DB_PATH": "",
    }
    settings = RiskSettings.from_env(env, UserDir(tmp_path))
    assert settings.circuit_breaker_file == tmp_path / "st" / "circuit_breaker.json"
    assert settings.db_path == tmp_path / "registry" / "strategies_registry.sqlite"
    assert (
        settings.max_concurrent_backtests,
        settings.concurrency_ttl_sec,
        settings.allow_when_cb,
    ) == (2, 60, True)
    assert settings.live_max_per_market_exposure_pct == Decimal("0.25")
    with pytest.raises(RiskBlocked, match="live_max_concurrent_trades"):
        RiskSettings.from_env({"RISK_LIVE_MAX_CONCURRENT_TRADES": "many"}, UserDir(tmp_path))


def test_unset_environment_variables_mean_the_user_dir_defaults(tmp_path: Path) -> None:
    settings = RiskSettings.from_env({}, UserDir(tmp_path / "ud"))
    assert settings.state_dir == tmp_path / "ud" / "state"
    assert settings.circuit_breaker_file == tmp_path / "ud" / "state" / "circuit_breaker.json"
    assert settings.db_path == tmp_path / "ud" / "registry" / "strategies_registry.sqlite"


def test_circuit_breaker_blocks_until_it_expires(tmp_path: Path) -> None:
    risk = manager(tmp_path)
    assert risk.check_entry("BTC/USDT", Decimal(10), [], Decimal(1000)).allowed
    risk.enable_breaker("incident-123", minutes=60)
    decision = risk.check_entry("BTC/USDT", Decimal(10), [], Decimal(1000))
    assert (
        not decision.allowed and decision.code == "cb_active" and "incident-123" in decision.reason
    )
    assert not risk.check_backtest().allowed
    assert risk.check_entry("BTC/USDT", Decimal(10), [], Decimal(1000), use_breaker=False).allowed
    expired = datetime.now(UTC) - timedelta(minutes=1)
    risk.settings.circuit_breaker_file.write_text(
        json.dumps({"active": True, "reason": "old", "until_iso": expired.isoformat()})
    )
    assert risk.check_entry("BTC/USDT", Decimal(10), [], Decimal(1000)).allowed
    risk.enable_breaker("again", until=datetime.now(UTC) + timedelta(hours=1))
    risk.disable_breaker()
    assert risk.breaker_decision().allowed
    override = manager(tmp_path, allow_when_cb=True)
    override.enable_breaker("manual", minutes=5)
    assert override.breaker_decision().allowed


@pytest.mark.parametrize("content", ["{not json", '{"active": "maybe"}', '{"reason": "no active"}'])
def test_invalid_breaker_file_fails_safe_and_records_an_incident(
    tmp_path: Path, content: str
) -> None:
    risk = manager(tmp_path)
    risk.settings.state_dir.mkdir(parents=True)
    risk.settings.circuit_breaker_file.write_text(content)
    decision = risk.check_entry("BTC/USDT", Decimal(10), [], Decimal(1000))
    assert not decision.allowed and decision.code == "cb_invalid"
    incidents = risk.incidents()
    assert incidents[0]["code"] == "cb_invalid"
    assert incidents[0]["correlation_id"] == "cid-1" and incidents[0]["run_id"] == "run-1"


def test_live_limits_on_trades_and_exposure(tmp_path: Path) -> None:
    risk = manager(
        tmp_path, live_max_concurrent_trades=2, live_max_per_market_exposure_pct=Decimal("0.25")
    )
    wallet = Decimal("1000")
    open_ = [Position("BTC/USDT", Decimal("150")), Position("ETH/USDT", Decimal("100"))]
    assert risk.check_entry("XRP/USDT", Decimal(10), open_, wallet).code == "max_trades"
    one = open_[:1]
    assert risk.exposure_cap("BTC/USDT", one, wallet) == Decimal("100.00000000")
    assert risk.check_entry("BTC/USDT", Decimal("100"), one, wallet).allowed
    assert risk.check_entry("BTC/USDT", Decimal("100.00000001"), one, wallet).code == "max_exposure"
    assert risk.size_stake("BTC/USDT", Decimal("400"), one, wallet) == Decimal("100")
    assert risk.size_stake("ETH/USDT", Decimal("12.3456789123"), one, wallet) == Decimal(
        "12.34567891"
    )


def test_money_is_decimal_quantised_to_8_places() -> None:
    assert money(0.1) + money(0.2) == Decimal("0.30000000")
    assert money("1.999999999") == Decimal("1.99999999")


def test_drawdown_guardrail(tmp_path: Path) -> None:
    risk = manager(tmp_path, max_backtest_drawdown_pct=0.2)
    assert risk.check_backtest().allowed
    risk.record_backtest("a", 0.35)
    decision = risk.check_backtest()
    assert not decision.allowed and decision.code == "max_dd_block"
    time.sleep(0.001)
    risk.record_backtest("b", 0.1)
    assert risk.check_backtest().allowed
    assert [i["code"] for i in risk.incidents()] == ["max_dd_block"]


def test_backtest_locks_limit_concurrency_and_expire(tmp_path: Path) -> None:
    risk = manager(tmp_path, max_concurrent_backtests=1, concurrency_ttl_sec=60)
    with risk.backtest_slot() as lock:
        assert lock.exists()
        with pytest.raises(RiskBlocked, match="already running"), risk.backtest_slot():
            pass
    assert not lock.exists()
    orphan = risk.settings.state_dir / "running" / "999999-dead.lock"
    orphan.write_text("{}")
    old = time.time() - 120
    os.utime(orphan, (old, old))
    with risk.backtest_slot():
        assert not orphan.exists()


def test_incidents_are_json_logs_with_ids(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    risk = manager(tmp_path)
    with caplog.at_level(logging.WARNING, logger="tradingbot.risk"):
        incident = risk.record_incident("warning", "test_event", "something odd")
    payload = json.loads(caplog.records[-1].getMessage())
    assert payload["correlation_id"] == "cid-1" and payload["run_id"] == "run-1"
    assert payload["event"] == "test_event" and payload["incident_id"] == incident
    with sqlite3.connect(risk.settings.db_path) as db:
        assert db.execute("SELECT code FROM incidents").fetchall() == [("test_event",)]


def test_risk_cli(cli: Callable[..., CliResult], tmp_path: Path) -> None:
    assert (
        cli("risk", "enable", "--reason", "x", "--userdir", tmp_path).code == 2
    )  # needs a duration
    enabled = cli(
        "risk", "enable", "--reason", "exchange incident", "--minutes", "30", "--userdir", tmp_path
    )
    assert enabled.code == 0 and "ACTIVE" in enabled.out
    status = cli("risk", "status", "--userdir", tmp_path)
    assert (
        "BLOCKING" in status.out
        and "exchange incident" in status.out
        and "cb_enabled" in status.out
    )
    assert cli("risk", "disable", "--userdir", tmp_path).code == 0
    assert "clear" in cli("risk", "status", "--userdir", tmp_path).out
    bad = cli("risk", "enable", "--reason", "x", "--until", "tomorrow", "--userdir", tmp_path)
    assert bad.code == 2 and "ISO 8601" in bad.err
    naive = cli(
        "risk", "enable", "--reason", "x", "--until", "2030-01-01T00:00:00", "--userdir", tmp_path
    )
    assert naive.code == 2 and "UTC time with a zone" in naive.err


def test_a_breaker_end_without_a_zone_blocks_and_status_says_so(
    cli: Callable[..., CliResult], tmp_path: Path
) -> None:
    risk = manager(tmp_path)
    risk.settings.state_dir.mkdir(parents=True)
    risk.settings.circuit_breaker_file.write_text(
        '{"active": true, "reason": "x", "until_iso": "2099-01-01T00:00:00"}'
    )
    decision = risk.check_entry("BTC/USDT", Decimal(10), [], Decimal(1000))
    assert not decision.allowed and decision.code == "cb_invalid"
    assert "with a zone" in decision.reason
    status = cli("risk", "status", "--userdir", tmp_path)
    assert status.code == 0 and "BLOCKING" in status.out


def test_a_failing_check_refuses_even_when_no_incident_can_be_recorded(tmp_path: Path) -> None:
    (tmp_path / "db_is_a_dir").mkdir()
    risk = manager(tmp_path, db_path=tmp_path / "db_is_a_dir")
    risk.settings.state_dir.mkdir(parents=True)
    risk.settings.circuit_breaker_file.write_text("garbage")
    decision = risk.check_entry("BTC/USDT", Decimal(10), [], Decimal(1000))
    assert not decision.allowed and decision.code == "cb_invalid"
    # an error inside the checks themselves (here a wallet that is not a number)
    risk.settings.circuit_breaker_file.unlink()
    limited = manager(
        tmp_path, db_path=tmp_path / "db_is_a_dir", live_max_per_market_exposure_pct=Decimal("0.5")
    )
    broken = limited.check_entry("BTC/USDT", Decimal(10), [], "lots")  # type: ignore[arg-type]
    assert not broken.allowed and broken.code == "risk_error"
    good = manager(tmp_path / "ok", live_max_per_market_exposure_pct=Decimal("0.5"))
    assert good.check_entry("BTC/USDT", Decimal(10), [], "lots").code == "risk_error"  # type: ignore[arg-type]
    assert good.incidents()[0]["code"] == "risk_error"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"RISK_MAX_DRAWDOWN": "0.2"}, "unknown risk setting RISK_MAX_DRAWDOWN"),
        ({"RISK_MAX_BACKTEST_DRAWDOWN_PCT": "20"}, "max_backtest_drawdown_pct"),
        ({"RISK_LIVE_MAX_PER_MARKET_EXPOSURE_PCT": "25"}, "live_max_per_market_exposure_pct"),
        ({"RISK_ALLOW_WHEN_CB": "maybe"}, "RISK_ALLOW_WHEN_CB"),
        ({"RISK_CONCURRENCY_TTL_SEC": "-1"}, "concurrency_ttl_sec"),
    ],
)
def test_misspelt_or_out_of_range_settings_are_errors(
    tmp_path: Path, env: dict[str, str], message: str
) -> None:
    with pytest.raises(RiskBlocked, match=message):
        RiskSettings.from_env(env, UserDir(tmp_path))


@pytest.mark.parametrize("minutes", ["-5", "0", "nan", "inf", "1e10"])
def test_breaker_durations_must_be_positive_and_finite(
    cli: Callable[..., CliResult], tmp_path: Path, minutes: str
) -> None:
    result = cli("risk", "enable", "--reason", "x", "--minutes", minutes, "--userdir", tmp_path)
    assert result.code == 2 and "--minutes" in result.err
    assert "ACTIVE" not in result.out
    assert "clear" in cli("risk", "status", "--userdir", tmp_path).out


def test_a_backtest_lock_of_a_dead_process_is_freed_at_once(tmp_path: Path) -> None:
    import socket
    import subprocess
    import sys

    risk = manager(tmp_path, max_concurrent_backtests=1, concurrency_ttl_sec=900)
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    pid = int(dead.stdout)
    running = risk.settings.state_dir / "running"
    running.mkdir(parents=True)
    (running / f"{pid}-aaaa.lock").write_text(
        json.dumps({"pid": pid, "host": socket.gethostname(), "correlation_id": "x"})
    )
    other_host = running / "1-bbbb.lock"
    other_host.write_text(json.dumps({"pid": 1, "host": "elsewhere", "correlation_id": "y"}))
    with pytest.raises(RiskBlocked, match="already running"), risk.backtest_slot():
        pass  # a live holder on another host still counts
    other_host.unlink()
    with risk.backtest_slot() as lock:
        assert json.loads(lock.read_text())["host"] == socket.gethostname()
    assert list(running.iterdir()) == []


def test_a_position_increase_is_refused_by_the_breaker_and_cut_to_the_exposure_room(
    tmp_path: Path,
) -> None:
    risk = manager(tmp_path, live_max_per_market_exposure_pct="0.25")
    held = [Position("BTC/USDT", Decimal("200"))]
    assert risk.size_increase("BTC/USDT", Decimal(30), held, Decimal(1000)) == Decimal(30)
    assert risk.size_increase("BTC/USDT", Decimal(300), held, Decimal(1000)) == Decimal(50)
    full = [Position("BTC/USDT", Decimal("250"))]
    assert risk.size_increase("BTC/USDT", Decimal(10), full, Decimal(1000)) == 0
    risk.enable_breaker("incident", minutes=5)
    assert risk.size_increase("BTC/USDT", Decimal(1), [], Decimal(1000)) == 0
    # a backtest applies no breaker per trade, as for entries
    assert risk.size_increase("BTC/USDT", Decimal(1), [], Decimal(1000), use_breaker=False) == 1


@pytest.mark.parametrize("stake", ["-100", "NaN", "0", "Infinity"])
def test_a_stake_that_is_no_positive_amount_is_never_a_trade(tmp_path: Path, stake: str) -> None:
    risk = manager(tmp_path, live_max_per_market_exposure_pct="0.25")
    assert not risk.check_entry("BTC/USDT", Decimal(stake), [], Decimal(1000)).allowed
    assert risk.size_increase("BTC/USDT", Decimal(stake), [], Decimal(1000)) == 0
    assert risk.size_stake("BTC/USDT", Decimal(stake), [], Decimal(1000)) == 0


def test_every_shipped_strategy_that_adds_to_positions_is_guarded() -> None:
    """No strategy file can forget the guard: it is put on when the class is made."""
    import importlib.util

    from strategies.guarded import GuardedStrategy
    from strategies.install import SHIPPED_STRATEGIES

    checked = 0
    for path in sorted(SHIPPED_STRATEGIES.glob("*.py")):
        spec = importlib.util.spec_from_file_location(f"shipped_{path.stem}", path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        strategy = getattr(module, path.stem)
        if path.stem == "FreqaiRegimeStrategy":  # FreqAI's own loop, the benchmark's rival
            continue
        assert issubclass(strategy, GuardedStrategy), path.name
        assert strategy.adjust_trade_position.__tradingbot_guarded__, path.name
        assert strategy.confirm_trade_entry.__tradingbot_guarded__, path.name
        checked += 1
    assert checked == 4


def test_the_guard_caps_what_any_subclass_asks_for(tmp_path: Path) -> None:
    from types import SimpleNamespace

    from freqtrade.persistence import init_db

    from strategies.guarded import GuardedStrategy

    init_db("sqlite://")  # Freqtrade's own trade store, empty: no open positions

    class Greedy(GuardedStrategy):
        def populate_indicators(self, dataframe: object, metadata: dict) -> object:
            return dataframe

        def adjust_trade_position(self, trade: object, **kwargs: object) -> tuple[float, str]:
            return 10_000.0, "more"

    strategy = Greedy.__new__(Greedy)  # the hooks need no Freqtrade config here
    strategy.risk = manager(tmp_path, live_max_per_market_exposure_pct="0.25")
    strategy.wallets = SimpleNamespace(get_total_stake_amount=lambda: 1000.0)
    strategy.dp = SimpleNamespace(runmode=None)
    trade = SimpleNamespace(pair="BTC/USDT")
    assert strategy.adjust_trade_position(trade=trade, min_stake=5.0) == (250.0, "more")
    assert strategy.adjust_trade_position(trade=trade, min_stake=500.0) == (None, "more")
    strategy.risk = None  # no risk manager: refused
    assert strategy.adjust_trade_position(trade=trade, min_stake=5.0) == (None, "more")


def _fifo(path: Path) -> None:
    os.mkfifo(path)


def _dev_zero(path: Path) -> None:
    path.symlink_to("/dev/zero")


def _huge(path: Path) -> None:
    with path.open("wb") as handle:
        handle.truncate(1 << 30)  # 1 GiB, sparse


def _dangling(path: Path) -> None:
    path.symlink_to(path.parent / "gone.json")


@pytest.mark.parametrize("make", [_fifo, _dev_zero, _huge, _dangling])
def test_a_breaker_that_is_no_small_regular_file_blocks_at_once(
    tmp_path: Path, make: Callable[[Path], None]
) -> None:
    """A FIFO once hung the bot loop, /dev/zero cost 3.8 GB a loop, 1 GB aborted pydantic."""
    risk = manager(tmp_path)
    risk.settings.circuit_breaker_file.parent.mkdir(parents=True, exist_ok=True)
    make(risk.settings.circuit_breaker_file)
    started = time.monotonic()
    decision = risk.check_entry("BTC/USDT", Decimal(10), [], Decimal(1000))
    assert not decision.allowed and decision.code == "cb_invalid"
    assert time.monotonic() - started < 20  # no hang (it takes milliseconds)


@pytest.mark.parametrize("until", ["20991231", '"20991231"', "4102444800", '"2099-12-31"'])
def test_a_breaker_end_is_iso_8601_with_a_zone_or_the_file_blocks(
    tmp_path: Path, until: str
) -> None:
    """A numeric until_iso was read as seconds since 1970: expired, trades open."""
    risk = manager(tmp_path)
    path = risk.settings.circuit_breaker_file
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f'{{"active": true, "reason": "x", "until_iso": {until}}}')
    decision = risk.breaker_decision()
    assert not decision.allowed and decision.code == "cb_invalid"
    assert "ISO 8601" in decision.reason


def test_enabling_the_breaker_beside_a_locked_incident_database_is_quick_and_holds(
    tmp_path: Path,
) -> None:
    risk = manager(tmp_path)
    risk.record_incident("info", "setup", "create the database")
    holder = sqlite3.connect(risk.settings.db_path)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        started = time.monotonic()
        risk.enable_breaker("locked db", minutes=5)  # no traceback
        assert time.monotonic() - started < 20  # the lock is waited on for 2 s, not 30
        assert not risk.check_entry("BTC/USDT", Decimal(10), [], Decimal(1000)).allowed
    finally:
        holder.rollback()
        holder.close()
