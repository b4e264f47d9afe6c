"""What the adapter withheld and why, per pair: the lookahead guard's report."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import numpy as np

from common.atomic import write_text_atomic


@dataclass
class GuardReport:
    """What the adapter withheld, per pair: written for the backtest record."""

    rows: dict[str, int] = field(default_factory=dict)
    trusted: dict[str, int] = field(default_factory=dict)
    in_training_window: dict[str, int] = field(default_factory=dict)
    warmup: dict[str, int] = field(default_factory=dict)
    unavailable: dict[str, str] = field(default_factory=dict)
    # rows unlike the training data (dissimilarity index above the spec's threshold)
    dissimilar: dict[str, int] = field(default_factory=dict)
    # rows after the model's expiry ([trust] expiration_hours past its training window)
    expired: dict[str, int] = field(default_factory=dict)
    # rows a [pipeline] outlier detector flags (SVM, DBSCAN)
    outliers: dict[str, int] = field(default_factory=dict)

    def record(
        self,
        pair: str,
        ready: np.ndarray,
        seen_in_training: np.ndarray,
        dissimilar: np.ndarray,
        evaluated: np.ndarray,
        expired: np.ndarray | None = None,
        outlier: np.ndarray | None = None,
    ) -> None:
        """Count one read-out of ``pair``: rows, trusted rows, and the evaluated rows
        withheld (inside the training window, unlike the training data, after the
        model's expiry, warm-up)."""
        stale = np.zeros(len(ready), dtype=bool) if expired is None else expired
        odd = np.zeros(len(ready), dtype=bool) if outlier is None else outlier
        fresh = ready & ~seen_in_training
        self.rows[pair] = len(ready)
        self.trusted[pair] = int((fresh & ~dissimilar & ~stale & ~odd).sum())
        self.in_training_window[pair] = int((seen_in_training & evaluated).sum())
        self.dissimilar[pair] = int((fresh & dissimilar & evaluated).sum())
        self.expired[pair] = int((fresh & ~dissimilar & stale & evaluated).sum())
        self.outliers[pair] = int((fresh & ~dissimilar & ~stale & odd & evaluated).sum())
        self.warmup[pair] = int((~ready & ~seen_in_training & evaluated).sum())
        self.unavailable.pop(pair, None)

    def write(self, path: Path, model_uri: str, train_window_last: datetime | None) -> None:
        """The report as JSON (atomically), for the backtest record."""
        payload = {
            "model_uri": model_uri,
            "train_window_last": None
            if train_window_last is None
            else train_window_last.isoformat(),
            **vars(self),
        }
        write_text_atomic(path, json.dumps(payload, indent=2, sort_keys=True))
