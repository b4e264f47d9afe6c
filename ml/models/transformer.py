"""A transformer encoder (torch) over sequences of feature rows, FreqAI's
``PyTorchTransformerRegressor`` on our forecaster contract (and as a classifier).

The input at candle t is the sequence of the last ``sequence_length`` feature rows
ending at t (causal: attention reads nothing after t). Each row is projected to
``d_model`` units with a learned position embedding, ``num_layers`` encoder layers of
``nhead`` heads read the sequence, and a linear head reads the last position. Training,
scaling and prediction are :class:`ml.models.torch_base.TorchForecaster`'s.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any, ClassVar

import torch
from torch import nn

from ml.models.base import Task
from ml.models.params import Range, count, fraction
from ml.models.torch_base import TRAINING_RANGES, TorchForecaster


class _Network(nn.Module):
    def __init__(
        self, inputs: int, length: int, d_model: int, heads: int, layers: int, dropout: float
    ) -> None:
        super().__init__()
        self.project = nn.Linear(inputs, d_model)
        self.position = nn.Parameter(torch.zeros(1, length, d_model))
        layer = nn.TransformerEncoderLayer(
            d_model,
            heads,
            dim_feedforward=2 * d_model,
            dropout=dropout,
            batch_first=True,
        )
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.head = nn.Linear(d_model, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        encoded = self.encoder(self.project(x) + self.position)
        result: torch.Tensor = self.head(encoded[:, -1, :]).squeeze(-1)
        return result


class TransformerForecaster(TorchForecaster):
    param_ranges: ClassVar[dict[str, Range]] = {
        "sequence_length": count(1, 10_000),
        "d_model": count(1, 4096),
        "nhead": count(1, 64),
        "num_layers": count(1, 16),
        "dropout": fraction(low_open=False, high_open=True),
        **TRAINING_RANGES,
    }

    def __init__(
        self,
        task: Task = "classification",
        sequence_length: int = 16,
        d_model: int = 32,
        nhead: int = 4,
        num_layers: int = 2,
        dropout: float = 0.1,
        learning_rate: float = 1e-3,
        batch_size: int = 256,
        max_epochs: int = 20,
        patience: int = 3,
        validation_fraction: float = 0.2,
        validation_gap: int = 1,
        device: str = "auto",
        random_state: int = 0,
    ) -> None:
        self.task = task
        self.sequence_length = sequence_length
        self.d_model = d_model
        self.nhead = nhead
        self.num_layers = num_layers
        self.dropout = dropout
        self.learning_rate = learning_rate
        self.batch_size = batch_size
        self.max_epochs = max_epochs
        self.patience = patience
        self.validation_fraction = validation_fraction
        self.validation_gap = validation_gap
        self.device = device
        self.random_state = random_state

    @classmethod
    def params_problem(cls, params: Mapping[str, Any]) -> str | None:
        defaults = inspect.signature(cls).parameters
        d_model = int(params.get("d_model", defaults["d_model"].default))
        heads = int(params.get("nhead", defaults["nhead"].default))
        if d_model % heads:
            return f"d_model ({d_model}) must be a multiple of nhead ({heads})"
        return None

    def _network(self, inputs: int) -> nn.Module:
        return _Network(
            inputs, self.sequence_length, self.d_model, self.nhead, self.num_layers, self.dropout
        )
