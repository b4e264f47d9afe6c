"""The risk manager: every trade and every backtest passes here first.

* **Circuit breaker**: a JSON file ``{"active", "reason", "until_iso"}``. While
  active (and not expired) new entries and backtests are blocked, unless
  ``allow_when_cb``. Fail safe: an unreadable or invalid file blocks too and
  records an incident.
* **Concurrency locks** for backtests: lock files with a TTL under
  ``<state_dir>/running``; orphans of killed processes expire.
* **Drawdown guardrail**: block a backtest when the last recorded backtest's
  ``max_drawdown_account`` is at or above the threshold.
* **Live limits**: maximum concurrent trades and maximum exposure per market,
  enforced when a trade is confirmed and when its stake is sized.
* **Incidents** persist in SQLite (``incidents`` table) and are logged as JSON
  with ``correlation_id`` and ``run_id``.

Money is ``Decimal`` quantised to 8 decimals. Settings come from the ``RISK_*``
environment variables (see :meth:`RiskSettings.from_env`) or explicit arguments.
"""

from __future__ import annotations

# Settings and value types live in risk_settings; they are imported here for callers of
# strategies.risk (the strategy files among them).
import contextlib
import json
import logging
import os
import socket
import stat
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from common.atomic import pid_alive, write_text_atomic
from ml import observability
from ml.observability import MetricsTextfile
from strategies.risk_log import IncidentLog
from strategies.risk_settings import (
    ALLOWED,
    MAX_BREAKER_MINUTES,
    CircuitBreaker,
    Decision,
    Position,
    RiskBlocked,
    RiskSettings,
    money,
)

__all__ = [
    "CircuitBreaker",
    "Decision",
    "Position",
    "RiskBlocked",
    "RiskManager",
    "RiskSettings",
    "money",
    "refuse_entry",
]

logger = logging.getLogger("tradingbot.risk")

MAX_BREAKER_BYTES = 64 * 1024  # {"active", "reason", "until_iso"}: a reason, not a book


def read_small_regular_file(path: Path, limit: int) -> str | None:
    """The UTF-8 text of ``path``, or None when nothing is there. Raises ``ValueError``
    for anything but a regular file of at most ``limit`` bytes: it is opened without
    blocking (a FIFO with no writer opens at once) and checked before it is read."""
    if not os.path.lexists(path):
        return None
    descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    with os.fdopen(descriptor, "rb") as handle:
        status = os.fstat(descriptor)
        if not stat.S_ISREG(status.st_mode):
            raise ValueError(f"{path} is not a regular file")
        if status.st_size > limit:
            raise ValueError(f"{path} is {status.st_size:,} bytes, more than {limit:,}")
        data = handle.read(limit + 1)
    if len(data) > limit:
        raise ValueError(f"{path} is more than {limit:,} bytes")
    return data.decode("utf-8")


class RiskManager(IncidentLog):
    def __init__(
        self,
        settings: RiskSettings,
        *,
        correlation_id: str | None = None,
        run_id: str | None = None,
        metrics: MetricsTextfile | None = None,
    ):
        self.settings = settings
        self.correlation_id = (
            correlation_id or observability.correlation_id.get() or uuid.uuid4().hex[:12]
        )
        self.run_id = run_id or observability.run_id.get()
        self.metrics = metrics

    # -- circuit breaker -------------------------------------------------------------

    def read_breaker(self) -> CircuitBreaker | None:
        """The breaker file's content; None when there is no file. Raises (and the
        caller blocks) for anything but a small regular file: a FIFO would hang the bot
        loop, a link to a device would be read forever, a huge file would exhaust memory."""
        text = read_small_regular_file(self.settings.circuit_breaker_file, MAX_BREAKER_BYTES)
        return None if text is None else CircuitBreaker.model_validate_json(text)

    def breaker_decision(self, now: datetime | None = None) -> Decision:
        now = now or datetime.now(UTC)
        try:
            breaker = self.read_breaker()
        except Exception as exc:  # any failure to read the breaker blocks: fail closed
            detail = " ".join(str(exc).split())
            reason = f"circuit-breaker file {self.settings.circuit_breaker_file} is unreadable or invalid: {detail}"
            self.try_record_incident("error", "cb_invalid", reason)
            return Decision(False, "cb_invalid", reason)
        if breaker is None or not breaker.in_force(now):
            return ALLOWED
        if self.settings.allow_when_cb:
            self._log(
                logging.WARNING,
                "cb_override",
                f"circuit breaker active ({breaker.reason}) but RISK_ALLOW_WHEN_CB=1",
            )
            return ALLOWED
        until = f" until {breaker.until_iso.isoformat()}" if breaker.until_iso else ""
        return Decision(False, "cb_active", f"circuit breaker active{until}: {breaker.reason}")

    def enable_breaker(
        self, reason: str, *, minutes: float | None = None, until: datetime | None = None
    ) -> CircuitBreaker:
        if minutes is not None and until is not None:
            raise RiskBlocked("give --minutes or --until, not both")
        if minutes is not None:
            if not 0 < minutes <= MAX_BREAKER_MINUTES:  # also refuses NaN
                raise RiskBlocked(
                    f"--minutes {minutes} is not a duration between 0 and {MAX_BREAKER_MINUTES:,}",
                    hint="give a positive number of minutes, or --until a UTC time",
                )
            until = datetime.now(UTC) + timedelta(minutes=minutes)
        if until is not None and until.tzinfo is None:
            raise RiskBlocked("--until must be a UTC time with a zone, e.g. 2026-08-17T10:15:00Z")
        if until is not None and until <= datetime.now(UTC):
            raise RiskBlocked(
                f"--until {until.isoformat()} is in the past: the breaker would not block anything",
                hint="give a future time, or use risk disable",
            )
        breaker = CircuitBreaker(active=True, reason=reason, until_iso=until)
        write_text_atomic(self.settings.circuit_breaker_file, breaker.model_dump_json(indent=2))
        # the breaker holds from here; an incident database that is locked or broken only
        # loses the record (logged), never the breaker
        self.try_record_incident("warning", "cb_enabled", f"circuit breaker enabled: {reason}")
        return breaker

    def disable_breaker(self) -> CircuitBreaker:
        breaker = CircuitBreaker(active=False, reason="disabled")
        write_text_atomic(self.settings.circuit_breaker_file, breaker.model_dump_json(indent=2))
        self._log(logging.INFO, "cb_disabled", "circuit breaker disabled")
        return breaker

    # -- trades ----------------------------------------------------------------------

    def check_entry(
        self,
        pair: str,
        stake: Decimal,
        open_positions: list[Position],
        wallet_total: Decimal,
        *,
        use_breaker: bool = True,
    ) -> Decision:
        """May a new ``stake`` in ``pair`` be opened next to ``open_positions``?

        Never raises: any failure inside the checks is a refusal (see :meth:`refuse_on_error`).
        """
        try:
            return self._check_entry(pair, stake, open_positions, wallet_total, use_breaker)
        except Exception as exc:
            return self.refuse_on_error(f"entry in {pair}", exc)

    def refuse_on_error(self, action: str, exc: BaseException) -> Decision:
        """The decision when the risk checks themselves fail: refuse, log, record.

        Freqtrade treats an exception raised in ``confirm_trade_entry`` as "allow",
        so every path from a strategy into this manager ends here instead of raising.
        """
        detail = " ".join(f"{type(exc).__name__}: {exc}".split())
        decision = Decision(False, "risk_error", f"risk check failed, {action} refused: {detail}")
        try:
            self._block(decision, action)
        except Exception:  # logging or the metrics file failed too; the refusal stands
            logger.exception("risk_block_risk_error: %s", decision.reason)
        self.try_record_incident("error", "risk_error", decision.reason)
        return decision

    def _check_entry(
        self,
        pair: str,
        stake: Decimal,
        open_positions: list[Position],
        wallet_total: Decimal,
        use_breaker: bool,
    ) -> Decision:
        self._valid_stake(pair, stake)
        if use_breaker:
            decision = self.breaker_decision()
            if not decision.allowed:
                return self._block(decision, pair)
        limit = self.settings.live_max_concurrent_trades
        if limit is not None and len(open_positions) >= limit:
            return self._block(
                Decision(False, "max_trades", f"{len(open_positions)} open trades, limit {limit}"),
                pair,
            )
        cap = self.exposure_cap(pair, open_positions, wallet_total)
        if cap is not None and money(stake) > cap:
            return self._block(
                Decision(
                    False,
                    "max_exposure",
                    f"stake {money(stake)} exceeds the room {cap} left in {pair}",
                ),
                pair,
            )
        return ALLOWED

    def exposure_cap(
        self, pair: str, open_positions: list[Position], wallet_total: Decimal
    ) -> Decimal | None:
        """Largest new stake in ``pair`` within the per-market exposure limit (None: no limit)."""
        share = self.settings.live_max_per_market_exposure_pct
        if share is None:
            return None
        held = sum((p.stake for p in open_positions if p.pair == pair), Decimal(0))
        return max(money(Decimal(wallet_total) * share - held), Decimal(0))

    def size_stake(
        self, pair: str, proposed: Decimal, open_positions: list[Position], wallet_total: Decimal
    ) -> Decimal:
        """``proposed`` cut to the exposure room in ``pair``; never below 0 (a negative or
        non-finite proposal stakes nothing)."""
        stake = money(proposed) if Decimal(proposed).is_finite() else Decimal(0)
        stake = max(stake, Decimal(0))
        cap = self.exposure_cap(pair, open_positions, wallet_total)
        return stake if cap is None else min(stake, cap)

    def size_increase(
        self,
        pair: str,
        stake: Decimal,
        open_positions: list[Position],
        wallet_total: Decimal,
        *,
        use_breaker: bool = True,
    ) -> Decimal:
        """How much of an addition of ``stake`` to the open position in ``pair`` may be
        bought: 0 while the circuit breaker is in force (``use_breaker``: a running bot)
        or when the position already fills its exposure room, else ``stake`` cut to that
        room. Each refusal or cut is logged and counted. Never raises: a failure is 0."""
        try:
            return self._size_increase(pair, stake, open_positions, wallet_total, use_breaker)
        except Exception as exc:
            self.refuse_on_error(f"position increase in {pair}", exc)
            return Decimal(0)

    def _size_increase(
        self,
        pair: str,
        stake: Decimal,
        open_positions: list[Position],
        wallet_total: Decimal,
        use_breaker: bool,
    ) -> Decimal:
        wanted = self._valid_stake(pair, stake)
        if use_breaker:
            decision = self.breaker_decision()
            if not decision.allowed:
                reason = f"position increase refused: {decision.reason}"
                self._block(Decision(False, decision.code, reason), pair)
                return Decimal(0)
        cap = self.exposure_cap(pair, open_positions, wallet_total)
        if cap is None or wanted <= cap:
            return wanted
        reason = f"position increase of {wanted} exceeds the room {cap} left in {pair}" + (
            f": cut to {cap}" if cap > 0 else ": refused"
        )
        self._block(Decision(False, "max_exposure", reason), pair)
        return cap

    @staticmethod
    def _valid_stake(pair: str, stake: Decimal) -> Decimal:
        """``stake`` as money; a negative, zero or non-finite stake is an error, never
        a trade (a strategy bug would otherwise be read as a size)."""
        value = Decimal(stake)
        if not value.is_finite() or value <= 0:
            raise ValueError(f"stake {stake} in {pair} is not a positive amount")
        return money(value)

    def _block(self, decision: Decision, pair: str) -> Decision:
        self._log(
            logging.WARNING, f"risk_block_{decision.code}", f"{pair}: {decision.reason}", pair=pair
        )
        if self.metrics is not None:
            self.metrics.inc("tradingbot_risk_blocks_total", code=decision.code)
            self.metrics.flush()
        return decision

    # -- backtests -------------------------------------------------------------------

    def check_backtest(self) -> Decision:
        decision = self.breaker_decision()
        if not decision.allowed:
            return decision
        threshold = self.settings.max_backtest_drawdown_pct
        last = self.last_backtest_drawdown()
        if threshold is not None and last is not None and last >= threshold:
            reason = f"last backtest's max drawdown {last:.1%} >= RISK_MAX_BACKTEST_DRAWDOWN_PCT {threshold:.1%}"
            self.record_incident("warning", "max_dd_block", reason)
            return Decision(False, "max_dd_block", reason)
        return ALLOWED

    @contextlib.contextmanager
    def backtest_slot(self) -> Iterator[Path]:
        """Hold one of ``max_concurrent_backtests`` slots (a lock file with a TTL)."""
        running = self.settings.state_dir / "running"
        running.mkdir(parents=True, exist_ok=True)
        now = time.time()
        for lock in running.glob("*.lock"):  # orphans of killed processes
            with contextlib.suppress(FileNotFoundError):
                expired = now - lock.stat().st_mtime > self.settings.concurrency_ttl_sec
                if expired or _holder_is_dead(lock):
                    lock.unlink()
        limit = self.settings.max_concurrent_backtests
        active = len(list(running.glob("*.lock")))
        if limit and active >= limit:
            self.record_incident(
                "warning", "concurrency_block", f"{active} backtests running, limit {limit}"
            )
            raise RiskBlocked(
                f"{active} backtests already running (RISK_MAX_CONCURRENT_BACKTESTS={limit})",
                hint=f"wait, or remove stale locks in {running}",
            )
        lock = running / f"{os.getpid()}-{uuid.uuid4().hex[:8]}.lock"
        lock.write_text(
            json.dumps(
                {
                    "pid": os.getpid(),
                    "host": socket.gethostname(),
                    "correlation_id": self.correlation_id,
                }
            )
        )
        self._log(logging.INFO, "slot_acquired", str(lock))
        try:
            yield lock
        finally:
            lock.unlink(missing_ok=True)


def _holder_is_dead(lock: Path) -> bool:
    """Was ``lock`` taken by a process of this host that no longer exists?"""
    try:
        holder = json.loads(lock.read_text(encoding="utf-8"))
        pid, host = int(holder["pid"]), str(holder["host"])
    except (OSError, ValueError, KeyError, TypeError):
        return False  # unknown holder (or being written): only the TTL may free it
    return host == socket.gethostname() and not pid_alive(pid)


def refuse_entry(risk: RiskManager | None, pair: str, exc: BaseException) -> bool:
    """``False`` for a strategy hook whose risk check raised, logged and recorded when possible.

    ``risk`` is None when the manager itself could not be built (bot_start failed).
    """
    if risk is None:
        logger.error(
            json.dumps(
                {
                    "event": "risk_block_risk_error",
                    "message": f"{pair}: no risk manager ({type(exc).__name__}: {exc}), entry refused",
                    "pair": pair,
                }
            )
        )
        return False
    return risk.refuse_on_error(f"entry in {pair}", exc).allowed
