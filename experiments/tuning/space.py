"""The ``[tune]`` section of an experiment spec: what to search, how to judge it.

```toml
[tune]
objective = "sharpe"            # or a list, e.g. ["sharpe", "max_drawdown"]: NSGA-II
pruner = "median"               # median | percentile | hyperband | none (single objective only)
test_fraction = 0.2             # the last 20% of the candles: scored once, at the end

[tune.space]
"model.params.num_leaves" = { type = "int", low = 7, high = 63 }
"model.params.learning_rate" = { type = "float", low = 0.01, high = 0.2, log = true }
"regime.n_states" = { type = "int", low = 2, high = 4 }
"features.preset" = { type = "categorical", choices = ["default", "default+4h"] }
"strategy.entry_threshold" = { type = "float", low = 0.50, high = 0.65, step = 0.01 }
"strategy.stoploss" = { type = "float", low = -0.15, high = -0.02 }
"strategy.roi.0" = { type = "float", low = 0.02, high = 0.20 }
```

``strategy_parameters = "declared"`` (in ``[tune]``) adds every parameter the strategy's
blocks declare, over its declared range and step (see docs/STRATEGIES.md).

Space keys are dotted paths: ``model.*``, ``regime.*``, ``features.preset`` and
``target.horizon`` change the experiment spec (validated like the spec itself);
``strategy.<name>`` sets a value of the ``[backtest]`` strategy: a declared
``*Parameter``, ``stoploss``, ``roi.<minutes>`` or a ``trailing_*`` setting.
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from common.errors import SpecError

if TYPE_CHECKING:  # a spec is read by every command; Optuna is needed only to tune
    import optuna

Direction = Literal["maximize", "minimize"]
# metric -> the direction that is better; strategy metrics come from the replay of the
# [backtest] strategy, forecast metrics from ml.metrics on the same out-of-sample rows.
OBJECTIVES: dict[str, Direction] = {
    "sharpe": "maximize",
    "profit_total": "maximize",
    "max_drawdown": "minimize",
    "winrate": "maximize",
    "accuracy": "maximize",
    "log_loss": "minimize",
    "brier": "minimize",
    "rmse": "minimize",
    "rank_ic": "maximize",
    "qlike": "minimize",
    "mse_log_vol": "minimize",
    "qlike_vs_har_rv": "minimize",
}
STRATEGY_OBJECTIVES = ("sharpe", "profit_total", "max_drawdown", "winrate")
SPEC_ROOTS = ("model.", "regime.", "features.preset", "target.horizon")


class IntRange(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["int"]
    low: int
    high: int
    step: int = Field(default=1, ge=1)
    log: bool = False

    def suggest(self, trial: optuna.Trial, name: str) -> int:
        return trial.suggest_int(name, self.low, self.high, step=self.step, log=self.log)

    def example(self) -> int:
        return self.low


class FloatRange(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["float"]
    low: float
    high: float
    step: float | None = Field(default=None, gt=0)
    log: bool = False

    def suggest(self, trial: optuna.Trial, name: str) -> float:
        return trial.suggest_float(name, self.low, self.high, step=self.step, log=self.log)

    def example(self) -> float:
        return self.low


class Choice(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["categorical"]
    choices: list[str | int | float | bool] = Field(min_length=1)

    def suggest(self, trial: optuna.Trial, name: str) -> Any:
        return trial.suggest_categorical(name, self.choices)

    def example(self) -> Any:
        return self.choices[0]


Distribution = Annotated[IntRange | FloatRange | Choice, Field(discriminator="type")]


class TuneConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    objective: str | list[str] = "sharpe"
    sampler: Literal["tpe", "nsga2", "random"] | None = None  # tpe, or nsga2 for several objectives
    pruner: Literal["median", "percentile", "hyperband", "none"] | None = (
        None  # median for one objective
    )
    prune_percentile: float = Field(default=25.0, gt=0.0, lt=100.0)  # "percentile": keep the top P%
    startup_trials: int = Field(default=5, ge=0, le=1000)  # random trials before TPE / pruning
    test_fraction: float = Field(default=0.2, ge=0.05, le=0.5)
    # "declared": every parameter the strategy's blocks declare, over its declared range
    # (a [tune.space] entry of the same name overrides it)
    strategy_parameters: Literal["declared"] | None = None
    space: dict[str, Distribution] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _check(self) -> TuneConfig:
        for name in self.objectives:
            if name not in OBJECTIVES:
                raise ValueError(f"unknown objective {name!r}; choose from {sorted(OBJECTIVES)}")
        if len(set(self.objectives)) != len(self.objectives):
            raise ValueError(f"objective lists a metric twice: {self.objectives}")
        if not self.space and self.strategy_parameters is None:
            raise ValueError("[tune.space] is empty: add keys, or strategy_parameters = 'declared'")
        if self.multi_objective and self.pruner not in (None, "none"):
            raise ValueError("Optuna cannot prune multi-objective studies: set pruner = 'none'")
        for key, distribution in self.space.items():
            if not (key.startswith(SPEC_ROOTS) or key.startswith("strategy.")):
                raise ValueError(
                    f"space key {key!r}: must start with one of {[*SPEC_ROOTS, 'strategy.']}"
                )
            if (
                isinstance(distribution, IntRange | FloatRange)
                and distribution.low >= distribution.high
            ):
                raise ValueError(f"space key {key!r}: low must be below high")
            if (
                isinstance(distribution, IntRange | FloatRange)
                and distribution.log
                and distribution.low <= 0
            ):
                raise ValueError(f"space key {key!r}: a log range needs low > 0")
        return self

    def with_declared(self, declared: dict[str, Distribution]) -> TuneConfig:
        """This config with the strategy's declared ranges (``strategy.<name>``) added
        where [tune.space] does not name them."""
        space = {f"strategy.{k}": v for k, v in declared.items()} | dict(self.space)
        return self.model_copy(update={"space": space, "strategy_parameters": None})

    @property
    def sampler_kind(self) -> str:
        """The sampler used: the spec's, else TPE (NSGA-II for several objectives)."""
        return self.sampler or ("nsga2" if self.multi_objective else "tpe")

    @property
    def pruner_kind(self) -> str:
        """The pruner used: the spec's, else the median pruner (none for several objectives)."""
        return self.pruner or ("none" if self.multi_objective else "median")

    @property
    def objectives(self) -> list[str]:
        return [self.objective] if isinstance(self.objective, str) else list(self.objective)

    @property
    def multi_objective(self) -> bool:
        return len(self.objectives) > 1

    @property
    def directions(self) -> list[Direction]:
        return [OBJECTIVES[name] for name in self.objectives]

    @property
    def uses_strategy(self) -> bool:
        return any(name in STRATEGY_OBJECTIVES for name in self.objectives) or bool(
            self.strategy_space
        )

    @property
    def strategy_space(self) -> dict[str, Distribution]:
        return {k: v for k, v in self.space.items() if k.startswith("strategy.")}

    def suggest(self, trial: optuna.Trial) -> dict[str, Any]:
        """One value per space key (the key is Optuna's parameter name)."""
        return {
            name: distribution.suggest(trial, name) for name, distribution in self.space.items()
        }

    def examples(self) -> dict[str, Any]:
        return {name: distribution.example() for name, distribution in self.space.items()}


def set_path(data: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """A deep copy of ``data`` with the dotted ``path`` set to ``value``."""
    out = copy.deepcopy(data)
    node = out
    parts = path.split(".")
    for part in parts[:-1]:
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        if not isinstance(child, dict):
            raise SpecError(f"space key {path!r}: {part!r} is not a table in the spec")
        node = child
    node[parts[-1]] = value
    return out


def strategy_values(params: dict[str, Any]) -> dict[str, Any]:
    """``strategy.<name>`` entries of sampled params, keyed by ``<name>``."""
    return {k.removeprefix("strategy."): v for k, v in params.items() if k.startswith("strategy.")}
