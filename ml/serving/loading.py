"""Loading a served model: the bundle an alias names, and a new version checked before use."""

from __future__ import annotations

import os

import pandas as pd

from common.layout import UserDir
from ml.bundle import ModelBundle, References
from ml.serving.columns import candle_frame


def first_line(exc: BaseException) -> str:
    """An exception's first line for a log line (its type when it has no message)."""
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def live_window(bundle: ModelBundle, minimum: int) -> int:
    """Candles a live step recomputes features on: ``minimum``, or more when the
    bundle's slow-clock features look further back."""
    return max(minimum, bundle.feature_spec.lookback_candles(bundle.metadata.timeframe))


def load_served(model_uri: str, tracking_uri: str | None) -> tuple[ModelBundle, str | None]:
    """The bundle ``model_uri`` names now, and its version (None for a URI without one).

    The alias is resolved once and the exact version loaded, so a promotion in between
    is seen by the next poll, not half-way. A user dir that was copied or restored serves
    its own artefacts. Raises whatever the registry or the bundle raises."""
    # A strategy must not hang for minutes on an unreachable registry: few, short retries.
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")
    from ml.model_source import load_bundle, served_version
    from ml.tracking import relocate_artifacts, sqlite_store_path, use_uri

    if tracking_uri:
        use_uri(tracking_uri)
        database = sqlite_store_path(tracking_uri)
        artefacts = UserDir(database.parent).mlflow_artifacts if database else None
        if database is not None and artefacts is not None and artefacts.is_dir():
            relocate_artifacts(database, artefacts.resolve())
    resolved = served_version(model_uri)
    exact = f"models:/{resolved[0]}/{resolved[1]}" if resolved else model_uri
    return load_bundle(exact), (resolved[1] if resolved else None)


def checked_candidate(
    current: ModelBundle,
    uri: str,
    dataframe: pd.DataFrame,
    pair: str,
    minimum_window: int,
    references: References = None,
) -> ModelBundle:
    """The bundle at ``uri`` if it may replace ``current``: same pair (every pair, for a
    pooled model) and timeframe, and it predicts ``pair``'s candles in Freqtrade's
    ``dataframe``. Raises, saying why, if not."""
    from ml.model_source import load_bundle

    candidate = load_bundle(uri)
    meta, served = candidate.metadata, current.metadata
    theirs = (meta.pairs or [meta.pair], meta.timeframe)
    ours = (served.pairs or [served.pair], served.timeframe)
    if theirs != ours:
        raise ValueError(
            f"it is for {', '.join(theirs[0])} {theirs[1]}, not {', '.join(ours[0])} {ours[1]}"
        )
    window = live_window(candidate, minimum_window)
    candles = candle_frame(dataframe, dataframe["date"], last=window)
    candidate.for_pair(pair).predict(candles, references)
    return candidate
