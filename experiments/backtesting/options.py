"""What a backtest runs, resolved once from what was asked and the spec's defaults.

The command line passes what the user typed (``None``: not given); a spec supplies the
rest (its pair or whitelist, timeframe, exchange, ``<spec>@champion``, its
``[backtest]`` window and strategy); a composed strategy supplies its own timeframe.
Asked values always win. The result is what :func:`experiments.backtesting.run.backtest`
takes, so the CLI merges nothing itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from common.errors import SpecError
from common.layout import UserDir
from experiments.spec import ExperimentSpec


@dataclass(frozen=True)
class BacktestOptions:
    """A backtest as asked: each field ``None`` (or empty) when not given."""

    spec: ExperimentSpec | None = None
    strategy: str | None = None
    pair: str | None = None
    timeframe: str | None = None
    timerange: str | None = None
    model: str | None = None
    exchange: str = "binance"
    walk_forward: bool = False
    pairs: tuple[str, ...] = ()
    max_open_trades: int | None = None
    live_predictions: str | None = None  # a running bot's name: trade what it served

    @property
    def replays_predictions(self) -> bool:
        """Are recorded predictions traded (walk-forward or a bot's), so that their span
        is the window unless a timerange narrows it?"""
        return self.walk_forward or self.live_predictions is not None


@dataclass(frozen=True)
class BacktestPlan:
    """A backtest as it runs."""

    strategy: str | None  # None: the one the model's kind is traded by
    pair: str
    pairs: tuple[str, ...]  # a whitelist (two or more), else empty
    timeframe: str
    timerange: str  # empty walking forward: the folds' out-of-sample span
    model: str | None
    exchange: str
    walk_forward: bool
    max_open_trades: int | None
    notes: tuple[str, ...] = ()
    live_predictions: str | None = None  # what the user should know about the resolution

    @property
    def markets(self) -> list[str]:
        return list(self.pairs) or [self.pair]


def resolve_backtest(options: BacktestOptions, layout: UserDir) -> BacktestPlan:
    """The plan of ``options`` (see the module doc); ``layout``: where the user dir's
    composed strategies are. Raises SpecError when the market or window is missing."""
    whitelist = list(options.pairs)
    pair, timeframe, timerange = options.pair, options.timeframe, options.timerange
    model, strategy, exchange = options.model, options.strategy, options.exchange
    spec = options.spec
    if spec is not None:
        if not whitelist and not pair and spec.is_whitelist:
            whitelist = list(spec.data.pairs)
        pair = pair or spec.data.whitelist[0]
        timeframe = timeframe or spec.data.timeframe
        exchange = spec.data.exchange
        model = model or f"{spec.name}@champion"
        # a spec's [backtest] window is for its champion; walking forward, the folds'
        # out-of-sample span is the window unless --timerange narrows it
        timerange = timerange or (None if options.replays_predictions else spec.backtest.timerange)
        declared = "strategy" in spec.backtest.model_fields_set
        strategy = strategy or (spec.backtest.strategy if declared else None)
    timeframe, notes = _composition_timeframe(layout.strategies, strategy, timeframe)
    if len(whitelist) == 1:  # a whitelist of one is that pair
        pair = whitelist[0]
    pair = pair or (whitelist[0] if whitelist else None)
    if pair is None or timeframe is None or (timerange is None and not options.replays_predictions):
        raise SpecError("give a SPEC.toml, or --pair, --timeframe and --timerange")
    if options.walk_forward and options.live_predictions:
        raise SpecError(
            "--walk-forward and --live-predictions trade different predictions: choose one"
        )
    if len(set(whitelist)) != len(whitelist):
        raise SpecError("a pair is listed twice in --pairs")
    return BacktestPlan(
        strategy=strategy,
        pair=pair,
        pairs=tuple(whitelist) if len(whitelist) > 1 else (),
        timeframe=timeframe,
        timerange=timerange or "",
        model=model,
        exchange=exchange,
        walk_forward=options.walk_forward,
        max_open_trades=options.max_open_trades,
        notes=notes,
        live_predictions=options.live_predictions,
    )


def _composition_timeframe(
    installed: Path, strategy: str | None, timeframe: str | None
) -> tuple[str | None, tuple[str, ...]]:
    """A composed strategy's declared timeframe when none is asked; a note when one is
    asked and differs (Freqtrade runs the strategy at the asked one)."""
    from strategies.composition import compositions_in
    from strategies.install import SHIPPED_STRATEGIES

    if not strategy:
        return timeframe, ()
    folder = installed if (installed / "compositions").is_dir() else SHIPPED_STRATEGIES
    composition = compositions_in(folder).get(strategy)
    if composition is None:
        return timeframe, ()
    if timeframe is None:
        return composition.timeframe, ()
    if timeframe != composition.timeframe:
        return timeframe, (
            f"{strategy} is composed for {composition.timeframe}; it runs at {timeframe} as "
            f"--timeframe asks (its windows count {timeframe} candles)",
        )
    return timeframe, ()
