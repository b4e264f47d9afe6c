"""A strategy's tunable values, as Freqtrade's parameter file lays them out.

:class:`StrategyParams` holds the declared ``*Parameter`` values by space, the stoploss,
the ROI table and the trailing-stop settings; it reads and writes ``<Strategy>.json``
beside the strategy file, where Freqtrade reads it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from common.atomic import write_text_atomic
from common.errors import SpecError, validation_message
from strategies.catalogue import StrategyInfo
from strategies.composition import Composition

TRAILING_FIELDS = (
    "trailing_stop",
    "trailing_stop_positive",
    "trailing_stop_positive_offset",
    "trailing_only_offset_is_reached",
)


class StrategyParams(BaseModel):
    """A strategy's tunable values, laid out as Freqtrade's parameter file lays them out.

    ``spaces`` holds the declared ``*Parameter`` values by space (``buy``, ``sell``);
    ``minimal_roi`` maps minutes since entry to the required profit ratio.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    strategy: str
    spaces: dict[str, dict[str, Any]] = Field(default_factory=dict)
    stoploss: float = Field(default=-0.10, gt=-1.0, lt=0.0)
    minimal_roi: dict[str, float] = Field(default_factory=lambda: {"0": 10.0})
    trailing_stop: bool = False
    trailing_stop_positive: float | None = Field(default=None, gt=0.0, lt=1.0)
    trailing_stop_positive_offset: float = Field(default=0.0, ge=0.0, lt=10.0)
    trailing_only_offset_is_reached: bool = False
    decimals: dict[str, int] = Field(default_factory=dict)  # of DecimalParameters, by name
    # the blocks of a composed strategy (the replay's signals); not part of the file
    composition: Composition | None = Field(default=None, exclude=True)

    @field_validator("minimal_roi")
    @classmethod
    def _roi_minutes(cls, value: dict[str, float]) -> dict[str, float]:
        for minutes in value:
            if not minutes.isdigit():
                raise ValueError(f"ROI keys are minutes since entry, got {minutes!r}")
        return dict(sorted(value.items(), key=lambda item: int(item[0])))

    def value(self, name: str) -> Any:
        for values in self.spaces.values():
            if name in values:
                return values[name]
        raise KeyError(name)

    def freqtrade_file(self) -> dict[str, Any]:
        """The content of ``<Strategy>.json`` as ``freqtrade hyperopt`` exports it. Floats
        are rounded to 10 decimals: Optuna's stepped values carry float noise
        (``-0.03499999999999999`` for a step of 0.005) that nobody wants to read."""
        params: dict[str, Any] = {
            space: {k: _clean(v) for k, v in values.items()}
            for space, values in self.spaces.items()
        }
        params["roi"] = {k: _clean(v) for k, v in self.minimal_roi.items()}
        params["stoploss"] = {"stoploss": _clean(self.stoploss)}
        params["trailing"] = {name: _clean(getattr(self, name)) for name in TRAILING_FIELDS}
        return {
            "strategy_name": self.strategy,
            "params": params,
            "ft_stratparam_v": 1,
            "export_time": datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S.%f+00:00"),
        }

    def write(self, strategy_dir: Path) -> Path:
        """Write ``<strategy_dir>/<Strategy>.json`` atomically; Freqtrade reads it next to the
        strategy file (``Path(strategy_file).with_suffix('.json')``)."""
        path = strategy_dir / f"{self.strategy}.json"
        write_text_atomic(path, json.dumps(self.freqtrade_file(), indent=2) + "\n")
        return path


def _clean(value: Any) -> Any:
    return round(value, 10) if isinstance(value, float) else value


def default_params(info: StrategyInfo) -> StrategyParams:
    """The strategy's own defaults, as its source declares them."""
    spaces: dict[str, dict[str, Any]] = {}
    decimals: dict[str, int] = {}
    for parameter in info.parameters:
        spaces.setdefault(parameter.space or "buy", {})[parameter.name] = parameter.default
        if parameter.decimals is not None:
            decimals[parameter.name] = parameter.decimals
    trailing = {k: v for k, v in info.trailing.items() if k in TRAILING_FIELDS}
    return StrategyParams(
        strategy=info.name,
        spaces=spaces,
        stoploss=info.stoploss if info.stoploss is not None else -0.10,
        minimal_roi={str(k): float(v) for k, v in info.minimal_roi.items()} or {"0": 10.0},
        decimals=decimals,
        composition=info.composition,
        **trailing,
    )


def with_file(params: StrategyParams, strategy_dir: Path) -> StrategyParams:
    """``params`` overlaid with ``<strategy_dir>/<Strategy>.json`` when it exists: the values
    Freqtrade will trade with (it reads that file next to the strategy file)."""
    path = strategy_dir / f"{params.strategy}.json"
    if not path.exists():
        return params
    try:
        saved = json.loads(path.read_text(encoding="utf-8"))["params"]
    except (ValueError, KeyError) as exc:
        raise SpecError(f"{path}: not a Freqtrade parameter file ({exc})") from exc
    values: dict[str, Any] = {}
    for space, entries in saved.items():
        if space == "roi":
            data = _fields(params)
            data["minimal_roi"] = {str(k): float(v) for k, v in entries.items()}
            params = StrategyParams.model_validate(data)
        elif space == "stoploss":
            values["stoploss"] = entries["stoploss"]
        elif space == "trailing":
            values.update({k: v for k, v in entries.items() if k in TRAILING_FIELDS})
        else:
            values.update(entries)
    return with_values(params, values)


def with_values(params: StrategyParams, values: Mapping[str, Any]) -> StrategyParams:
    """``params`` with tuned values by name: a declared parameter, ``stoploss``,
    ``roi.<minutes>`` or one of the trailing-stop settings."""
    data = _fields(params)
    for name, value in values.items():
        if name == "stoploss" or name in TRAILING_FIELDS:
            data[name] = value
        elif name.startswith("roi."):
            data["minimal_roi"][name.removeprefix("roi.")] = value
        else:
            for space_values in data["spaces"].values():
                if name in space_values:
                    space_values[name] = value
                    break
            else:
                raise SpecError(f"strategy {params.strategy} has no tunable value {name!r}")
    try:
        return StrategyParams.model_validate(data)
    except ValidationError as exc:
        raise SpecError(f"strategy {params.strategy}: {validation_message(exc)}") from exc


def _fields(params: StrategyParams) -> dict[str, Any]:
    """Every field, the (unexported) composition included."""
    return {**params.model_dump(), "composition": params.composition}


def tunable_names(params: StrategyParams) -> set[str]:
    names = {name for values in params.spaces.values() for name in values}
    return names | {"stoploss", *TRAILING_FIELDS}
