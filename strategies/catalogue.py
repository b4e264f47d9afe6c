"""The strategy registry: what each Freqtrade strategy is, read from its source.

Strategy files are parsed (``ast``), not imported, so a broken or heavy strategy
cannot break the registry. For each ``IStrategy`` subclass: timeframe, stoploss,
ROI table, tunable parameters (with default, range and space), the model it
loads by default, the prediction columns and TA-Lib indicators it uses, and the
docstrings of its ``populate_*`` methods. Subclasses inherit what they do not
override. The registry is written as JSON, to SQLite (table ``strategies``) and
as ``docs/STRATEGY_CATALOGUE.md``.
"""

from __future__ import annotations

import ast
import inspect
import json
import re
import sqlite3
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from common.atomic import write_text_atomic
from strategies.blocks import BLOCKS
from strategies.composition import COMPOSITIONS_DIR, Composition, load_composition

PARAMETER_TYPES = {
    "DecimalParameter",
    "IntParameter",
    "RealParameter",
    "CategoricalParameter",
    "BooleanParameter",
}


class Parameter(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    kind: str
    default: Any = None
    low: Any = None
    high: Any = None
    space: str | None = None
    decimals: int | None = None  # DecimalParameter: Freqtrade rounds loaded values to these


class StrategyInfo(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    file: str
    base: str
    doc: str = ""
    timeframe: str | None = None
    stoploss: float | None = None
    minimal_roi: dict[str, float] = Field(default_factory=dict)
    trailing: dict[str, Any] = Field(default_factory=dict)
    parameters: list[Parameter] = Field(default_factory=list)
    model: str | None = None
    uses_columns: list[str] = Field(default_factory=list)
    indicators: list[str] = Field(default_factory=list)
    methods: dict[str, str] = Field(default_factory=dict)
    entry_blocks: list[str] = Field(default_factory=list)  # composed strategies
    composition: Composition | None = Field(default=None, exclude=True)
    exit_blocks: list[str] = Field(default_factory=list)


def _literal(node: ast.AST) -> Any:
    try:
        return ast.literal_eval(node)
    except (ValueError, SyntaxError):
        return None


def _parameter(name: str, call: ast.Call) -> Parameter:
    args = [_literal(a) for a in call.args]
    keywords = {k.arg: _literal(k.value) for k in call.keywords if k.arg}
    kind = call.func.id if isinstance(call.func, ast.Name) else getattr(call.func, "attr", "?")
    return Parameter(
        name=name,
        kind=kind,
        default=keywords.get("default"),
        low=args[0] if len(args) > 0 else keywords.get("low"),
        high=args[1] if len(args) > 1 else keywords.get("high"),
        space=keywords.get("space"),
        decimals=keywords.get("decimals"),
    )


def reads(block: str) -> set[str]:
    """The adapter's columns a block reads: a position block's rule declares them; a
    signal block's are read from its source (the names, and the helpers that read
    ``do_predict`` and ``&-regime``)."""
    rule, compute = BLOCKS[block].rule, BLOCKS[block].compute
    if rule is not None:
        return set(rule.columns_read)
    if compute is None:
        return set()
    source = inspect.getsource(compute)
    columns = set(re.findall(r'"(&-[\w\-]+|do_predict)"', source))
    if "_trusted(" in source:
        columns.add("do_predict")
    if "regime_names(" in source:
        columns.add("&-regime")
    if "_model_reasons(" in source:
        columns.add("&-reason")
    return columns


def _composed(path: Path, name: Any) -> dict[str, Any]:
    """What a composed strategy's composition declares, as the registry records it."""
    composition = load_composition(path.parent / COMPOSITIONS_DIR / f"{name}.toml")
    settings = composition.freqtrade_settings()
    return {
        "timeframe": composition.timeframe,
        "stoploss": composition.stoploss,
        "minimal_roi": composition.minimal_roi,
        "trailing": {k: v for k, v in settings.items() if k.startswith("trailing_")},
        "model": composition.model,
        "doc": composition.doc,
        "composition": composition,
        "entry_blocks": composition.entry,
        "exit_blocks": composition.exit,
        "uses_columns": sorted({c for b in composition.entry + composition.exit for c in reads(b)}),
        "parameters": [
            Parameter(
                name=p.name,
                kind="IntParameter" if p.decimals is None else "DecimalParameter",
                default=p.default,
                low=p.low,
                high=p.high,
                space=p.space,
                decimals=p.decimals,
            )
            for p in composition.params()
        ],
    }


def _class_info(node: ast.ClassDef, source: str, path: Path) -> StrategyInfo:
    info: dict[str, Any] = {"parameters": [], "methods": {}}
    for item in node.body:
        if (
            isinstance(item, ast.Assign)
            and len(item.targets) == 1
            and isinstance(item.targets[0], ast.Name)
        ):
            name, value = item.targets[0].id, item.value
            if isinstance(value, ast.Call) and getattr(value.func, "id", None) in PARAMETER_TYPES:
                info["parameters"].append(_parameter(name, value))
            elif name in ("timeframe", "stoploss", "minimal_roi"):
                info[name] = _literal(value)
            elif name.startswith("trailing_"):
                info.setdefault("trailing", {})[name] = _literal(value)
            elif name == "default_model_uri":
                info["model"] = _literal(value)
            elif name == "composition" and isinstance(value, ast.Call) and value.args:
                info.update(_composed(path, _literal(value.args[-1])))
        elif isinstance(item, ast.FunctionDef) and item.name.startswith(
            ("populate_", "custom_", "confirm_")
        ):
            info["methods"][item.name] = (
                (ast.get_docstring(item) or "").splitlines()[0] if ast.get_docstring(item) else ""
            )
    body = ast.get_source_segment(source, node) or ""
    base = node.bases[0].id if node.bases and isinstance(node.bases[0], ast.Name) else "?"
    info.setdefault(
        "doc", (ast.get_docstring(node) or "").splitlines()[0] if ast.get_docstring(node) else ""
    )
    return StrategyInfo(
        name=node.name,
        file=path.name,
        base=base,
        indicators=sorted(set(re.findall(r"\bta\.([A-Z][A-Z0-9_]+)\(", body))),
        **{
            "uses_columns": sorted(set(re.findall(r'"(&-[\w\-]+|do_predict|%-[\w\-]+)"', body))),
            **info,
        },
    )


def _classes(path: Path) -> dict[str, StrategyInfo]:
    source = path.read_text(encoding="utf-8")
    return {
        node.name: _class_info(node, source, path)
        for node in ast.parse(source).body
        if isinstance(node, ast.ClassDef) and node.bases
    }


# Freqtrade's base, and ours whose subclasses pass the risk manager (strategies.guarded)
STRATEGY_ROOTS = ("IStrategy", "GuardedStrategy")


def introspect(strategy_dir: Path) -> list[StrategyInfo]:
    """Every strategy class in ``strategy_dir``, subclasses completed from their parents
    (in that directory, or our own base classes such as ``ComposedStrategy``)."""
    found: dict[str, StrategyInfo] = {}
    for path in sorted(strategy_dir.glob("*.py")):
        found.update(_classes(path))
    library = _classes(Path(__file__).with_name("composed.py"))
    strategies = []
    for info in found.values():
        chain, parent = [info], found.get(info.base) or library.get(info.base)
        while parent is not None and parent not in chain:
            chain.append(parent)
            parent = found.get(parent.base) or library.get(parent.base)
        if chain[-1].base not in STRATEGY_ROOTS:
            continue
        merged = info.model_copy(deep=True)
        for ancestor in chain[1:]:
            for field in ("timeframe", "stoploss", "model", "doc"):
                if not getattr(merged, field):
                    setattr(merged, field, getattr(ancestor, field))
            if not merged.minimal_roi:
                merged.minimal_roi = ancestor.minimal_roi
            merged.trailing = {**ancestor.trailing, **merged.trailing}
            names = {p.name for p in merged.parameters}
            merged.parameters += [p for p in ancestor.parameters if p.name not in names]
            merged.methods = {**ancestor.methods, **merged.methods}
            merged.uses_columns = sorted(set(merged.uses_columns) | set(ancestor.uses_columns))
            merged.indicators = sorted(set(merged.indicators) | set(ancestor.indicators))
        strategies.append(merged)
    return sorted(strategies, key=lambda s: s.name)


def model_label(strategy: StrategyInfo) -> str:
    """What the strategy trades on: its model URI, FreqAI's own model (a strategy whose
    columns are FreqAI features, ``%-...``), or candles alone."""
    if strategy.model:
        return strategy.model
    if any(column.startswith("%-") for column in strategy.uses_columns):
        return "(FreqAI)"
    return "none (candles only)"


def markdown(strategies: list[StrategyInfo]) -> str:
    lines = [
        "# Strategies",
        "",
        "Generated by `tradingbot strategies sync` from `user_data/strategies/`; do not edit.",
        "",
    ]
    lines += [
        "| strategy | timeframe | model | stoploss | ROI | parameters |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for s in strategies:
        params = (
            ", ".join(f"{p.name} {p.default} [{p.low}..{p.high}] ({p.space})" for p in s.parameters)
            or "-"
        )
        lines.append(
            f"| `{s.name}` | {s.timeframe} | {model_label(s)} | {s.stoploss} | {json.dumps(s.minimal_roi)} | {params} |"
        )
    for s in strategies:
        lines += ["", f"## {s.name}", "", s.doc, "", f"File `{s.file}`, based on `{s.base}`."]
        if s.uses_columns:
            lines.append("Uses: " + ", ".join(f"`{c}`" for c in s.uses_columns) + ".")
        if s.indicators:
            lines.append("TA-Lib: " + ", ".join(s.indicators) + ".")
        if s.entry_blocks:
            lines.append(
                f"Composed (`compositions/{s.name}.toml`): enters on "
                + " and ".join(f"`{b}`" for b in s.entry_blocks)
                + "; exits on "
                + (", ".join(f"`{b}`" for b in s.exit_blocks) or "stoploss and ROI only")
                + "."
            )
        lines += [""] + [f"* `{name}`: {doc}" for name, doc in sorted(s.methods.items())]
    return "\n".join(lines + blocks_markdown()) + "\n"


def blocks_markdown() -> list[str]:
    """The block library as a table: what each block does and what it declares."""
    lines = [
        "",
        "## Blocks",
        "",
        "| block | role | parameters (default [low..high] space) | what it does |",
        "| --- | --- | --- | --- |",
    ]
    for block in BLOCKS.values():
        params = ", ".join(
            f"{p.name} {p.default} [{p.low}..{p.high}] ({p.space})" for p in block.params
        )
        lines.append(f"| `{block.name}` | {block.role} | {params or '-'} | {block.doc} |")
    return lines


def sync(strategy_dir: Path, docs_dir: Path, database: Path) -> list[StrategyInfo]:
    """Write the registry as JSON and Markdown in ``docs_dir`` and to SQLite."""
    strategies = introspect(strategy_dir)
    write_text_atomic(
        docs_dir / "strategies_registry.json",
        json.dumps([s.model_dump(mode="json") for s in strategies], indent=2),
    )
    write_text_atomic(docs_dir / "STRATEGY_CATALOGUE.md", markdown(strategies))
    database.parent.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(database) as db:
        db.execute(
            "CREATE TABLE IF NOT EXISTS strategies (name TEXT PRIMARY KEY, file TEXT, info TEXT)"
        )
        db.execute("DELETE FROM strategies")
        db.executemany(
            "INSERT INTO strategies VALUES (?, ?, ?)",
            [(s.name, s.file, s.model_dump_json()) for s in strategies],
        )
    db.close()
    return strategies
