"""Columns shared by the batch and live paths: regime codes, candle times, written-back columns."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from ml.forecast_statistics import RANGE_COLUMNS


def with_columns(dataframe: pd.DataFrame, added: dict[str, Any]) -> pd.DataFrame:
    """``dataframe`` with ``added`` as new or replaced columns, in one concatenation (column
    by column insertion costs a live step about as much as its features)."""
    stale = [column for column in added if column in dataframe.columns]
    base = dataframe.drop(columns=stale) if stale else dataframe
    return pd.concat([base, pd.DataFrame(added, index=dataframe.index, copy=False)], axis=1)


def regime_codes(labels: list[str], values: Any) -> np.ndarray:
    """Regime names -> codes into ``labels`` (-1: no regime yet)."""
    lookup = {label: code for code, label in enumerate(labels)}
    names = np.asarray(values, dtype=object)
    return np.fromiter((lookup.get(name, -1) for name in names), dtype="int16", count=len(names))


def regime_column(labels: list[str], codes: np.ndarray) -> pd.Categorical:
    """The ``&-regime`` column: a categorical of the regime names ('' before the filter has
    settled). Built from codes, so a live step costs O(n) integer work, not string parsing."""
    dtype = pd.CategoricalDtype(["", *labels])
    shifted = np.asarray(codes, dtype="int16") + 1
    if len(shifted) and (shifted.min() < 0 or shifted.max() > len(labels)):
        raise ValueError(f"regime codes outside -1..{len(labels) - 1}")
    return pd.Categorical.from_codes(shifted, dtype=dtype, validate=False)


_NANOS_PER_UNIT = {"s": 1_000_000_000, "ms": 1_000_000, "us": 1_000, "ns": 1}


def candle_stamps(dates: pd.Series) -> np.ndarray:
    """Candle open times as int64 nanoseconds since the epoch (UTC).

    Freqtrade's dates are UTC in milliseconds: their integers are scaled, not converted
    through pandas (a conversion of the whole history each live step grows with it)."""
    if isinstance(dates.dtype, pd.DatetimeTZDtype) and str(dates.dtype.tz) == "UTC":
        unit = dates.dtype.unit
        values = dates.to_numpy(dtype=f"datetime64[{unit}]").view("int64")
        return values * _NANOS_PER_UNIT[unit] if unit != "ns" else values
    return _utc(dates).to_numpy(dtype="datetime64[ns]").view("int64")


def _utc(dates: pd.Series) -> pd.Series:
    """Freqtrade's date column as datetime64[ns, UTC], converting only when needed."""
    if dates.dtype == "datetime64[ns, UTC]":
        return dates
    if isinstance(dates.dtype, pd.DatetimeTZDtype) and str(dates.dtype.tz) == "UTC":
        return dates.astype("datetime64[ns, UTC]")  # only the unit differs
    converted: pd.Series = pd.to_datetime(dates, utc=True).astype("datetime64[ns, UTC]")
    return converted


def candle_frame(
    dataframe: pd.DataFrame, dates: pd.Series, last: int | None = None
) -> pd.DataFrame:
    """Our candle frame from Freqtrade's (the last ``last`` rows only, when given)."""
    start = 0 if last is None else max(0, len(dataframe) - last)
    # Only the rows used are copied and their dates converted to our dtype (the whole
    # history on a live step would cost time that grows with it).
    return pd.DataFrame(
        {
            "date": _utc(dates.iloc[start:]).array,
            **{
                column: dataframe[column].to_numpy()[start:]
                for column in ("open", "high", "low", "close", "volume")
            },
        }
    )


def stitched_columns(dataframe: pd.DataFrame, stitched: pd.DataFrame) -> pd.DataFrame:
    """Freqtrade's ``dataframe`` with the walk-forward predictions of ``stitched`` (one row
    per out-of-sample candle: ``date``, ``prediction``, maybe ``p_up`` or an allocation's
    ``exposure`` (sized: ``exposure_unsized`` and ``volatility`` too), ``p_<regime>``,
    ``regime``, ``outlier`` with ``[pipeline]``'s detectors, ``do_predict`` as a running
    bot recorded it) joined by date; ``do_predict`` is 1 where a candle has a prediction,
    is no outlier and was trusted when recorded."""
    stitched = stitched.assign(
        date=pd.to_datetime(stitched["date"], utc=True).astype("datetime64[ns, UTC]")
    )
    dates = pd.to_datetime(dataframe["date"], utc=True).astype("datetime64[ns, UTC]")
    merged = pd.DataFrame({"date": dates.to_numpy()}).merge(stitched, on="date", how="left")
    out = dataframe.copy()
    out["&-prediction"] = merged["prediction"].to_numpy()
    out["&-p_up"] = merged["p_up"].to_numpy() if "p_up" in merged else np.nan
    out["&-exposure"] = merged["exposure"].to_numpy() if "exposure" in merged else np.nan
    regime_columns = [c for c in merged.columns if c.startswith("p_") and c != "p_up"]
    labels = [c[2:] for c in regime_columns]
    names = merged["regime"] if "regime" in merged else pd.Series("", index=merged.index)
    out["&-regime"] = regime_column(labels, regime_codes(labels, names.fillna("")))
    for column in regime_columns:
        out[f"&-{column}"] = merged[column].to_numpy()
    for column in ("exposure_unsized", "volatility", *RANGE_COLUMNS):
        if column in merged:  # a sized allocation's; the forecast's recent range
            out[f"&-{column}"] = merged[column].to_numpy()
    trusted = np.isfinite(out["&-prediction"].to_numpy(dtype="float64"))
    if "outlier" in merged:
        trusted &= ~(merged["outlier"].to_numpy(dtype="float64") > 0)
    if "do_predict" in merged:  # a running bot's recorded verdict (ml.serving.prediction_log)
        trusted &= merged["do_predict"].to_numpy(dtype="float64") == 1
    out["do_predict"] = trusted.astype("int64")
    return out


def untrusted(dataframe: pd.DataFrame, labels: list[str]) -> pd.DataFrame:
    """Freqtrade's ``dataframe`` with empty prediction columns and ``do_predict = 0``
    everywhere (no model, another pair's model, a failed prediction)."""
    columns: dict[str, Any] = {
        "&-prediction": np.nan,
        "&-p_up": np.nan,
        "&-exposure": np.nan,
        "&-regime": regime_column(labels, np.full(len(dataframe), -1)),
    }
    columns.update({f"&-p_{label}": np.nan for label in labels})
    columns["do_predict"] = 0
    return dataframe.assign(**columns)


def upgraded_exposure_columns(predictions: pd.DataFrame, outputs_exposure: bool) -> pd.DataFrame:
    """Predictions an allocation logged before it named its exposure (in ``p_up``; a
    sized one kept its own in ``exposure``), in today's columns; others unchanged."""
    if not outputs_exposure or "p_up" not in predictions:
        return predictions
    renames = {"exposure": "exposure_unsized"} if "exposure" in predictions else {}
    return predictions.rename(columns={**renames, "p_up": "exposure"})
