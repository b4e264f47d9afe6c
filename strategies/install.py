"""The shipped strategy files, installed into a user dir as Freqtrade expects them.

Freqtrade loads strategies from ``<userdir>/strategies`` and reads a strategy's tuned
values from ``<Strategy>.json`` beside its file, so every tool (``freqtrade
list-strategies --userdir``, ``freqtrade trade``, our backtests) sees the same files
when they live there. Installing behaves like a package manager's config files: a
missing file is copied, an untouched copy of an older release is updated, and a
file the user edited is kept (and reported), never overwritten. What was shipped is
recorded in ``<userdir>/strategies/.tradingbot-shipped.json`` (file name -> sha256).
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path

from common.atomic import atomic_path, write_text_atomic
from common.layout import UserDir
from strategies.composition import (
    COMPOSITIONS_DIR,
    GENERATED_PREFIX,
    is_generated,
    name_clash,
    read_compositions,
)


def shipped_dir(name: str) -> Path:
    """Where a shipped ``user_data`` folder is: the repository's own (a checkout or an
    editable install), else the copy a wheel installs under ``<prefix>/share/tradingbot``
    (``[tool.setuptools.data-files]`` in pyproject.toml)."""
    for candidate in (
        Path(__file__).resolve().parents[1] / "user_data" / name,
        Path(sys.prefix) / "share" / "tradingbot" / name,
    ):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"the shipped {name} are missing from this installation")


SHIPPED_STRATEGIES = shipped_dir("strategies")
MANIFEST = ".tradingbot-shipped.json"

logger = logging.getLogger(__name__)


@dataclass
class Installed:
    """What one installation did, by file name."""

    copied: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    kept_edited: list[str] = field(default_factory=list)
    generated: list[str] = field(default_factory=list)  # strategy classes of compositions


def _copy(source: Path, target: Path) -> None:
    with atomic_path(target) as tmp:
        shutil.copyfile(source, tmp)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def shipped_files() -> list[Path]:
    """The strategy files and their compositions (``compositions/*.toml``)."""
    return sorted(SHIPPED_STRATEGIES.glob("*.py")) + sorted(
        (SHIPPED_STRATEGIES / COMPOSITIONS_DIR).glob("*.toml")
    )


def install_strategies(layout: UserDir) -> Installed:
    """Copy the shipped strategy sources into ``<userdir>/strategies`` (see module doc).

    A no-op for the repository's own ``user_data``, where the sources already live."""
    target_dir = layout.strategies
    done = Installed()
    if target_dir.resolve() == SHIPPED_STRATEGIES:
        done.generated = write_composed_classes(target_dir)
        return done
    target_dir.mkdir(parents=True, exist_ok=True)
    manifest_path = target_dir / MANIFEST
    try:
        recorded: dict[str, str] = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        recorded = {}
    manifest = dict(recorded)
    for source in shipped_files():
        name = source.relative_to(SHIPPED_STRATEGIES).as_posix()
        shipped_sha = _sha256(source)
        target = target_dir / name
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            _copy(source, target)
            done.copied.append(name)
        elif (current := _sha256(target)) != shipped_sha:
            if current == recorded.get(name):  # an untouched older release
                _copy(source, target)
                done.updated.append(name)
            else:
                done.kept_edited.append(name)
                logger.warning(
                    "%s differs from the shipped %s and was kept (edited by you?); "
                    "delete it to get the shipped version back",
                    target,
                    name,
                )
                continue
        manifest[name] = shipped_sha
    if manifest != recorded:
        write_text_atomic(manifest_path, json.dumps(manifest, indent=2, sort_keys=True))
    done.generated = write_composed_classes(target_dir)
    return done


GENERATED = GENERATED_PREFIX + "{name}.toml: edit the TOML, not this file."
# No text of the composition's goes into the file but its name, a checked identifier
# (strategies.composition); the class reads everything else from the TOML at import.
STUB = """{marker}
from strategies.composed import ComposedStrategy, composition_beside


class {name}(ComposedStrategy):
    composition = composition_beside(__file__, "{name}")
"""


def write_composed_classes(strategy_dir: Path) -> list[str]:
    """A strategy is one TOML file: give each composition without a strategy file the
    class Freqtrade loads (``<Name>.py``, marked as generated), and remove generated
    files whose composition is gone or invalid. A bad composition is logged, naming its
    file, and left out; it never stops the other strategies. A composition named like a
    strategy file that is not its own (a shipped strategy, say) is refused the same way."""
    written = []
    compositions, bad = read_compositions(strategy_dir)
    for name, composition in compositions.items():
        path = strategy_dir / f"{name}.py"
        text = STUB.format(marker=GENERATED.format(name=name), name=composition.name)
        clash = name_clash(strategy_dir, name)
        if clash is not None:
            bad[name] = clash
        elif not path.exists() or (is_generated(path) and path.read_text(encoding="utf-8") != text):
            write_text_atomic(path, text)
            written.append(path.name)
    for name, error in bad.items():
        logger.warning("composition %s is left out: %s", name, error)
    for path in strategy_dir.glob("*.py"):
        if is_generated(path) and (path.stem not in compositions or path.stem in bad):
            path.unlink()
    return written
