"""A whitelist served by one adapter per pair, from a model URI with ``{pair}`` (or one
pooled model's URI, the same for every pair)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from common.atomic import write_text_atomic
from common.layout import pair_to_filename
from ml.serving.adapter import ModelAdapter
from ml.serving.guard import GuardReport

PAIR_PLACEHOLDER = "{pair}"


def pair_uri(template: str, pair: str) -> str:
    """``models:/wl__{pair}@champion`` for ``ETH/BTC`` -> ``models:/wl__ETH_BTC@champion``
    (a URI without ``{pair}``, a pooled model's, is the same for every pair)."""
    return template.replace(PAIR_PLACEHOLDER, pair_to_filename(pair))


class PairModels:
    """One :class:`ModelAdapter` per pair of a whitelist, each serving the model the URI
    template names for that pair; the same ``populate`` as a single adapter. The guard
    report holds every pair (``model_uri`` and ``train_window_last`` by pair)."""

    def __init__(
        self,
        template: str,
        *,
        report_path: Path | None = None,
        stitched_predictions: dict[str, Path] | None = None,
        pinned: dict[str, str] | None = None,
        **adapter_options: Any,
    ) -> None:
        self.model_uri = template
        # pair -> exact URI (``models:/NAME/3``): a backtest trades the versions it records,
        # whatever an alias says by the time Freqtrade starts
        self.pinned = pinned or {}
        self.report_path = report_path
        self.stitched_predictions = stitched_predictions or {}
        self.adapter_options = adapter_options
        self.adapters: dict[str, ModelAdapter] = {}

    def adapter(self, pair: str) -> ModelAdapter:
        if pair not in self.adapters:
            self.adapters[pair] = ModelAdapter(
                self.pinned.get(pair) or pair_uri(self.model_uri, pair),
                stitched_predictions=self.stitched_predictions.get(pair),
                **self.adapter_options,
            )
        return self.adapters[pair]

    def reference_pairs(self, pair: str) -> tuple[str, ...]:
        return self.adapter(pair).reference_pairs(pair)

    def populate(
        self,
        dataframe: pd.DataFrame,
        pair: str,
        *,
        live: bool = False,
        references: Mapping[str, pd.DataFrame] | None = None,
    ) -> pd.DataFrame:
        out = self.adapter(pair).populate(dataframe, pair, live=live, references=references)
        self._write_report()
        return out

    def _write_report(self) -> None:
        if self.report_path is None:
            return
        merged: dict[str, Any] = {
            "model_uri": self.model_uri,
            "model_uri_by_pair": {p: a.model_uri for p, a in self.adapters.items()},
            "train_window_last_by_pair": {
                p: a.bundle.metadata.train_window.last.isoformat()
                for p, a in self.adapters.items()
                if a.bundle is not None
            },
        }
        for key in vars(GuardReport()):
            merged[key] = {
                p: v for a in self.adapters.values() for p, v in getattr(a.guard, key).items()
            }
        write_text_atomic(self.report_path, json.dumps(merged, indent=2, sort_keys=True))
