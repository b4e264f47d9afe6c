"""Process-local memo of regime fits and regime read-outs.

A tuning study refits the same regime HMM on the same walk-forward folds in every
trial unless the trial changes a ``regime.*`` parameter, and reads it out on the
same rows again: on real BTC 1h that was about four fifths of a trial's time.
Both are deterministic functions of their inputs, so they are memoised here,
keyed by content (never by object identity):

* a fit by the regime settings, the seed and the bytes of the training rows;
* a read-out by a fingerprint of the fitted parameters and the bytes of the rows,
  only for models fitted through this memo (training and tuning): a model loaded
  from the registry (a backtest, Freqtrade live) is read out once per pair and
  nothing of it is kept.

Entries are kept in LRU order: at most ``MAX_FITS`` fitted models (a few kB each)
and read-outs up to ``MAX_READOUT_BYTES`` in all (T x K probabilities each).
A hit returns the object that a fit or read-out with the same inputs returned
before, so results are identical, not just close. Callers must not mutate what
they get back (fitted models are not changed after ``fit``; arrays are returned
read-only).
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ml.models import regime_model_class
from ml.models.regime_base import RegimeModel

MAX_FITS = 32
MAX_READOUT_BYTES = 256 * 1024 * 1024

_lock = threading.Lock()
_fits: OrderedDict[str, RegimeModel] = OrderedDict()
_readouts: OrderedDict[str, tuple[NDArray[np.float64], NDArray[np.int64]]] = OrderedDict()


def _digest(*parts: Any) -> str:
    digest = hashlib.sha256()
    for part in parts:
        if isinstance(part, np.ndarray):
            array = np.ascontiguousarray(part)
            digest.update(f"{array.dtype.str}{array.shape}".encode())
            digest.update(array.tobytes())
        else:
            digest.update(repr(part).encode())
        digest.update(b"\x00")
    return digest.hexdigest()


def _readout_bytes() -> int:
    return sum(p.nbytes + d.nbytes for p, d in _readouts.values())


def fit_regime_model(
    params: dict[str, Any], x: NDArray[np.float64], kind: str = "hmm"
) -> RegimeModel:
    """The regime model of ``kind`` (``ml.models.REGIME_MODELS``) with ``params``, fitted
    on ``x``, or the model an identical call fitted before. A warm start's model
    (``params["init_from"]``) counts by what it holds, not by its repr."""
    start = params.get("init_from")
    settings = sorted((name, value) for name, value in params.items() if name != "init_from")
    started_from = None if start is None else fingerprint(start)
    key = _digest(kind, settings, started_from, np.asarray(x, dtype="float64"))
    with _lock:
        model = _fits.get(key)
        if model is not None:
            _fits.move_to_end(key)
            return model
    model = regime_model_class(kind)(**params).fit(x)
    with _lock:
        _fits[key] = model
        while len(_fits) > MAX_FITS:
            _fits.popitem(last=False)
    return model


def fingerprint(model: RegimeModel) -> str:
    """Everything a read-out of ``model`` depends on."""
    return _digest(*model.fingerprint_parts())


def filter_regimes(
    model: RegimeModel, x: NDArray[np.float64]
) -> tuple[NDArray[np.float64], NDArray[np.int64]]:
    """``model.filter(x)`` (probabilities (T, K), decisions (T,)); memoised, read-only,
    when ``model`` was fitted through :func:`fit_regime_model`."""
    values = np.asarray(x, dtype="float64")
    with _lock:
        # identity is safe here: the memo holds the model, so its id cannot be reused
        fitted_here = any(fitted is model for fitted in _fits.values())
    if not fitted_here:
        return model.filter(values)
    key = _digest(fingerprint(model), values)
    with _lock:
        result = _readouts.get(key)
        if result is not None:
            _readouts.move_to_end(key)
            return result
    probabilities, decisions = model.filter(values)
    probabilities.flags.writeable = False
    decisions.flags.writeable = False
    result = (probabilities, decisions)
    with _lock:
        _readouts[key] = result
        while len(_readouts) > 1 and _readout_bytes() > MAX_READOUT_BYTES:
            _readouts.popitem(last=False)
    return result


def clear() -> None:
    """Forget every memoised fit and read-out."""
    with _lock:
        _fits.clear()
        _readouts.clear()
