"""Where a command runs, resolved once where it enters and passed down.

The CLI (and a Freqtrade strategy, Freqtrade's own entry point) resolves a
:class:`RunContext` from its options and the process environment; the library below
takes it as a value and reads neither the environment nor a default of its own. It is a
plain, picklable value, so a job sent to another process or machine carries it whole.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

from common.layout import UserDir

# MLflow's own variable: a shared tracking server instead of the user dir's store
TRACKING_URI_VARIABLE = "MLFLOW_TRACKING_URI"


def default_tracking_uri(userdir: Path) -> str:
    """The user dir's embedded MLflow store (SQLite)."""
    return f"sqlite:///{UserDir(userdir).mlflow_db.resolve()}"


@dataclass(frozen=True)
class RunContext:
    """A command's user dir, MLflow tracking URI and environment.

    ``environment`` is the one the command was started with: what it honours
    (``RISK_*`` guardrails, exchange keys, ``FREQTRADE__DB_URL``) and what the
    Freqtrade processes it starts inherit."""

    userdir: Path
    tracking_uri: str
    environment: Mapping[str, str] = field(default_factory=dict)
    layout: UserDir = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # a snapshot: a later change of the process environment does not reach a run
        object.__setattr__(self, "environment", MappingProxyType(dict(self.environment)))
        object.__setattr__(self, "layout", UserDir(self.userdir))

    def __reduce__(self) -> tuple[type[RunContext], tuple[Path, str, dict[str, str]]]:
        return RunContext, (self.userdir, self.tracking_uri, dict(self.environment))

    @classmethod
    def resolve(cls, userdir: Path, environ: Mapping[str, str]) -> RunContext:
        """The context of a command started in ``environ`` on ``userdir``: MLflow's own
        ``MLFLOW_TRACKING_URI`` wins, else the user dir's embedded store."""
        uri = environ.get(TRACKING_URI_VARIABLE) or default_tracking_uri(userdir)
        return cls(userdir, uri, environ)
