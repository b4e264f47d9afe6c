"""`tradingbot train`, `retrain` and `promote`."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

if TYPE_CHECKING:
    from common.context import RunContext
    from common.executors import ProcessPool
    from experiments.spec import ExperimentSpec
    from strategies.freqtrade_process import FreqtradeProcess

from common.errors import SpecError
from tradingbot._app import (
    TRAINING_WORKER,
    ExecutorOption,
    Jobs,
    SpecPair,
    SpecTimeframe,
    SpecTimerange,
    Userdir,
    _require_data,
    app,
    compute,
    console,
    progress_bar,
    run_context,
    tracking_client,
)


@app.command("train")
def train_command(
    spec: Annotated[
        Path,
        typer.Argument(help="Experiment spec (TOML), e.g. experiments/specs/btc_1h_lightgbm.toml."),
    ],
    pair: SpecPair = None,
    timeframe: SpecTimeframe = None,
    timerange: SpecTimerange = None,
    jobs: Jobs = None,
    executor: ExecutorOption = None,
    keep_folds: Annotated[
        bool,
        typer.Option(
            "--keep-folds",
            help="Also log each fold's model and predictions (default: the run keeps the "
            "stitched out-of-sample predictions, what backtests and reports read).",
        ),
    ] = False,
    backtest: Annotated[
        bool,
        typer.Option(
            "--backtest",
            help="Then backtest what was trained, walk-forward on the Freqtrade engine (as "
            "tradingbot backtest SPEC --walk-forward --model <spec>@challenger); Freqtrade "
            "starts while the models train.",
        ),
    ] = False,
    userdir: Userdir = Path("user_data"),
) -> None:
    """Train an experiment spec with walk-forward evaluation; record and register it in
    MLflow. A spec with a whitelist ([data] pairs) trains one model per pair
    (<spec>__<BASE>_<QUOTE>; --pair trains one of them), or with [data] pooling =
    "pooled" one model over all of them (<spec>)."""
    from strategies.freqtrade_process import ForkedFreqtrade, StartedFreqtrade

    context = run_context(userdir)
    pool = _warm_local_pool(executor, jobs, context)
    with contextlib.ExitStack() as stack:
        # Freqtrade's process for the backtest, started now so that its imports run beside
        # the training's (an unused one is ended on the way out). With a local pool it is
        # forked from the pool's fork server (see _warm_local_pool), after the spec's checks:
        # ending it waits for the fork, the fork for the server's imports, and the error a
        # check finds must not wait for them.
        started: FreqtradeProcess | None = None
        if backtest and pool is None:
            started = stack.enter_context(StartedFreqtrade(context.environment))
        from experiments.spec import load_experiment

        experiment = load_experiment(spec).with_overrides(
            pair=pair, timeframe=timeframe, timerange=timerange
        )
        data = experiment.data
        _require_data(userdir, data.exchange, data.whitelist, data.timeframe)
        spec_text = spec.read_text(encoding="utf-8")
        if backtest and pool is not None:
            started = stack.enter_context(ForkedFreqtrade(context.environment, pool.start_process))
        _train(experiment, context, spec_text, (executor, jobs), keep_folds)
        if started is not None:
            from experiments.backtesting.options import BacktestOptions
            from ml.registry import CHALLENGER
            from tradingbot.backtests import run_and_show_backtest

            trained = BacktestOptions(
                spec=experiment, model=f"{experiment.name}@{CHALLENGER}", walk_forward=True
            )
            run_and_show_backtest(trained, context, started, use_cache=True)


def _warm_local_pool(
    executor: str | None, jobs: int | None, context: RunContext
) -> ProcessPool | None:
    """Start the local pool's fork server first thing when the options ask for one
    (``--jobs N``, no Ray): its imports, the seconds before any pair can start, then run
    beside this process's own instead of after them. Returns that pool, or None. The spec
    can still choose Ray (``[compute]``); the server then imported for Freqtrade alone.

    ``train --backtest`` forks Freqtrade's process from that server too
    (:class:`strategies.freqtrade_process.ForkedFreqtrade`): it then imports only
    Freqtrade's own modules, once the server is ready, instead of the whole stack beside
    the server's and this process's imports at the start, where the first pair waits for
    them (measured in docs/BACKTESTING.md). Without a pool it is a fresh interpreter,
    which imports beside this process."""
    from common.executors import ProcessPool, chosen_executor

    local = chosen_executor(executor, context.environment) == "local"
    if jobs is None or jobs < 2 or not local:
        return None
    pool = ProcessPool(jobs, TRAINING_WORKER)
    pool.warm()
    return pool


def _train(
    experiment: ExperimentSpec,
    context: RunContext,
    spec_text: str,
    where: tuple[str | None, int | None],  # --executor, --jobs
    keep_folds: bool,
) -> None:
    """A whitelist's per-pair models (the pairs are the executor's jobs), or one model:
    a single pair's or a pooled whitelist's (its independent folds are the jobs)."""
    from experiments.training import progress_steps

    data = experiment.data
    per_pair = experiment.is_whitelist and data.pooling == "per_pair"
    if per_pair:
        label, steps = f" ({len(data.whitelist)} pairs)", len(data.whitelist)
    else:
        label, steps = (
            (f" (pooled, {len(data.pairs)} pairs)" if data.pooling == "pooled" else ""),
            1,
        )
    with (
        compute(*where, context, experiment) as workers,
        progress_bar(
            f"training {experiment.name}{label}", progress_steps(experiment) * steps
        ) as advance,
    ):
        workers.warm()
        # imported while a pool's fork server imports the same, not before it starts
        from experiments.training import train, train_whitelist

        if per_pair:
            results = train_whitelist(
                experiment,
                context=context,
                spec_text=spec_text,
                progress=advance,
                executor=workers,
                keep_folds=keep_folds,
            )
        else:
            result = train(
                experiment,
                context=context,
                spec_text=spec_text,
                progress=advance,
                executor=workers,
                keep_folds=keep_folds,
            )
    from tradingbot.render import train_summary, whitelist_summary

    if per_pair:
        whitelist_summary(console, results, context.tracking_uri)
    else:
        train_summary(console, result, context.tracking_uri)


@app.command("retrain")
def retrain_command(
    spec: Annotated[Path, typer.Argument(help="Experiment spec (TOML) of a registered model.")],
    userdir: Userdir = Path("user_data"),
) -> None:
    """Refit a spec on every candle imported so far, register it @challenger, and promote
    it only if it is not worse than the champion on candles neither has seen (for a
    timer: cron, systemd, the compose retrain service). Whitelist specs: every pair."""
    from experiments.spec import load_experiment

    experiment = load_experiment(spec)
    data = experiment.data
    _require_data(userdir, data.exchange, data.whitelist, data.timeframe)
    from experiments.training import progress_steps
    from experiments.training.retrain import RULE, retrain

    if data.pooling == "pooled":
        raise SpecError(
            f"retrain of pooled models is not available yet ({experiment.name})",
            hint="train it again (tradingbot train) and compare the versions in MLflow",
        )
    console.print(f"rule: {RULE}")
    specs = [experiment.for_pair(p) for p in data.whitelist]
    for one in specs:
        steps = progress_steps(one)
        with progress_bar(f"retraining {one.name}", steps) as advance:
            result = retrain(one, context=run_context(userdir), progress=advance)
        verdict = "[green]promoted[/]" if result.promoted else "[yellow]champion kept[/]"
        console.print(f"{one.name} v{result.trained.version}: {verdict} ({escape(result.reason)})")


@app.command("promote")
def promote_command(
    name: Annotated[
        str,
        typer.Argument(
            help="Registered model name (the spec's name); a whitelist spec's name promotes "
            "each pair's model (<spec>__<BASE>_<QUOTE>)."
        ),
    ],
    reason: Annotated[str, typer.Option("--reason", help="Why: recorded with the decision.")],
    version: Annotated[
        int | None,
        typer.Option("--version", help="Model version to promote (default: the @challenger)."),
    ] = None,
    force: Annotated[
        bool,
        typer.Option(
            "--force",
            help="Promote a version that does worse than buy and hold on its own "
            "evaluation (recorded as forced, with --reason).",
        ),
    ] = False,
    userdir: Userdir = Path("user_data"),
) -> None:
    """Move alias `champion` to a model version and record who, when, why and key metrics.

    Refused when the version's evaluation does worse than buy and hold on the same
    candles (Calmar; the window's return over max drawdown under 90 days), unless --force."""
    from ml.registry import check_promotion, promote, whitelist_models

    client = tracking_client(userdir)
    names = whitelist_models(client, name)
    if len(names) > 1 and version is not None:
        raise typer.BadParameter(
            f"{name} is a whitelist of {len(names)} models: promote their challengers "
            "(no --version), or one model by its own name",
            param_hint="--version",
        )
    for model in names:  # a whitelist is promoted whole or not at all
        check_promotion(client, model, version, force)
    for model in names:
        decision = promote(client, model, version, reason, force=force)
        console.print(f"models:/{model}@champion -> version {decision['version']}")
        for key, value in decision.items():
            if key != "version":
                console.print(f"  {key}: {value}")
