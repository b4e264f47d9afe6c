"""What the torch forecasters share: sequences of feature rows, scaling, mini-batch
training with early stopping, and batched prediction.

A subclass gives the network (:meth:`TorchForecaster._network`) and its parameters;
the input at candle t is the sequence of the last ``sequence_length`` feature rows
ending at t (causal; 1 for a model that reads the row alone). Features are
standardised with the training rows' mean and std (``scaler_mean_``, ``scaler_std_``).
Classification trains with binary cross-entropy on the direction, regression with MSE
on the standardised target; with ``sample_weight`` each row's loss counts that much
(``[pipeline] weight_factor``). Early stopping on the chronologically last validation
slice, ``validation_gap`` rows after the training rows.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import ClassVar

import numpy as np
import pandas as pd
import torch
from numpy.typing import NDArray
from torch import nn

from ml.models.base import as_frame, proba_to_prediction, resolve_device, split_validation
from ml.models.forecaster import Forecaster, check_continuation
from ml.models.params import POSITIVE, Range, count, fraction


def sequence_ends(values: NDArray[np.float64], length: int) -> NDArray[np.int64]:
    """Row positions t whose window [t - length + 1, t] has only finite features."""
    finite = np.isfinite(values).all(axis=1).astype("int64")
    run = np.convolve(finite, np.ones(length, dtype="int64"), mode="full")[: len(finite)]
    return np.flatnonzero(run == length).astype("int64")


SMALL_BATCH = 64


@contextmanager
def _torch_threads(threads: int) -> Iterator[None]:
    previous = torch.get_num_threads()
    if threads == previous:
        yield
        return
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


# the training loop's parameters, the same in every torch model
TRAINING_RANGES: dict[str, Range] = {
    "learning_rate": POSITIVE,
    "batch_size": count(1),
    "max_epochs": count(1),
    "patience": count(1),
    "validation_fraction": fraction(high_open=True),
    "validation_gap": count(0),
}


class TorchForecaster(Forecaster):
    """The torch forecasters' shared training and prediction (see the module doc).

    Subclasses set, in ``__init__``: ``task``, ``sequence_length`` (or a class attribute),
    ``learning_rate``, ``batch_size``, ``max_epochs``, ``patience``,
    ``validation_fraction``, ``validation_gap``, ``device``, ``random_state``; and give
    :meth:`_network`."""

    uses_torch: ClassVar[bool] = True
    accepts_sample_weight: ClassVar[bool] = True
    continues_training: ClassVar[bool] = True
    trainer_params: ClassVar[frozenset[str]] = frozenset({"random_state", "validation_gap"})
    task: str
    sequence_length: int
    learning_rate: float
    batch_size: int
    max_epochs: int
    patience: int
    validation_fraction: float
    validation_gap: int
    device: str
    random_state: int
    # learned
    scaler_mean_: NDArray[np.float64]
    scaler_std_: NDArray[np.float64]
    target_mean_: float
    target_std_: float
    network_: nn.Module

    # -- helpers ---------------------------------------------------------------------

    @property
    def context_rows(self) -> int:
        """A prediction reads the ``sequence_length - 1`` rows before its own."""
        return int(self.sequence_length) - 1

    def _windows(self, values: torch.Tensor, ends: torch.Tensor) -> torch.Tensor:
        offsets = torch.arange(-self.sequence_length + 1, 1, device=values.device)
        return values[ends[:, None] + offsets]  # (B, L, D)

    def _standardise(self, X: pd.DataFrame) -> NDArray[np.float64]:
        values = as_frame(X).to_numpy(dtype="float64")
        standardised: NDArray[np.float64] = (values - self.scaler_mean_) / self.scaler_std_
        return standardised

    # -- estimator API ---------------------------------------------------------------

    def _network(self, inputs: int) -> nn.Module:
        """A fresh network for ``inputs`` columns: (batch, sequence, inputs) -> (batch,)."""
        raise NotImplementedError

    def fit(
        self,
        X: pd.DataFrame,
        y: NDArray[np.float64],
        sample_weight: NDArray[np.float64] | None = None,
        init_model: Forecaster | None = None,
    ) -> TorchForecaster:
        frame = as_frame(X)
        self.feature_names_in_ = [str(c) for c in frame.columns]
        values = frame.to_numpy(dtype="float64")
        target = np.asarray(y, dtype="float64")
        train_ends, val_ends = self._fit_scalers(values, target)
        start = self._start(init_model)
        if start is not None:  # the scaling it learned with, so its weights mean the same
            self.scaler_mean_, self.scaler_std_ = start.scaler_mean_, start.scaler_std_
            self.target_mean_, self.target_std_ = start.target_mean_, start.target_std_
        self.device_ = resolve_device(self.device)
        torch.manual_seed(self.random_state)
        device = torch.device(self.device_)
        data = torch.as_tensor(
            np.nan_to_num(self._standardise(frame)), dtype=torch.float32, device=device
        )
        labels = torch.as_tensor(
            np.nan_to_num((target - self.target_mean_) / self.target_std_),
            dtype=torch.float32,
            device=device,
        )
        weights = None
        if sample_weight is not None:
            if np.shape(sample_weight) != (len(values),):
                raise ValueError(
                    f"sample_weight has shape {np.shape(sample_weight)}, expected ({len(values)},)"
                )
            weights = torch.as_tensor(
                np.asarray(sample_weight, dtype="float64"), dtype=torch.float32, device=device
            )
        network = self._network(values.shape[1])
        if start is not None:
            network.load_state_dict(start.network_.state_dict())
        network = network.to(device)
        train_idx = torch.as_tensor(train_ends, device=device)
        started = time.perf_counter()
        self._train(
            network, data, labels, train_idx, torch.as_tensor(val_ends, device=device), weights
        )
        self.train_seconds_ = time.perf_counter() - started
        self.samples_seen_ = len(train_idx) * len(self.history_)
        self.best_epoch_ = int(
            np.argmin([h.get("val_loss", h["train_loss"]) for h in self.history_])
        )
        self.network_ = network.to("cpu").eval()
        self.n_features_in_ = values.shape[1]
        return self

    def _start(self, init_model: Forecaster | None) -> TorchForecaster | None:
        """The fitted model to continue from (None: from scratch): of this class, task and
        architecture, on the same columns."""
        if init_model is None:
            return None
        check_continuation(self, init_model)
        assert isinstance(init_model, TorchForecaster)
        shape = {k: v.shape for k, v in init_model.network_.state_dict().items()}
        ours = {
            k: v.shape for k, v in self._network(len(self.feature_names_in_)).state_dict().items()
        }
        if shape != ours:
            raise ValueError(
                f"{type(self).__name__} cannot continue from a network of another shape "
                "(its parameters changed)"
            )
        return init_model

    def _fit_scalers(
        self, values: NDArray[np.float64], target: NDArray[np.float64]
    ) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
        """Learn the input and target scaling; return the training and validation sequence
        ends (rows whose sequence and target are complete)."""
        finite_rows = np.isfinite(values).all(axis=1)
        self.scaler_mean_ = values[finite_rows].mean(axis=0)
        self.scaler_std_ = values[finite_rows].std(axis=0)
        self.scaler_std_[self.scaler_std_ == 0] = 1.0
        ends = sequence_ends(values, self.sequence_length)
        ends = ends[np.isfinite(target[ends])]
        if len(ends) < 20:
            raise ValueError(
                f"too few complete training sequences ({len(ends)}) for {type(self).__name__}"
            )
        train_ends, val_ends = split_validation(ends, self.validation_fraction, self.validation_gap)
        if self.task == "regression":
            self.target_mean_ = float(target[train_ends].mean())
            self.target_std_ = float(target[train_ends].std()) or 1.0
        else:
            self.target_mean_, self.target_std_ = 0.0, 1.0
        return train_ends, val_ends

    def _train(
        self,
        network: nn.Module,
        data: torch.Tensor,
        labels: torch.Tensor,
        train_idx: torch.Tensor,
        val_idx: torch.Tensor,
        weights: torch.Tensor | None = None,
    ) -> None:
        """Epochs of mini-batch Adam with early stopping on the validation loss (the
        training loss without validation rows); ``network`` ends with the best epoch's
        weights and ``history_`` holds every epoch's losses. ``weights``: each row's
        share of the training loss (None: equal)."""
        optimiser = torch.optim.Adam(network.parameters(), lr=self.learning_rate)
        loss_fn: nn.Module = (
            nn.BCEWithLogitsLoss() if self.task == "classification" else nn.MSELoss()
        )
        row_loss: nn.Module = (
            nn.BCEWithLogitsLoss(reduction="none")
            if self.task == "classification"
            else nn.MSELoss(reduction="none")
        )
        generator = torch.Generator().manual_seed(self.random_state)
        self.history_: list[dict[str, float]] = []
        best_loss, best_state, stale = float("inf"), None, 0
        for epoch in range(self.max_epochs):
            network.train()
            order = train_idx[torch.randperm(len(train_idx), generator=generator).to(data.device)]
            total = 0.0
            for start in range(0, len(order), self.batch_size):
                batch = order[start : start + self.batch_size]
                optimiser.zero_grad()
                out = network(self._windows(data, batch))
                if weights is None:
                    loss = loss_fn(out, labels[batch])
                else:
                    share = weights[batch]
                    loss = (row_loss(out, labels[batch]) * share).sum() / share.sum()
                loss.backward()
                optimiser.step()
                total += float(loss.detach()) * len(batch)
            record = {"epoch": float(epoch), "train_loss": total / len(order)}
            if len(val_idx):
                record["val_loss"] = self._loss(network, data, labels, val_idx, loss_fn)
            self.history_.append(record)
            monitored = record.get("val_loss", record["train_loss"])
            if monitored < best_loss - 1e-6:
                best_loss, stale = monitored, 0
                best_state = {k: v.detach().clone() for k, v in network.state_dict().items()}
            else:
                stale += 1
                if stale >= self.patience:
                    break
        if best_state is not None:
            network.load_state_dict(best_state)

    def _loss(
        self,
        network: nn.Module,
        data: torch.Tensor,
        labels: torch.Tensor,
        idx: torch.Tensor,
        loss_fn: nn.Module,
    ) -> float:
        network.eval()
        total = 0.0
        with torch.no_grad():
            for start in range(0, len(idx), 4096):
                batch = idx[start : start + 4096]
                total += float(loss_fn(network(self._windows(data, batch)), labels[batch])) * len(
                    batch
                )
        return total / len(idx)

    def _raw(self, X: pd.DataFrame) -> NDArray[np.float64]:
        values = self._standardise(X)
        out = np.full(len(values), np.nan)
        ends = sequence_ends(values, self.sequence_length)
        if not len(ends):
            return out
        data = torch.as_tensor(np.nan_to_num(values), dtype=torch.float32)
        idx = torch.as_tensor(ends)
        chunks = []
        # A few sequences (the live path: one per new candle) run faster on one thread than
        # split across cores, and do not slow down other work on the machine.
        threads = 1 if len(ends) <= SMALL_BATCH else torch.get_num_threads()
        with torch.no_grad(), _torch_threads(threads):
            for start in range(0, len(idx), 8192):
                chunks.append(self.network_(self._windows(data, idx[start : start + 8192])).numpy())
        out[ends] = np.concatenate(chunks).astype("float64")
        return out

    def predict_proba(self, X: pd.DataFrame) -> NDArray[np.float64]:
        if self.task != "classification":
            raise AttributeError("predict_proba is only defined for classification")
        p_up = 1.0 / (1.0 + np.exp(-self._raw(X)))
        return np.column_stack([1.0 - p_up, p_up])

    def predict(self, X: pd.DataFrame) -> NDArray[np.float64]:
        if self.task == "classification":
            return proba_to_prediction(self.predict_proba(X)[:, 1])
        return self._raw(X) * self.target_std_ + self.target_mean_
