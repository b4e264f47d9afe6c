"""The model bundle: feature spec + regime model + forecaster (+ their fitted scalers) + metadata.

One object, saved and loaded as one file, used identically by walk-forward
evaluation, MLflow (as a pyfunc model), backtests and live. ``predict(candles)``
builds the features with the bundle's own spec, filters the regime
probabilities and runs the forecaster: no train/serve skew.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import importlib.metadata
import io
import platform
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import joblib
import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict

from common.atomic import atomic_path
from common.errors import TradingbotError
from features.candles import DataWindow
from features.feature_spec import FeatureSpec
from features.pipeline import build, feature_columns
from features.tail import tail_columns
from ml.config import RegimeConfig as LegacyRegimeConfig
from ml.config import TrainingConfig
from ml.dissimilarity import DissimilarityIndex
from ml.forecast_statistics import statistics
from ml.input_pipeline import InputPipeline, TrainingRows
from ml.models.base import proba_to_prediction
from ml.models.forecaster import Forecaster, OptionalFit
from ml.models.regime_base import RegimeModel
from ml.regime_memo import filter_regimes, fit_regime_model
from ml.targets import make_target
from ml.vol_sizer import VolatilitySizer, held_out_correction

BUNDLE_FORMAT = 1
References = Mapping[str, pd.DataFrame] | None  # reference pair -> its candles
# what fits and reads a bundle: its versions are recorded, and pinned in a logged model
MODEL_PACKAGES = ("torch", "hmmlearn", "scikit-learn", "lightgbm", "pandas", "numpy", "TA-Lib")
PACKAGES = ("tradingbot", *MODEL_PACKAGES, "mlflow")


@functools.cache  # each lookup scans the installed distributions; they stay put in a process
def installed_version(name: str) -> str | None:
    """The installed version of distribution ``name``; None when it is not installed."""
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def package_versions() -> dict[str, str]:
    """Python's and :data:`PACKAGES`' installed versions."""
    versions = {"python": platform.python_version()}
    for name in PACKAGES:
        versions[name] = installed_version(name) or "not installed"
    return versions


class BundleMetadata(BaseModel):
    model_config = ConfigDict(extra="forbid")

    format: int = BUNDLE_FORMAT
    name: str
    forecaster_kind: str
    pair: str
    timeframe: str
    spec_hash: str
    train_window: DataWindow  # the candles this bundle was fitted on
    data_sha256: str  # of the whole data window of the run
    seed: int
    device: str
    created: datetime
    versions: dict[str, str]
    regime_labels: list[str]
    input_columns: list[str]
    pairs: list[str] = []  # a pooled bundle: every pair it serves (see ml.pooled)
    # a volatility target: added to the forecast log volatility (see risk_correction)
    risk_correction: float = 0.0
    # the forecast's range on the training rows (ml.forecast_statistics); None: unknown
    forecast_mean: float | None = None
    forecast_std: float | None = None
    # [lifetime] continual_learning: the model its forecaster continued (None: from scratch)
    continued_from: str | None = None


# what a model that outputs an exposure gives instead of p_up (see ModelBundle.forecast)
EXPOSURE_COLUMNS = ("exposure", "exposure_unsized", "volatility")


class BundleError(TradingbotError):
    """A bundle that cannot be loaded or does not fit the data it is given."""


class ModelBundle:
    def __init__(
        self,
        feature_spec: FeatureSpec,
        config: TrainingConfig,
        regime_model: RegimeModel | None,
        forecaster: Forecaster,
        metadata: BundleMetadata,
        *,
        dissimilarity: DissimilarityIndex | None = None,
        pair_scalers: dict[str, Any] | None = None,
        sizer: VolatilitySizer | None = None,
        input_pipeline: InputPipeline | None = None,
    ) -> None:
        self.feature_spec = feature_spec
        self.config = config
        self.regime_model = regime_model
        self.forecaster = forecaster
        self.metadata = metadata
        # FreqAI's dissimilarity index of the training inputs, when the spec asks for it
        self.dissimilarity = dissimilarity
        # a pooled bundle: each pair's feature scaling (ml.pooled.PairScaler), and the one
        # applied by the bundle for_pair() returns
        self.pair_scalers: dict[str, Any] = pair_scalers or {}
        self._scaler: Any = None
        # a sized regime allocation: its volatility forecast and sizing ([sizing])
        self.sizer = sizer
        # [pipeline]: FreqAI's data pipeline between the inputs and the forecaster
        self.input_pipeline = input_pipeline

    @property
    def dissimilarity_threshold(self) -> float | None:
        """``[trust] dissimilarity_threshold`` of the spec this bundle was trained with."""
        trust = getattr(self.config, "__dict__", {}).get("trust")  # absent in older bundles
        return (
            None if trust is None or self.dissimilarity is None else trust.dissimilarity_threshold
        )

    @property
    def statistics_candles(self) -> int | None:
        """``[lifetime] fit_live_predictions_candles`` of the spec it was trained with."""
        lifetime = getattr(self.config, "__dict__", {}).get("lifetime")  # older bundles: none
        return getattr(lifetime, "fit_live_predictions_candles", None)

    @property
    def expiration_hours(self) -> float | None:
        """``[trust] expiration_hours`` of the spec this bundle was trained with."""
        trust = getattr(self.config, "__dict__", {}).get("trust")  # absent in older bundles
        return getattr(trust, "expiration_hours", None)

    def __getstate__(self) -> dict[str, Any]:
        return {key: value for key, value in self.__dict__.items() if key != "_bound"}

    def __setstate__(self, state: dict[str, Any]) -> None:
        state.setdefault("dissimilarity", None)  # bundles pickled before the index existed
        state.setdefault("pair_scalers", {})  # nor pooled bundles
        state.setdefault("_scaler", None)
        state.setdefault("sizer", None)
        state.setdefault("input_pipeline", None)  # nor [pipeline]
        config = state["config"]
        if "sizing" not in config.__dict__:  # nor sized allocations
            config = config.model_copy(update={"sizing": None})
        if "pipeline" not in config.__dict__:
            config = config.model_copy(update={"pipeline": None})
        if isinstance(config.regime, LegacyRegimeConfig):  # nor the split regime settings
            config = config.model_copy(update={"regime": config.regime.upgraded()})
        state["config"] = config
        self.__dict__.update(state)

    @property
    def pooled(self) -> bool:
        return bool(self.metadata.pairs)

    def serves(self, pair: str) -> bool:
        return pair in self.metadata.pairs if self.pooled else pair == self.metadata.pair

    def for_pair(self, pair: str) -> ModelBundle:
        """A pooled bundle as the model of one of its pairs: the same fitted parts, its
        features scaled with that pair's training statistics. Others: the bundle itself."""
        if not self.pooled:
            if pair != self.metadata.pair:
                raise BundleError(f"{self.metadata.name} serves {self.metadata.pair}, not {pair}")
            return self
        if pair not in self.pair_scalers:
            raise BundleError(
                f"pooled model {self.metadata.name} was not trained on {pair}",
                hint=f"its pairs: {', '.join(self.metadata.pairs)}",
            )
        cache: dict[str, ModelBundle] = self.__dict__.setdefault("_bound", {})
        if pair not in cache:  # once per pair: the live path asks at every candle
            bound = copy.copy(self)
            bound.metadata = self.metadata.model_copy(update={"pair": pair})
            bound._scaler = self.pair_scalers[pair]
            bound.__dict__["_bound"] = {}
            cache[pair] = bound
        return cache[pair]

    # -- inference -------------------------------------------------------------------

    @property
    def reference_pairs(self) -> tuple[str, ...]:
        """Pairs whose candles the features also need (``[features] reference_pairs``)."""
        return tuple(getattr(self.feature_spec, "reference_pairs", ()))

    def features(self, candles: pd.DataFrame, references: References = None) -> pd.DataFrame:
        """The model's input features of ``candles`` (scaled for a pooled model's pair);
        ``references``: the reference pairs' candles, when the spec has any."""
        spec, timeframe = self.feature_spec, self.metadata.timeframe
        return self.scaled(build(candles, spec, timeframe, references))

    def scaled(self, features: pd.DataFrame) -> pd.DataFrame:
        """A feature frame as this bundle reads it: unchanged, or for a pooled model's pair
        standardised with that pair's training statistics."""
        scaler = self._pair_scaler()
        return features if scaler is None else scaler.frame(features)

    def _pair_scaler(self) -> Any:
        if self.pooled and self._scaler is None:
            raise BundleError(
                f"pooled model {self.metadata.name}: choose the pair with for_pair() first"
            )
        return self._scaler

    def tail_features(
        self, candles: pd.DataFrame, rows: int, references: References = None
    ) -> dict[str, np.ndarray]:
        """The feature columns of the last ``rows`` rows of :meth:`features`, computed for
        those rows only (the live step)."""
        spec, timeframe = self.feature_spec, self.metadata.timeframe
        columns = tail_columns(candles, spec, timeframe, rows, references)
        scaler = self._pair_scaler()
        return columns if scaler is None else scaler.columns_of(columns)

    def regimes(self, features: pd.DataFrame) -> pd.DataFrame:
        """Filtered ``p_<label>`` columns and the persistent ``regime`` label per row."""
        return regime_frame(self.regime_model, features, self.config.regime.columns)

    def inputs(self, features: pd.DataFrame, regimes: pd.DataFrame) -> pd.DataFrame:
        missing = [
            c
            for c in self.metadata.input_columns
            if c not in features.columns and c not in regimes.columns
        ]
        if missing:
            raise BundleError(
                f"feature mismatch: the bundle needs columns {missing} that the data lacks"
            )
        names = self.metadata.input_columns
        from_features = [c for c in names if c in features.columns]
        from_regimes = [c for c in names if c not in features.columns]
        if names != from_features + from_regimes:  # not the layout fit_bundle writes
            return pd.concat([features, regimes], axis=1)[names]
        # Positional takes of each frame, then one join: a third of the cost of a name lookup
        # on the joined frame, which matters on every live step.
        left = features.take(features.columns.get_indexer(pd.Index(from_features)), axis=1)
        right = regimes.take(regimes.columns.get_indexer(pd.Index(from_regimes)), axis=1)
        return pd.concat([left, right], axis=1)

    def live_inputs(
        self, features: dict[str, np.ndarray], regimes: dict[str, np.ndarray]
    ) -> pd.DataFrame:
        """:meth:`inputs` for the live path, from the columns of :meth:`tail_features` and
        regime columns of the same rows: one float block (a live step's few rows cost
        little to compute but a lot to join as frames)."""
        names = self.metadata.input_columns
        missing = [c for c in names if c not in features and c not in regimes]
        if missing:
            raise BundleError(
                f"feature mismatch: the bundle needs columns {missing} that the data lacks"
            )
        matrix = np.column_stack([features[c] if c in features else regimes[c] for c in names])
        return pd.DataFrame(matrix.astype("float64", copy=False), columns=names)

    @property
    def context_rows(self) -> int:
        """Rows before a row that its forecast reads (an LSTM's sequence)."""
        sized = 0 if self.sizer is None else self.sizer.context_rows
        return max(self.forecaster.context_rows, sized)

    def forecast(self, inputs: pd.DataFrame, last: int | None = None) -> dict[str, np.ndarray]:
        """``prediction``, ``p_up`` (classification) and ``reason`` (rules) for the last
        ``last`` rows of ``inputs`` (all rows by default), computed from just the rows
        those need (an LSTM's sequence reaches ``sequence_length - 1`` rows back).

        A model that outputs an exposure (``Forecaster.outputs_exposure``, the regime
        allocation) gives ``exposure`` (the share of equity to hold, 0..1) instead of
        ``p_up``: it is no probability. A sized allocation's ``exposure`` is sized by its
        volatility forecast; it also gives ``exposure_unsized`` (the allocation's own)
        and ``volatility`` (the forecast, annualised; see :mod:`ml.vol_sizer`).

        With ``[pipeline]`` the forecaster reads the pipeline's view of the inputs, and
        ``outlier`` (1.0 where a detector flags the row, else 0.0) comes too."""
        forecaster = self.forecaster
        if last is not None:
            inputs = inputs.iloc[max(0, len(inputs) - last - self.context_rows) :]
        out: dict[str, np.ndarray] = {}
        seen = inputs  # what the forecaster reads
        if self.input_pipeline is not None:
            seen = self.input_pipeline.transform(inputs)
            if self.input_pipeline.detects_outliers:
                out["outlier"] = self.input_pipeline.outliers(inputs).astype("float64")
        if self.config.target.task == "classification":
            column_1 = forecaster.predict_proba(seen)[:, 1]
            out["exposure" if forecaster.outputs_exposure else "p_up"] = column_1
            # column 1 > 0.5 is every model's class, unless it decides its class itself
            out["prediction"] = (
                forecaster.predict(seen)
                if forecaster.decides_class
                else proba_to_prediction(column_1)
            )
        else:
            out["prediction"] = forecaster.predict(seen) + self.metadata.risk_correction
        if self.sizer is not None:
            out["exposure_unsized"] = out["exposure"]
            out["volatility"] = self.sizer.volatility(inputs)
            out["exposure"] = self.sizer.desired(out["exposure_unsized"], out["volatility"])
        if forecaster.has_reasons:
            out["reason"] = np.asarray(forecaster.explain(seen), dtype=object)
        if self.metadata.forecast_mean is not None and not forecaster.outputs_exposure:
            out["forecast_mean"] = np.full(len(seen), self.metadata.forecast_mean)
            out["forecast_std"] = np.full(len(seen), self.metadata.forecast_std)
        if self.dissimilarity is not None:
            out["di"] = self.dissimilarity.score(inputs)
        if last is not None:
            out = {key: values[len(values) - last :] for key, values in out.items()}
        return out

    def predict_features(self, features: pd.DataFrame) -> pd.DataFrame:
        """Predictions for a feature frame built with this bundle's spec.

        Columns: ``date``, ``prediction`` (class 0/1 or forward return), ``p_up``
        (classification) or ``exposure`` (an allocation's; sized: with
        ``exposure_unsized`` and ``volatility``), ``regime`` and ``p_<label>``,
        ``reason`` for the reasoning model, ``di`` (dissimilarity index) when the
        spec sets a threshold, ``outlier`` (1.0 / 0.0) when ``[pipeline]`` detects them,
        and ``forecast_mean`` / ``forecast_std`` (the forecast's range on the training
        rows, :mod:`ml.forecast_statistics`) when known. NaN where the model cannot predict yet (warm-up).
        """
        regimes = self.regimes(features)
        forecast = self.forecast(self.inputs(features, regimes))
        out = pd.DataFrame({"date": features["date"].to_numpy()}, index=features.index)
        out["prediction"] = forecast["prediction"]
        for column in ("p_up", *EXPOSURE_COLUMNS):
            if column in forecast:
                out[column] = forecast[column]
        for column in regimes.columns:
            out[column] = regimes[column].to_numpy()
        if "reason" in forecast:
            out["reason"] = forecast["reason"]
        for column in ("di", "outlier", "forecast_mean", "forecast_std"):
            if column in forecast:
                out[column] = forecast[column]
        return out

    def predict(self, candles: pd.DataFrame, references: References = None) -> pd.DataFrame:
        return self.predict_features(self.features(candles, references))

    # -- persistence -----------------------------------------------------------------

    def save(self, path: Path) -> str:
        """Write the bundle atomically as one file; return its sha256."""
        buffer = io.BytesIO()
        joblib.dump(self, buffer)
        payload = buffer.getvalue()
        with atomic_path(path) as tmp:
            tmp.write_bytes(payload)
        return hashlib.sha256(payload).hexdigest()

    @staticmethod
    def load(path: Path) -> ModelBundle:
        return ModelBundle.from_bytes(path.read_bytes(), source=str(path))

    @staticmethod
    def from_bytes(payload: bytes, *, source: str) -> ModelBundle:
        """The bundle saved as ``payload`` (read from ``source``, named in errors). Only
        for bytes whose digest was checked: unpickling runs what the bytes say."""
        try:
            bundle = joblib.load(io.BytesIO(payload))
        except Exception as exc:
            raise BundleError(f"{source}: not a loadable model bundle ({exc})") from exc
        if not isinstance(bundle, ModelBundle):
            raise BundleError(f"{source}: holds a {type(bundle).__name__}, not a ModelBundle")
        if bundle.metadata.format != BUNDLE_FORMAT:
            raise BundleError(
                f"{source}: bundle format {bundle.metadata.format}, this code reads {BUNDLE_FORMAT}"
            )
        return bundle


def regime_frame(
    model: RegimeModel | None, features: pd.DataFrame, columns: tuple[str, ...]
) -> pd.DataFrame:
    if model is None:
        return pd.DataFrame(index=features.index)
    x = features[list(columns)].to_numpy(dtype="float64")
    probabilities, decisions = filter_regimes(model, x)
    frame = pd.DataFrame(
        probabilities,
        columns=[f"p_{label}" for label in model.labels_],
        index=features.index,
        copy=True,  # the memoised arrays are shared and read-only
    )
    frame["regime"] = ["" if d < 0 else model.labels_[d] for d in decisions]
    return frame


def fit_regimes(
    train_features: pd.DataFrame,
    config: TrainingConfig,
    seed: int,
    previous: RegimeModel | None,
) -> RegimeModel:
    """The regime model on the training rows' regime columns (warm-started from
    ``previous`` when it is an HMM and ``[regime] warm_start`` is on)."""
    missing = [c for c in config.regime.columns if c not in train_features.columns]
    if missing:
        raise BundleError(f"regime feature column(s) {missing} are not in the feature spec")
    params = config.regime.estimator_params(seed, previous)
    return fit_regime_model(
        params,
        train_features[list(config.regime.columns)].to_numpy(dtype="float64"),
        config.regime.kind,
    )


def fit_bundle(
    *,
    name: str,
    candles: pd.DataFrame,
    features: pd.DataFrame,
    rows: slice,
    feature_spec: FeatureSpec,
    config: TrainingConfig,
    train_window: DataWindow,
    data_sha256: str,
    seed: int,
    pair: str,
    timeframe: str,
    threads: int | None = None,
    previous: RegimeModel | None = None,
    continue_from: Sequence[Continuation] = (),
) -> ModelBundle:
    """Fit regime model and forecaster on ``rows`` of a feature frame built on ``candles``.

    ``previous``: the regime model of the walk-forward fold before (fitted on earlier
    candles); with ``[regime] warm_start`` an HMM starts EM from it. ``continue_from``:
    forecasters this one may continue (``[lifetime] continual_learning``; the first that
    reads the same columns, see :func:`continuation`).

    Only rows inside ``rows`` reach fitting (regime standardisation and EM, the
    forecaster's scalers, early stopping); the target of each row looks
    ``horizon`` candles ahead, which the caller's embargo keeps inside the data.
    """
    train_features = features.iloc[rows]
    regime_model = (
        fit_regimes(train_features, config, seed, previous) if config.model.uses_regimes else None
    )
    regimes = regime_frame(regime_model, train_features, config.regime.columns)
    input_columns = feature_columns(features) + [c for c in regimes.columns if c.startswith("p_")]
    target = make_target(candles, config.target).to_numpy()[rows]
    forecaster = config.model.estimator(config.target.task, seed, config.target.horizon, threads)
    inputs = pd.concat([train_features, regimes], axis=1)[input_columns]
    continued, label, inputs = continuation(continue_from, inputs)
    pipeline, trained = fit_forecaster(forecaster, config, seed, inputs, target, continued)
    correction = (
        held_out_correction(
            config.model, seed, config.target.horizon, threads, trained.inputs, trained.target
        )
        if config.target.is_risk
        else 0.0
    )
    sizer = None
    if config.sizing is not None:
        sizer = VolatilitySizer(config.sizing, config.sizing.horizon(timeframe), seed, threads)
        sizer.fit(inputs, candles, rows)
    return assembled(
        name=name,
        feature_spec=feature_spec,
        config=config,
        regime_model=regime_model,
        forecaster=forecaster,
        inputs=inputs,
        pair=pair,
        timeframe=timeframe,
        train_window=train_window,
        data_sha256=data_sha256,
        seed=seed,
        risk_correction=correction,
        sizer=sizer,
        input_pipeline=pipeline,
        target=target,
        continued_from=label,
    )


Continuation = tuple[Forecaster, str]  # a fitted forecaster to continue, and what it is


def continuation(
    candidates: Sequence[Continuation], inputs: pd.DataFrame
) -> tuple[Forecaster | None, str | None, pd.DataFrame]:
    """The first candidate whose forecaster read the columns of ``inputs`` (in any order:
    they are put in its order), what it is, and the inputs; (None, None, inputs) when
    none did. A fold's regime model may name its states otherwise than the one before
    (``p_bull`` and ``p_bear`` against ``p_bull`` and ``p_crash``): its model then starts
    from scratch, and its record says so."""
    for forecaster, label in candidates:
        columns = [str(c) for c in getattr(forecaster, "feature_names_in_", [])]
        if sorted(columns) == sorted(str(c) for c in inputs.columns):
            return forecaster, label, inputs[columns]
    return None, None, inputs


def fit_forecaster(
    forecaster: Forecaster,
    config: TrainingConfig,
    seed: int,
    inputs: pd.DataFrame,
    target: np.ndarray,
    continued: Forecaster | None = None,
) -> tuple[InputPipeline | None, TrainingRows]:
    """Fit ``forecaster`` on a fold's training ``inputs`` and ``target``, through the
    spec's ``[pipeline]`` when it has one (fitted on these rows only); ``continued``: the
    model it starts from (``[lifetime] continual_learning``)."""
    settings = getattr(config, "pipeline", None)
    pipeline = None
    trained = TrainingRows(inputs, np.asarray(target, dtype="float64"), None)
    if settings is not None:
        pipeline = InputPipeline(settings, seed).fit(inputs, target)
        trained = pipeline.training_rows(inputs, target)
    options: dict[str, Any] = {}
    if trained.sample_weight is not None:
        options["sample_weight"] = trained.sample_weight
    if continued is not None:
        options["init_model"] = continued
    if options:  # the spec was refused unless the model accepts these (ml.config checks)
        cast(OptionalFit, forecaster).fit(trained.inputs, trained.target, **options)
    else:
        forecaster.fit(trained.inputs, trained.target)
    return pipeline, trained


def _forecast_range(
    config: TrainingConfig,
    forecaster: Forecaster,
    inputs: pd.DataFrame,
    target: np.ndarray | None,
    pipeline: InputPipeline | None,
) -> tuple[float, float] | None:
    """The forecast's range on the training rows (see :mod:`ml.forecast_statistics`):
    the target's for a regression, the classifier's own ``p_up`` for a classifier."""
    if target is None or forecaster.outputs_exposure:
        return None
    if config.target.task == "regression":
        return statistics(target)
    seen = inputs if pipeline is None else pipeline.transform(inputs)
    return statistics(forecaster.predict_proba(seen)[:, 1])


def assembled(
    *,
    name: str,
    feature_spec: FeatureSpec,
    config: TrainingConfig,
    regime_model: RegimeModel | None,
    forecaster: Forecaster,
    inputs: pd.DataFrame,
    pair: str,
    timeframe: str,
    train_window: DataWindow,
    data_sha256: str,
    seed: int,
    pairs: list[str] | None = None,
    pair_scalers: dict[str, Any] | None = None,
    risk_correction: float = 0.0,
    sizer: VolatilitySizer | None = None,
    input_pipeline: InputPipeline | None = None,
    target: np.ndarray | None = None,
    continued_from: str | None = None,
) -> ModelBundle:
    """The bundle of fitted parts, with its metadata, and the dissimilarity index of
    its training ``inputs`` when the spec asks for one (single-pair and pooled fits
    alike). ``pairs`` and ``pair_scalers``: a pooled bundle's (see :mod:`ml.pooled`).
    ``target``: the training rows' target, for the forecast's range."""
    range_ = _forecast_range(config, forecaster, inputs, target, input_pipeline)
    metadata = BundleMetadata(
        name=name,
        forecaster_kind=config.model.kind,
        pair=pair,
        pairs=pairs or [],
        timeframe=timeframe,
        spec_hash=feature_spec.hash,
        train_window=train_window,
        data_sha256=data_sha256,
        seed=seed,
        device=forecaster.device_,
        created=datetime.now(UTC),
        versions=package_versions(),
        regime_labels=[] if regime_model is None else list(regime_model.labels_),
        input_columns=list(inputs.columns),
        risk_correction=risk_correction,
        forecast_mean=None if range_ is None else range_[0],
        forecast_std=None if range_ is None else range_[1],
        continued_from=continued_from,
    )
    trusted = config.trust.dissimilarity_threshold is not None
    return ModelBundle(
        feature_spec,
        config,
        regime_model,
        forecaster,
        metadata,
        dissimilarity=DissimilarityIndex().fit(inputs) if trusted else None,
        pair_scalers=pair_scalers,
        sizer=sizer,
        input_pipeline=input_pipeline,
    )
