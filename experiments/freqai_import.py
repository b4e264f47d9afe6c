"""`tradingbot import-freqai CONFIG.json`: a FreqAI config as an experiment spec.

A FreqAI user keeps their settings: the whitelist, timeframe, training and backtest
windows, correlated pairs, label horizon, DI threshold and LightGBM parameters map to
a spec (docs/FEATURES.md has the table). Every key of the config's ``freqai`` section
and the model is reported: where it went in the spec, or that it has no counterpart
here yet, so nothing is dropped silently.

FreqAI retrains on the ``train_period_days`` before each ``backtest_period_days``
window of the backtest's ``timerange``; the spec's rolling walk-forward does the same:
``train_size`` candles, ``test_days`` per fold, folds starting on the timerange's first
day, the data window reaching back one training period before it.
"""

from __future__ import annotations

import inspect
import json
import math
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from common.errors import SpecError
from features.feature_spec import (
    ONE_CANDLE_KINDS,
    FeatureSpec,
    WindowedFeature,
    default_spec,
    spec_with_higher_timeframe,
)
from features.timeframes import timeframe_to_seconds
from features.timerange import TimeRange
from ml.models import forecaster_class

# FreqAI's prediction models that ours stand in for: name -> (model kind, target kind)
MODELS = {
    "LightGBMRegressor": ("lightgbm", "return"),
    "LightGBMClassifier": ("lightgbm", "direction"),
    "XGBoostRegressor": ("xgboost", "return"),
    "XGBoostClassifier": ("xgboost", "direction"),
    "CatboostRegressor": ("catboost", "return"),
    "CatboostClassifier": ("catboost", "direction"),
    "SKLearnRandomForestClassifier": ("random_forest", "direction"),
    "PyTorchMLPRegressor": ("mlp", "return"),
    "PyTorchMLPClassifier": ("mlp", "direction"),
    "PyTorchTransformerRegressor": ("transformer", "return"),
}
# FreqAI's PyTorch models' model_kwargs / trainer_kwargs -> our parameter, by model kind
TORCH_NAMES: dict[str, dict[str, str]] = {
    "mlp": {"hidden_dim": "hidden_size", "dropout_percent": "dropout", "n_layer": "num_layers"},
    "transformer": {
        "hidden_dim": "d_model",
        "dropout_percent": "dropout",
        "n_layer": "num_layers",
        "nhead": "nhead",
    },
}
TRAINER_NAMES = {"batch_size": "batch_size", "n_epochs": "max_epochs"}
# keys whose settings have no counterpart here yet (issue 28): reported, not mapped
NOT_YET = "no counterpart yet"


@dataclass(frozen=True)
class Mapped:
    """One FreqAI setting: its key and value, the spec key it became ("" if none), why."""

    key: str
    value: object
    spec_key: str
    note: str = ""


@dataclass(frozen=True)
class Imported:
    spec: dict[str, Any]
    report: list[Mapped]


def convert(
    config: dict[str, Any], *, name: str | None = None, model: str | None = None
) -> Imported:
    """The spec of FreqAI ``config`` (a Freqtrade config with a ``freqai`` section);
    ``model``: FreqAI's ``--freqaimodel`` (default: the config's ``freqaimodel``)."""
    freqai = config.get("freqai")
    if not isinstance(freqai, dict):
        raise SpecError("the config has no freqai section", hint="give a FreqAI config")
    report: list[Mapped] = []
    timeframe = str(config.get("timeframe") or "")
    if not timeframe:
        raise SpecError("the config has no timeframe", hint='add "timeframe": "5m" (Freqtrade)')
    per_day = 86_400 / timeframe_to_seconds(timeframe)
    pairs = list(config.get("exchange", {}).get("pair_whitelist", []))
    if not pairs:
        raise SpecError("the config's exchange.pair_whitelist is empty", hint="name the pairs")
    identifier = str(freqai.get("identifier") or "freqai")
    spec: dict[str, Any] = {"name": name or identifier.replace(" ", "_")}
    data: dict[str, Any] = {"timeframe": timeframe}
    data |= {"pair": pairs[0]} if len(pairs) == 1 else {"pairs": pairs}
    report.append(
        Mapped("exchange.pair_whitelist", pairs, "data.pair" if len(pairs) == 1 else "data.pairs")
    )
    report.append(Mapped("timeframe", timeframe, "data.timeframe"))
    if "name" in config.get("exchange", {}):
        data["exchange"] = config["exchange"]["name"]
        report.append(Mapped("exchange.name", data["exchange"], "data.exchange"))
    report.append(Mapped("freqai.identifier", identifier, "name"))

    walk = _windows(freqai, config.get("timerange"), per_day, data, report)
    spec["walk_forward"] = walk
    spec["data"] = data
    features, target, trust, pipeline = _feature_parameters(freqai, timeframe, report)
    spec |= {"features": features} if features else {}
    spec |= {"pipeline": pipeline} if pipeline else {}
    spec |= {"target": target} if target else {}
    if freqai.get("expiration_hours"):
        trust["expiration_hours"] = float(freqai["expiration_hours"])
        report.append(
            Mapped("freqai.expiration_hours", freqai["expiration_hours"], "trust.expiration_hours")
        )
    spec |= {"trust": trust} if trust else {}
    if freqai.get("purge_old_models"):
        keep = int(freqai["purge_old_models"])
        spec.setdefault("lifetime", {})["purge_old_models"] = keep
        report.append(
            Mapped(
                "freqai.purge_old_models",
                keep,
                "lifetime.purge_old_models",
                "older unaliased versions lose their model files; their runs stay",
            )
        )
    if "save_backtest_models" in freqai:
        report.append(
            Mapped(
                "freqai.save_backtest_models",
                freqai["save_backtest_models"],
                "(train --keep-folds)",
                "a command option: every fold's model is logged with the run",
            )
        )
    if freqai.get("continual_learning"):
        spec.setdefault("lifetime", {})["continual_learning"] = True
        report.append(
            Mapped(
                "freqai.continual_learning",
                True,
                "lifetime.continual_learning",
                "folds chain; a retrain's final model continues the champion",
            )
        )
    if freqai.get("fit_live_predictions_candles"):
        candles = int(freqai["fit_live_predictions_candles"])
        spec.setdefault("lifetime", {})["fit_live_predictions_candles"] = candles
        report.append(
            Mapped(
                "freqai.fit_live_predictions_candles",
                candles,
                "lifetime.fit_live_predictions_candles",
                "the forecast's mean and std over that many out-of-sample candles",
            )
        )
    spec |= _model(config, freqai, model, spec.get("target", {}), report)
    for key, value in freqai.items():
        if key not in _HANDLED and not isinstance(value, dict):
            report.append(Mapped(f"freqai.{key}", value, "", NOT_YET))
    return Imported(spec, report)


_HANDLED = {
    "identifier",
    "purge_old_models",
    "save_backtest_models",
    "continual_learning",
    "fit_live_predictions_candles",
    "conv_width",
    "expiration_hours",
    "train_period_days",
    "backtest_period_days",
    "feature_parameters",
    "data_split_parameters",
    "model_training_parameters",
}


def _windows(
    freqai: dict[str, Any],
    timerange: object,
    per_day: float,
    data: dict[str, Any],
    report: list[Mapped],
) -> dict[str, Any]:
    """FreqAI's sliding windows as a rolling walk-forward."""
    walk: dict[str, Any] = {"scheme": "rolling"}
    train_days = freqai.get("train_period_days")
    test_days = freqai.get("backtest_period_days")
    if train_days is None or test_days is None:
        raise SpecError(
            "freqai.train_period_days and freqai.backtest_period_days are required (FreqAI's too)"
        )
    walk["train_size"] = round(float(train_days) * per_day)
    walk["test_days"] = float(test_days)
    report.append(
        Mapped(
            "freqai.train_period_days",
            train_days,
            "walk_forward.train_size",
            f"{walk['train_size']} candles",
        )
    )
    report.append(Mapped("freqai.backtest_period_days", test_days, "walk_forward.test_days"))
    if not timerange:
        report.append(
            Mapped(
                "timerange",
                None,
                "walk_forward.folds",
                "no backtest timerange: the spec's 4 folds end at the data's end",
            )
        )
        return walk
    window = TimeRange.parse(str(timerange))
    if window.start is None or window.end is None:
        raise SpecError(
            f"timerange {timerange!r} needs a start and an end to place FreqAI's windows"
        )
    span_days = (window.end - window.start).total_seconds() / 86_400
    walk["folds"] = max(1, math.floor(span_days / float(test_days)))
    walk["start"] = f"{window.start:%Y%m%d}"
    first = window.start - timedelta(days=float(train_days))
    data["timerange"] = f"{first:%Y%m%d}-{window.end:%Y%m%d}"
    report.append(
        Mapped(
            "timerange",
            timerange,
            "walk_forward.start, .folds; data.timerange",
            f"{walk['folds']} windows from {walk['start']}, data from {first:%Y-%m-%d} (one training period before)",
        )
    )
    return walk


# feature_parameters that are [pipeline] settings of the same name and meaning
PIPELINE_KEYS = (
    "weight_factor",
    "principal_component_analysis",
    "use_SVM_to_remove_outliers",
    "svm_params",
    "use_DBSCAN_to_remove_outliers",
    "outlier_protection_percentage",
    "noise_standard_deviation",
)


@dataclass
class _Features:
    """What ``feature_parameters`` says about the features, gathered before the spec's
    ``[features]`` is written (a preset when one fits, else the full feature spec)."""

    reference_pairs: list[str] = field(default_factory=list)
    higher_timeframes: list[str] = field(default_factory=list)
    periods: list[int] = field(default_factory=list)
    shifted_candles: int = 0

    def section(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.periods or any(t != "4h" for t in self.higher_timeframes):
            spec = expanded_default_spec(self.periods)
            for higher in self.higher_timeframes:
                spec = spec_with_higher_timeframe(spec, higher)
            out = spec.model_dump(
                mode="json", exclude={"reference_pairs", "include_shifted_candles"}
            )
        elif self.higher_timeframes:
            out["preset"] = "default+4h"
        if self.reference_pairs:
            out["reference_pairs"] = self.reference_pairs
        if self.shifted_candles:
            out["include_shifted_candles"] = self.shifted_candles
        return out


def expanded_default_spec(periods: list[int]) -> FeatureSpec:
    """The default features, each windowed one also at FreqAI's
    ``indicator_periods_candles`` (its own windows stay: the regime model reads some)."""
    spec = default_spec()
    if not periods:
        return spec
    features: list[dict[str, Any]] = []
    for feature in spec.features:
        dumped = feature.model_dump(mode="json")
        if isinstance(feature, WindowedFeature):
            usable = [p for p in periods if p >= 2 or feature.kind in ONE_CANDLE_KINDS]
            dumped["windows"] = sorted({*feature.windows, *usable})
        features.append(dumped)
    return FeatureSpec.model_validate({"features": features})


def _feature_parameters(
    freqai: dict[str, Any], timeframe: str, report: list[Mapped]
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any], dict[str, Any]]:
    """(features, target, trust, pipeline) sections from ``feature_parameters``."""
    gathered = _Features()
    target: dict[str, Any] = {}
    trust: dict[str, Any] = {}
    pipeline: dict[str, Any] = {}
    base = timeframe_to_seconds(timeframe)
    for key, value in freqai.get("feature_parameters", {}).items():
        where = f"freqai.feature_parameters.{key}"
        if key == "include_corr_pairlist":
            gathered.reference_pairs = list(value)
            report.append(
                Mapped(
                    where,
                    value,
                    "features.reference_pairs",
                    "their features beside the pair's",
                )
            )
        elif key == "label_period_candles":
            target["horizon"] = int(value)
            report.append(Mapped(where, value, "target.horizon"))
        elif key == "DI_threshold" and value:
            trust["dissimilarity_threshold"] = float(value)
            report.append(Mapped(where, value, "trust.dissimilarity_threshold"))
        elif key == "include_timeframes":
            gathered.higher_timeframes = [t for t in value if timeframe_to_seconds(t) > base]
            lower = [t for t in value if timeframe_to_seconds(t) < base]
            note = (
                f"a block of returns, RSI and volatility on each of {gathered.higher_timeframes}"
                if gathered.higher_timeframes
                else "the timeframe itself: nothing to add"
            )
            if lower:
                note += f"; below {timeframe} ({', '.join(lower)}): {NOT_YET}"
            spec_key = "features.higher_timeframes" if gathered.higher_timeframes else ""
            report.append(Mapped(where, value, spec_key, note))
        elif key == "indicator_periods_candles":
            gathered.periods = sorted({int(p) for p in value})
            report.append(
                Mapped(where, value, "features.features", "each windowed feature at these windows")
            )
        elif key == "include_shifted_candles":
            gathered.shifted_candles = int(value)
            report.append(Mapped(where, value, "features.include_shifted_candles"))
        elif key in PIPELINE_KEYS:
            pipeline[key] = value
            report.append(Mapped(where, value, f"pipeline.{key}"))
        else:
            report.append(Mapped(where, value, "", NOT_YET))
    return gathered.section(), target, trust, pipeline


def _model(
    config: dict[str, Any],
    freqai: dict[str, Any],
    model: str | None,
    target: dict[str, Any],
    report: list[Mapped],
) -> dict[str, Any]:
    chosen = model or str(config.get("freqaimodel") or "LightGBMRegressor")
    kind, target_kind = MODELS.get(chosen, ("lightgbm", "return"))
    if chosen not in MODELS:
        note = f"no {chosen} here yet: our LightGBM regressor stands in"
    elif kind == "catboost":
        note = f"{kind}, target {target_kind}; an optional extra: pip install '.[catboost]'"
    else:
        note = f"{kind}, target {target_kind}"
    report.append(Mapped("freqaimodel", chosen, "model.kind", note))
    target["kind"] = target_kind
    params: dict[str, Any] = {}
    out: dict[str, Any] = {"target": target}
    cls = forecaster_class(kind)
    # a parameter of the same name means the same in our class (both wrap the library);
    # the trainer's own (threads, seed, embargo) are set per run
    same = set(inspect.signature(cls).parameters) - {"task"} - cls.trainer_params
    for key, ours, value in _flat_parameters(freqai.get("model_training_parameters", {}), kind):
        where = f"freqai.model_training_parameters.{key}"
        if ours is not None and ours in same and value is not None:
            params[ours] = value
            report.append(Mapped(where, value, f"model.params.{ours}"))
        elif ours is not None:
            note = "trains by epochs with early stopping" if key.endswith("n_steps") else NOT_YET
            report.append(Mapped(where, value, "", note))
        elif key in same:
            params[key] = value
            report.append(Mapped(where, value, f"model.params.{key}"))
        elif key in ("random_state", "seed", "random_seed"):
            out["seed"] = int(value)
            report.append(Mapped(where, value, "seed"))
        elif key in cls.trainer_params or key in ("thread_count", "nthread"):
            report.append(Mapped(where, value, "", "set by the trainer (--jobs, the embargo)"))
        else:
            report.append(Mapped(where, value, "", NOT_YET))
    split = freqai.get("data_split_parameters", {})
    for key, value in split.items():
        where = f"freqai.data_split_parameters.{key}"
        if key == "test_size" and "validation_fraction" not in same:
            report.append(Mapped(where, value, "", f"{kind} holds out no validation rows"))
        elif key == "test_size" and 0 < float(value) < 1:
            params["validation_fraction"] = float(value)
            report.append(
                Mapped(
                    where,
                    value,
                    "model.params.validation_fraction",
                    "the last share of each fold's training rows (chronological, never shuffled)",
                )
            )
        else:
            report.append(
                Mapped(
                    where,
                    value,
                    "",
                    NOT_YET if key != "shuffle" else "never: folds are chronological",
                )
            )
    if "conv_width" in freqai and kind == "transformer":
        params["sequence_length"] = int(freqai["conv_width"])
        report.append(
            Mapped("freqai.conv_width", freqai["conv_width"], "model.params.sequence_length")
        )
    elif "conv_width" in freqai:
        report.append(Mapped("freqai.conv_width", freqai["conv_width"], "", f"{kind} reads rows"))
    out["model"] = {"kind": kind, **({"params": params} if params else {})}
    return out


def _flat_parameters(parameters: dict[str, Any], kind: str) -> list[tuple[str, str | None, Any]]:
    """``model_training_parameters`` as (FreqAI's key, our name, value): a PyTorch
    model's nested ``model_kwargs`` / ``trainer_kwargs`` as ``<section>.<key>`` with our
    parameter's name; the others with None (they keep their own name)."""
    sections = {"model_kwargs": TORCH_NAMES.get(kind, {}), "trainer_kwargs": TRAINER_NAMES}
    flat: list[tuple[str, str | None, Any]] = []
    for key, value in parameters.items():
        if key in sections and isinstance(value, dict):
            flat += [(f"{key}.{k}", sections[key].get(k, k), v) for k, v in value.items()]
        else:
            flat.append((key, None, value))
    return flat


def load_config(path: Path) -> dict[str, Any]:
    """A Freqtrade config file (JSON; ``//`` comment lines, as Freqtrade allows, are skipped)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SpecError(f"cannot read {path}: {exc}") from exc
    lines = [line for line in text.splitlines() if not line.lstrip().startswith("//")]
    try:
        loaded = json.loads("\n".join(lines))
    except json.JSONDecodeError as exc:
        raise SpecError(f"{path}: not JSON ({exc.msg}, line {exc.lineno})") from exc
    if not isinstance(loaded, dict):
        raise SpecError(f"{path}: a Freqtrade config is a JSON object")
    return loaded


def spec_toml(spec: dict[str, Any]) -> str:
    """``spec`` as TOML: scalars first, then one table per section (nested tables inline)."""
    lines = [
        f"{key} = {_value(value)}" for key, value in spec.items() if not isinstance(value, dict)
    ]
    for section, table in spec.items():
        if isinstance(table, dict):
            lines += ["", f"[{section}]"]
            lines += [f"{key} = {_value(value)}" for key, value in table.items()]
    return "\n".join(lines) + "\n"


def _value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {_value(v)}" for k, v in value.items()) + " }"
    raise SpecError(f"cannot write {value!r} to a spec")
