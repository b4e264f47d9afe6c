"""The risk manager's settings (the ``RISK_*`` environment variables) and value types:
money as ``Decimal``, the circuit breaker's file, a decision, an open position."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_DOWN, Decimal
from pathlib import Path

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError, field_validator

from common.errors import TradingbotError, validation_message
from common.layout import UserDir

MONEY = Decimal("0.00000001")
ISO_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})$")


def money(value: Decimal | float | int | str) -> Decimal:
    """A Decimal amount quantised to 8 decimals (rounded down: never more than allowed)."""
    return Decimal(str(value)).quantize(MONEY, rounding=ROUND_DOWN)


class RiskBlocked(TradingbotError):
    """The risk manager refused an action."""


class RiskSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    state_dir: Path
    circuit_breaker_file: Path
    db_path: Path
    allow_when_cb: bool = False
    max_concurrent_backtests: int = Field(default=0, ge=0)  # 0 = unlimited
    concurrency_ttl_sec: int = Field(default=900, ge=1)
    max_backtest_drawdown_pct: float | None = Field(default=None, gt=0, le=1)  # a ratio: 0.2 = 20%
    live_max_concurrent_trades: int | None = Field(default=None, ge=0)
    live_max_per_market_exposure_pct: Decimal | None = Field(default=None, gt=0, le=1)

    @classmethod
    def for_userdir(cls, layout: UserDir, **overrides: object) -> RiskSettings:
        # An override of None (an unset RISK_STATE_DIR) means the default, never a dir named "None".
        state_dir = overrides.pop("state_dir", None)
        state = Path(str(state_dir)) if state_dir is not None else layout.risk_state
        values: dict[str, object] = {
            "state_dir": state,
            "circuit_breaker_file": state / "circuit_breaker.json",
            "db_path": layout.registry_db,
        }
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls.model_validate(values)

    @classmethod
    def from_env(cls, env: Mapping[str, str], layout: UserDir) -> RiskSettings:
        """The seeds' ``RISK_*`` variables; blank means the default.

        A misspelt name or a value out of range is an error, never ignored: a guard
        that silently is not there is worse than one that refuses to start.
        """
        unknown = sorted(
            name for name in env if name.startswith("RISK_") and name not in ENV_VARIABLES
        )
        if unknown:
            raise RiskBlocked(
                f"unknown risk setting {', '.join(unknown)} in the environment",
                hint="the risk manager reads " + ", ".join(ENV_VARIABLES),
            )

        def get(name: str) -> str | None:
            value = env.get(name, "").strip()
            return value or None

        allow = (get("RISK_ALLOW_WHEN_CB") or "0").lower()
        if allow not in TRUE_WORDS | FALSE_WORDS:
            raise RiskBlocked(
                f"invalid RISK_* setting: RISK_ALLOW_WHEN_CB={allow!r} is neither true nor false",
                hint="use 1 or 0",
            )
        try:
            return cls.for_userdir(
                layout,
                state_dir=get("RISK_STATE_DIR"),
                circuit_breaker_file=get("RISK_CIRCUIT_BREAKER_FILE"),
                db_path=get("RISK_DB_PATH"),
                allow_when_cb=allow in TRUE_WORDS,
                max_concurrent_backtests=get("RISK_MAX_CONCURRENT_BACKTESTS"),
                concurrency_ttl_sec=get("RISK_CONCURRENCY_TTL_SEC"),
                max_backtest_drawdown_pct=get("RISK_MAX_BACKTEST_DRAWDOWN_PCT"),
                live_max_concurrent_trades=get("RISK_LIVE_MAX_CONCURRENT_TRADES"),
                live_max_per_market_exposure_pct=get("RISK_LIVE_MAX_PER_MARKET_EXPOSURE_PCT"),
            )
        except ValidationError as exc:
            raise RiskBlocked(
                f"invalid RISK_* setting: {validation_message(exc)}",
                hint="ratios are fractions between 0 and 1 (0.2 means 20%), counts are whole numbers",
            ) from exc


ENV_VARIABLES = (
    "RISK_STATE_DIR",
    "RISK_CIRCUIT_BREAKER_FILE",
    "RISK_DB_PATH",
    "RISK_ALLOW_WHEN_CB",
    "RISK_MAX_CONCURRENT_BACKTESTS",
    "RISK_CONCURRENCY_TTL_SEC",
    "RISK_MAX_BACKTEST_DRAWDOWN_PCT",
    "RISK_LIVE_MAX_CONCURRENT_TRADES",
    "RISK_LIVE_MAX_PER_MARKET_EXPOSURE_PCT",
)


TRUE_WORDS = frozenset({"1", "true", "yes"})


FALSE_WORDS = frozenset({"0", "false", "no"})


MAX_BREAKER_MINUTES = 10 * 366 * 24 * 60  # ten years: longer is a typo, use disable instead


class CircuitBreaker(BaseModel):
    model_config = ConfigDict(extra="forbid")

    active: bool
    reason: str = ""
    # Aware only: a naive time is ambiguous, so the file is invalid and blocks.
    until_iso: AwareDatetime | None = None

    @field_validator("active", mode="before")
    @classmethod
    def _a_boolean(cls, value: object) -> object:
        if not isinstance(value, bool):  # "false" or 0 are typos, not a decision
            raise ValueError(f"active must be true or false, not {value!r}")
        return value

    @field_validator("until_iso", mode="before")
    @classmethod
    def _iso_with_zone(cls, value: object) -> object:
        """Only ISO 8601 text with a zone: a number (``20991231``) would be read as
        seconds since 1970, a breaker that expired long ago."""
        if value is None or isinstance(value, datetime):  # made in code, zone checked below
            return value
        if not isinstance(value, str) or not ISO_TIME.match(value):
            raise ValueError(
                f"until_iso must be an ISO 8601 time with a zone, e.g. "
                f"2026-08-17T10:15:00Z, not {value!r}"
            )
        return value

    def in_force(self, now: datetime) -> bool:
        return self.active and (self.until_iso is None or now < self.until_iso)


@dataclass(frozen=True)
class Decision:
    allowed: bool
    code: str
    reason: str


ALLOWED = Decision(True, "ok", "")


@dataclass(frozen=True)
class Position:
    pair: str
    stake: Decimal
