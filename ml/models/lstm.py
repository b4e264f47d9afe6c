"""LSTM forecaster (torch) over sequences of feature rows.

The input at candle t is the sequence of the last ``sequence_length`` feature rows
ending at t (causal); an LSTM reads it and a linear head reads its last output.
Training, scaling and prediction are :class:`ml.models.torch_base.TorchForecaster`'s.

The HMM-LSTM is this model fed with the filtered regime probabilities as extra
input columns (see ``ml.bundle``): conditioning by inputs, chosen over a gate
of per-regime heads because it needs no extra parameters per regime and lets the
LSTM learn how much the regime matters.
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import nn

from ml.models.base import Task
from ml.models.params import Range, count, fraction
from ml.models.torch_base import TRAINING_RANGES, TorchForecaster


class _Network(nn.Module):
    def __init__(self, inputs: int, hidden: int, layers: int, dropout: float) -> None:
        super().__init__()
        self.lstm = nn.LSTM(
            inputs,
            hidden,
            num_layers=layers,
            batch_first=True,
            dropout=dropout if layers > 1 else 0.0,
        )
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(hidden, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.lstm(x)
        result: torch.Tensor = self.head(self.dropout(out[:, -1, :])).squeeze(-1)
        return result


class LSTMForecaster(TorchForecaster):
    param_ranges: ClassVar[dict[str, Range]] = {
        "sequence_length": count(1, 10_000),
        "hidden_size": count(1, 4096),
        "num_layers": count(1, 16),
        "dropout": fraction(low_open=False, high_open=True),
        **TRAINING_RANGES,
    }

    def __init__(
        self,
        task: Task = "classification",
        sequence_length: int = 32,
        hidden_size: int = 32,
        num_layers: int = 1,
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
        self.hidden_size = hidden_size
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

    def _network(self, inputs: int) -> nn.Module:
        return _Network(inputs, self.hidden_size, self.num_layers, self.dropout)
