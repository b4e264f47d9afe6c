"""`tradingbot data` and `tradingbot features`: import, check, build."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from common.layout import UserDir
from tradingbot._app import (
    AsJson,
    Exchange,
    Pair,
    Timeframe,
    Userdir,
    console,
    data_app,
    features_app,
    stage,
)


@data_app.command("import")
def data_import(
    path: Annotated[
        Path,
        typer.Argument(help="CryptoDataDownload/generic CSV (.gz), Freqtrade feather or json."),
    ],
    pair: Pair,
    timeframe: Timeframe,
    exchange: Exchange = "binance",
    userdir: Userdir = Path("user_data"),
    fill_gaps: Annotated[
        bool, typer.Option("--fill-gaps", help="Insert flat volume-0 candles into gaps (listed).")
    ] = False,
    repair: Annotated[
        bool, typer.Option("--repair", help="Repair bad ticks and OHLC violations (each listed).")
    ] = False,
    duplicates: Annotated[
        str, typer.Option("--duplicates", help="Duplicate policy: most-precise, first or last.")
    ] = "most-precise",
    bad_tick_threshold: Annotated[
        float, typer.Option(help="Flag prices with |log(price / neighbours' median)| above this.")
    ] = 0.5,
    as_json: AsJson = False,
) -> None:
    """Import candles into <userdir>/data/<exchange>/ in Freqtrade's feather layout."""
    from features.data import DuplicatePolicy, ImportOptions, import_candles
    from tradingbot.render import quality_report

    try:
        policy = DuplicatePolicy(duplicates)
    except ValueError:
        raise typer.BadParameter(
            f"{duplicates!r} is not one of most-precise, first, last", param_hint="--duplicates"
        ) from None
    options = ImportOptions(
        duplicate_policy=policy,
        fill_gaps=fill_gaps,
        repair=repair,
        bad_tick_log_threshold=bad_tick_threshold,
    )
    with stage(f"importing {path}"):
        result = import_candles(
            path,
            pair=pair,
            timeframe=timeframe,
            exchange=exchange,
            layout=UserDir(userdir),
            options=options,
        )
    if as_json:
        typer.echo(result.report.model_dump_json(indent=2))
        return
    quality_report(console, result.report, title=f"import report: {pair} {timeframe}")
    console.print(f"wrote {result.candles_path}\nwrote {result.report_path}")
    _suggest_repair(
        result.report, f"tradingbot data import {path} --pair {pair} --timeframe {timeframe}"
    )


@data_app.command("check")
def data_check(
    pair: Pair,
    timeframe: Timeframe,
    exchange: Exchange = "binance",
    userdir: Userdir = Path("user_data"),
    as_json: AsJson = False,
) -> None:
    """Print the quality report of candles already imported."""
    from features.data import check_candles
    from tradingbot.render import quality_report

    report = check_candles(
        pair=pair, timeframe=timeframe, exchange=exchange, layout=UserDir(userdir)
    )
    if as_json:
        typer.echo(report.model_dump_json(indent=2))
        return
    quality_report(console, report, title=f"data check: {pair} {timeframe}")
    _suggest_repair(
        report, f"tradingbot data import <your export> --pair {pair} --timeframe {timeframe}"
    )


def _suggest_repair(report: object, command: str) -> None:
    """Say, when suspicious values were kept, that training and backtests will read them
    and how to repair them."""
    from features.data.quality_report import QualityReport

    assert isinstance(report, QualityReport)
    kept = len(report.bad_ticks) + len(report.invariant_violations)
    if kept:
        console.print(
            f"[yellow]warning[/]: {len(report.bad_ticks)} bad tick(s) and "
            f"{len(report.invariant_violations)} OHLC violation(s) were kept as they are: "
            f"training and backtests read them. To repair them (each repair listed): {command} --repair"
        )


@features_app.command("build")
def features_build(
    pair: Pair,
    timeframe: Timeframe,
    out: Annotated[Path, typer.Option("--out", help="Output parquet file.", dir_okay=False)],
    spec: Annotated[
        Path | None, typer.Option("--spec", help="Feature spec (TOML or JSON); default: built-in.")
    ] = None,
    exchange: Exchange = "binance",
    userdir: Userdir = Path("user_data"),
) -> None:
    """Build the feature frame of imported candles and write it as parquet."""
    from experiments.spec_data import build_feature_file
    from tradingbot.render import feature_summary

    with stage(f"building features for {pair} {timeframe}"):
        result = build_feature_file(
            pair=pair,
            timeframe=timeframe,
            exchange=exchange,
            layout=UserDir(userdir),
            spec_path=spec,
            out=out,
        )
    feature_summary(console, result.meta, out=str(out), cache_hit=result.cache_hit)
