"""A multilayer perceptron (torch) on each candle's feature row, FreqAI's
``PyTorchMLPRegressor`` / ``PyTorchMLPClassifier`` on our forecaster contract.

The row alone is the input (``sequence_length`` 1: causal by construction):
``num_layers`` hidden layers of ``hidden_size`` units with ReLU and dropout, then a
linear head. Training, scaling and prediction are
:class:`ml.models.torch_base.TorchForecaster`'s.
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
        blocks: list[nn.Module] = []
        width = inputs
        for _ in range(layers):
            blocks += [nn.Linear(width, hidden), nn.ReLU(), nn.Dropout(dropout)]
            width = hidden
        self.body = nn.Sequential(*blocks)
        self.head = nn.Linear(width, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        result: torch.Tensor = self.head(self.body(x[:, -1, :])).squeeze(-1)
        return result


class MLPForecaster(TorchForecaster):
    sequence_length: ClassVar[int] = 1  # type: ignore[misc]  # the row alone
    param_ranges: ClassVar[dict[str, Range]] = {
        "hidden_size": count(1, 16_384),
        "num_layers": count(0, 16),
        "dropout": fraction(low_open=False, high_open=True),
        **TRAINING_RANGES,
    }

    def __init__(
        self,
        task: Task = "classification",
        hidden_size: int = 64,
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
