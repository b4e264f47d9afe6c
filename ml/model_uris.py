"""Where a served model may come from: a registry URI, in a store the operator trusts.

A model is code: its bundle is a pickle. So a strategy config, a composition or an
environment variable may name a model only as a registry URI,
``models:/NAME@alias`` or ``models:/NAME/N`` (``NAME`` may hold ``{pair}``), and
only in a trusted store: the user dir's own (``<userdir>/mlflow.db``), or the one
the bot's environment names in ``MLFLOW_TRACKING_URI``, which is the documented
opt-in for a shared server (docs/RISK.md). A file path, a run, a URL or another
store named only in a config file is refused before anything is read. Light on
purpose (no MLflow): configs and compositions are checked before heavy imports.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

from common.errors import SpecError
from common.layout import UserDir, pair_to_filename

_NAME = r"[A-Za-z0-9_.\-]*(?:\{pair\})?[A-Za-z0-9_.\-]*"
MODEL_URI = re.compile(
    rf"^models:/(?P<name>{_NAME})(?:@(?P<alias>[A-Za-z0-9_\-]+)|/(?P<version>[0-9]+))$"
)
ENVIRONMENT_STORE = "MLFLOW_TRACKING_URI"


class UntrustedModelError(SpecError):
    """A model or a store outside what the operator trusts."""


def check_model_uri(uri: str, *, where: str = "model_uri") -> str:
    """``uri`` when it names a registered model version or alias; raises saying how to
    name one otherwise."""
    match = MODEL_URI.match(uri)
    if match is None or not match["name"].strip("{}"):
        raise UntrustedModelError(
            f"{where} {uri!r} is not a registry URI: models load only from the registry",
            hint="give models:/NAME@champion or models:/NAME/3 (register a model with "
            "tradingbot train, move aliases with tradingbot promote)",
        )
    return uri


def sqlite_uri_path(uri: str) -> Path | None:
    """The database file of a ``sqlite:///`` URI, resolved; None for other URIs."""
    prefix = "sqlite:///"
    return Path(uri[len(prefix) :]).resolve() if uri.startswith(prefix) else None


def trusted_tracking_uri(
    configured: str | None, layout: UserDir, environment: Mapping[str, str]
) -> str:
    """The store a strategy may load models from: ``configured`` (a config's
    ``tradingbot.tracking_uri``) when it is the user dir's store or the environment's
    ``MLFLOW_TRACKING_URI``; else the environment's; else the user dir's."""
    own = f"sqlite:///{layout.mlflow_db.resolve()}"
    from_environment = environment.get(ENVIRONMENT_STORE) or None
    if not configured:
        return from_environment or own
    if configured == from_environment:
        return configured
    path = sqlite_uri_path(configured)
    if path is not None and path == sqlite_uri_path(own):
        return own
    raise UntrustedModelError(
        f"tracking_uri {configured!r} in the config is neither this user dir's store "
        f"({own}) nor {ENVIRONMENT_STORE}: models load only from a store the operator trusts",
        hint=f"to trust it, start the bot with {ENVIRONMENT_STORE}={configured} "
        "in its environment (docs/RISK.md)",
    )


def model_name(spec_name: str, pair: str) -> str:
    """The one rule for a whitelist spec's registered models: one per pair, named
    ``<spec name>__<BASE>_<QUOTE>`` (``eth_5m_lgbm__ETH_BTC``). A single-pair spec
    registers under the spec's own name."""
    return f"{spec_name}__{pair_to_filename(pair)}"  # as the adapter fills in {pair}
