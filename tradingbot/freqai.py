"""`tradingbot import-freqai`: a FreqAI config as an experiment spec."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from common.atomic import write_text_atomic
from tradingbot._app import app, console


@app.command("import-freqai")
def import_freqai_command(
    config: Annotated[Path, typer.Argument(help="A Freqtrade config with a freqai section.")],
    out: Annotated[
        Path | None, typer.Option("--out", help="The spec to write (default: <identifier>.toml).")
    ] = None,
    freqaimodel: Annotated[
        str | None,
        typer.Option(
            "--freqaimodel", help="FreqAI's model (default: the config's, else LightGBMRegressor)."
        ),
    ] = None,
    name: Annotated[str | None, typer.Option("--name", help="The spec's name.")] = None,
) -> None:
    """Turn a FreqAI config into an experiment spec; print what maps where and what does not."""
    from experiments.freqai_import import convert, load_config, spec_toml
    from experiments.spec import parse_experiment

    imported = convert(load_config(config), name=name, model=freqaimodel)
    parse_experiment(imported.spec, source=str(config))  # a spec that loads, or the error
    target = out or Path(f"{imported.spec['name']}.toml")
    if target.exists():
        raise typer.BadParameter(f"{target} exists: choose another --out", param_hint="--out")
    write_text_atomic(target, spec_toml(imported.spec))
    table = Table(title=f"{config} -> {target}")
    for column in ("FreqAI", "value", "spec", "note"):
        table.add_column(column, overflow="fold")
    for row in imported.report:
        table.add_row(row.key, str(row.value), row.spec_key or "-", row.note)
    console.print(table)
    unmapped = [row.key for row in imported.report if not row.spec_key]
    console.print(
        f"wrote {target}: {len(imported.report) - len(unmapped)} settings mapped, "
        f"{len(unmapped)} not ({', '.join(unmapped) or 'none'})"
    )
