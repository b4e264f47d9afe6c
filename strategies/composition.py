"""A strategy as configuration: entry and exit blocks, their parameters, and Freqtrade settings.

A composition is a TOML file (``user_data/strategies/compositions/<Name>.toml``)::

    [strategy]
    name = "TrendPullbackStrategy"
    doc = "Buy oversold pullbacks in an uptrend; leave on a stop, a time limit or the trend."
    timeframe = "1h"
    entry = ["trend_filter", "rsi_bollinger"]     # all must fire
    exit = ["trend_break", "atr_stop", "time_stop"]  # signals: the first that fires
    stoploss = -0.10
    minimal_roi = { "0" = 10.0 }

    [strategy.parameters]   # defaults of the blocks' declared parameters
    sma_window = 100

Entry blocks are combined with AND (each is a condition), exit signal blocks with OR
(the first listed that fires names the exit), and position blocks (stops, time
limits, partial exits) apply to open trades. :meth:`Composition.signals` is the one
signal code: the Freqtrade strategy (:mod:`strategies.composed`) and the tuning
replay (:mod:`strategies.replay`) both call it.
"""

from __future__ import annotations

import keyword
import logging
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from common.errors import SpecError, validation_message
from ml.model_uris import check_model_uri
from strategies.blocks import BLOCKS, BoolArray, FloatArray, Param, Values, regime_names
from strategies.position_rules import PositionRule

TAG_LENGTH = 250
COMPOSITIONS_DIR = "compositions"  # beside the strategy files
MAX_COMPOSITION_BYTES = 64 * 1024  # a composition is a page of settings, never more
MAX_DOC_CHARS = 2000
# names a composition may not take: our base classes and Freqtrade's
RESERVED_NAMES = frozenset({"ComposedStrategy", "GuardedStrategy", "IStrategy"})

logger = logging.getLogger(__name__)


class Composition(BaseModel):
    """A composed strategy: which blocks, with which defaults, under which Freqtrade settings."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", max_length=100)
    doc: str = Field(default="", max_length=MAX_DOC_CHARS)
    timeframe: str = Field(default="1h", pattern=r"^[0-9]{1,3}[mhdwM]$")
    model: str | None = None  # default model URI; None: the blocks read candles only
    entry: list[str] = Field(min_length=1)
    exit: list[str] = Field(default_factory=list)
    parameters: dict[str, float] = Field(default_factory=dict)
    stoploss: float = Field(default=-0.10, gt=-1.0, lt=0.0)
    minimal_roi: dict[str, float] = Field(default_factory=lambda: {"0": 10.0})
    trailing_stop_positive: float | None = Field(default=None, gt=0.0, lt=1.0)
    trailing_stop_positive_offset: float = Field(default=0.0, ge=0.0, lt=10.0)
    startup_candle_count: int = Field(default=400, ge=0)

    @model_validator(mode="after")
    def _a_class_name(self) -> Composition:
        if keyword.iskeyword(self.name) or keyword.issoftkeyword(self.name):
            raise ValueError(f"name: {self.name!r} is a Python keyword, not a class name")
        if self.name in RESERVED_NAMES:
            raise ValueError(f"name: {self.name!r} is one of Tradingbot's or Freqtrade's classes")
        if self.model is not None:
            try:
                check_model_uri(self.model, where="model")
            except SpecError as exc:
                raise ValueError(f"{exc.message} ({exc.hint})") from None
        return self

    @model_validator(mode="after")
    def _known_blocks(self) -> Composition:
        for role, names in (("entry", self.entry), ("exit", self.exit)):
            for name in names:
                block = BLOCKS.get(name)
                if block is None:
                    raise ValueError(f"{role}: unknown block {name!r}; known: {sorted(BLOCKS)}")
                allowed = ("entry",) if role == "entry" else ("exit", "position")
                if block.role not in allowed:
                    raise ValueError(f"{role}: {name!r} is an {block.role} block")
        if len(set(self.entry + self.exit)) != len(self.entry) + len(self.exit):
            raise ValueError("a block is listed twice")
        declared = {p.name: p for p in self._declared()}
        for name, value in self.parameters.items():
            if name not in declared:
                raise ValueError(f"parameters: {name!r} is no parameter of the listed blocks")
            declared[name].with_default(value)  # in range, or a clear error
        return self

    def _declared(self) -> list[Param]:
        params: list[Param] = []
        for name in self.entry + self.exit:
            params += BLOCKS[name].params
        names = [p.name for p in params]
        if len(set(names)) != len(names):
            raise ValueError(f"two blocks declare the same parameter: {names}")
        return params

    def params(self) -> list[Param]:
        """The declared parameters, with this composition's defaults."""
        return [
            p.with_default(self.parameters[p.name]) if p.name in self.parameters else p
            for p in self._declared()
        ]

    def defaults(self) -> dict[str, float]:
        return {p.name: p.default for p in self.params()}

    def uses(self, block: str) -> bool:
        return block in self.entry or block in self.exit

    def position_rules(self) -> dict[str, PositionRule]:
        """Block name -> rule of its position blocks, in the order the composition lists them."""
        blocks = [BLOCKS[name] for name in self.exit]
        return {b.name: b.rule for b in blocks if b.role == "position" and b.rule is not None}

    @property
    def exit_signals(self) -> list[str]:
        return [name for name in self.exit if BLOCKS[name].role == "exit"]

    def freqtrade_settings(self) -> dict[str, Any]:
        """The Freqtrade strategy attributes this composition sets."""
        settings: dict[str, Any] = {
            "timeframe": self.timeframe,
            "stoploss": self.stoploss,
            "minimal_roi": dict(self.minimal_roi),
            "startup_candle_count": self.startup_candle_count,
            "trailing_stop": False,
        }
        for name in self.exit:
            settings.update(BLOCKS[name].freqtrade)
        if self.trailing_stop_positive is not None:
            settings["trailing_stop_positive"] = self.trailing_stop_positive
            settings["trailing_stop_positive_offset"] = self.trailing_stop_positive_offset
        return settings

    def signals(self, frame: pd.DataFrame, values: Values) -> Signals:
        """Entry and exit signals of every candle of ``frame`` (the analysed dataframe)."""
        enter, confidence, enter_tag = self.entries(frame, values)
        exit_, exit_tag = self.exits(frame, values)
        return Signals(enter, exit_, confidence, enter_tag, exit_tag)

    def entries(
        self, frame: pd.DataFrame, values: Values
    ) -> tuple[BoolArray, FloatArray, pd.Series]:
        """Where every entry block fires, the entry's confidence (the product of the
        blocks') and its tag."""
        enter = np.ones(len(frame), dtype=bool)
        confidence = np.ones(len(frame), dtype="float64")
        reasons: list[pd.Series] = []
        for name in self.entry:
            signal = BLOCKS[name](frame, values)
            enter &= signal.fires
            confidence *= np.nan_to_num(signal.confidence, nan=0.0)
            reasons.append(_per_row(signal.reason, frame.index))
        return enter, confidence, _tag(frame, _joined(reasons, frame.index))

    def exits(self, frame: pd.DataFrame, values: Values) -> tuple[BoolArray, pd.Series]:
        """Where any exit signal block fires, and the tag of the first listed that does."""
        exit_ = np.zeros(len(frame), dtype=bool)
        reason = pd.Series("", index=frame.index, dtype=object)
        for name in self.exit_signals:
            signal = BLOCKS[name](frame, values)
            first = signal.fires & ~exit_
            reason[first] = _per_row(signal.reason, frame.index)[first]
            exit_ |= signal.fires
        return exit_, _tag(frame, reason)


@dataclass(frozen=True)
class Signals:
    """Per candle: enter, exit, the entry's confidence (0..1) and the tags that name why."""

    enter: BoolArray
    exit: BoolArray
    confidence: FloatArray
    enter_tag: pd.Series
    exit_tag: pd.Series


def _per_row(reason: str | pd.Series, index: pd.Index) -> pd.Series:
    if isinstance(reason, str):
        return pd.Series(reason, index=index, dtype=object)
    return reason.reindex(index).fillna("").astype(str)


def _joined(reasons: list[pd.Series], index: pd.Index) -> pd.Series:
    joined = pd.Series("", index=index, dtype=object)
    for reason in reasons:
        joined = joined.where((joined == "") | (reason == ""), joined + "+") + reason
    return joined


def _tag(frame: pd.DataFrame, reasons: pd.Series) -> pd.Series:
    """``<regime>|<reasons>`` (regime first, so results group by regime at entry), or the
    reasons alone for a strategy without a model."""
    if "&-regime" not in frame:
        return reasons.str.slice(0, TAG_LENGTH)
    return (regime_names(frame) + "|" + reasons).str.slice(0, TAG_LENGTH)


def load_composition(path: Path) -> Composition:
    """Read a composition file; a bad one is a :class:`SpecError` naming the file."""
    data = _read_toml(path)
    if set(data) != {"strategy"}:
        raise SpecError(f"{path}: a composition has one table, [strategy]; found {sorted(data)}")
    try:
        composition = Composition.model_validate(data["strategy"])
    except ValidationError as exc:
        raise SpecError(f"{path}: {validation_message(exc)}") from exc
    if composition.name != path.stem:
        raise SpecError(
            f"{path}: name {composition.name!r} must match the file name",
            hint=f"rename the file to {composition.name}.toml or the strategy to {path.stem}",
        )
    return composition


def _read_toml(path: Path) -> dict[str, Any]:
    """The TOML of a composition file: a regular UTF-8 file of at most 64 KiB."""
    if not path.exists():
        raise SpecError(f"composition {path} not found")
    if not path.is_file():
        raise SpecError(f"{path}: not a regular file", hint="a composition is one TOML file")
    size = path.stat().st_size
    if size > MAX_COMPOSITION_BYTES:
        raise SpecError(
            f"{path}: {size:,} bytes; a composition is at most {MAX_COMPOSITION_BYTES:,}",
            hint=f"keep doc under {MAX_DOC_CHARS} characters; put long notes in docs/",
        )
    try:
        with path.open("rb") as handle:
            text = handle.read(MAX_COMPOSITION_BYTES + 1).decode("utf-8")
        return tomllib.loads(text)
    except UnicodeDecodeError as exc:
        raise SpecError(
            f"{path}: not UTF-8 text (byte {exc.start})", hint="save the file as UTF-8"
        ) from None
    except tomllib.TOMLDecodeError as exc:
        raise SpecError(f"{path}: not valid TOML ({exc})") from exc
    except RecursionError:
        raise SpecError(f"{path}: tables or arrays nested too deeply to be a composition") from None


def read_compositions(strategy_dir: Path) -> tuple[dict[str, Composition], dict[str, SpecError]]:
    """Every composition beside the strategy files in ``strategy_dir`` by name, and the
    error of each file that is not one (a bad file never hides the good ones)."""
    found: dict[str, Composition] = {}
    bad: dict[str, SpecError] = {}
    for path in sorted((strategy_dir / COMPOSITIONS_DIR).glob("*.toml")):
        try:
            found[path.stem] = load_composition(path)
        except SpecError as exc:
            bad[path.stem] = exc
    return found, bad


def compositions_in(strategy_dir: Path) -> dict[str, Composition]:
    """Every valid composition beside the strategy files in ``strategy_dir``, by name;
    each bad one is logged (and named by :func:`composition_error` when it is asked for)."""
    found, bad = read_compositions(strategy_dir)
    for name, exc in bad.items():
        logger.warning("composition %s is left out: %s", name, exc)
    return found


def composition_error(strategy_dir: Path, name: str) -> SpecError | None:
    """Why the composition ``name`` in ``strategy_dir`` is not usable, if it is there and bad."""
    path = strategy_dir / COMPOSITIONS_DIR / f"{name}.toml"
    if not path.exists() and not path.is_symlink():
        return None
    try:
        load_composition(path)
    except SpecError as exc:
        return exc
    return name_clash(strategy_dir, name)


GENERATED_PREFIX = "# Generated by tradingbot from compositions/"


def is_generated(path: Path) -> bool:
    """Was the strategy file ``path`` generated from a composition (its first line says so)?"""
    with path.open("rb") as handle:
        return handle.readline().startswith(GENERATED_PREFIX.encode())


def name_clash(strategy_dir: Path, name: str) -> SpecError | None:
    """The error when ``<name>.py`` beside the compositions is a strategy file that does
    not build its class from the composition ``name`` (a shipped strategy, say): Freqtrade
    would load that file and the composition would be silently ignored."""
    path = strategy_dir / f"{name}.py"
    if not path.is_file() or is_generated(path):
        return None
    if f'composition_beside(__file__, "{name}")' in path.read_text("utf-8", errors="replace"):
        return None
    return SpecError(
        f"{strategy_dir / COMPOSITIONS_DIR / name}.toml: {path.name} is a strategy file that "
        "is not built from this composition, so the composition would be ignored",
        hint="give the composition another name (its file name and [strategy] name)",
    )
