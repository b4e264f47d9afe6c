"""Every path under a user dir, named once.

A user dir (``--userdir``, default ``user_data``) holds all state of Tradingbot and
Freqtrade. Code asks this module for a path instead of spelling it, so moving a file
is one change here. Paths are not created: the writer creates what it writes.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

# The folders Freqtrade itself expects in a user dir (``freqtrade create-userdir``), all
# of them: a Freqtrade process creates a missing one after checking that nothing is in
# its place, so two backtests starting at once in a new user dir (a scorecard's markets
# on two workers) could each find the other's fresh folder there and stop
FREQTRADE_SUBDIRS = (
    "backtest_results",
    "data",
    "freqaimodels",
    "hyperopt_results",
    "hyperopts",
    "logs",
    "notebooks",
    "plot",
    "strategies",
)


@dataclass(frozen=True)
class UserDir:
    """The layout of one user dir."""

    root: Path

    # -- MLflow and Optuna --------------------------------------------------------------
    @property
    def mlflow_db(self) -> Path:
        """The default MLflow store (SQLite)."""
        return self.root / "mlflow.db"

    @property
    def mlflow_artifacts(self) -> Path:
        """Artefacts of the default MLflow store."""
        return self.root / "mlartifacts"

    @property
    def optuna_db(self) -> Path:
        """The default Optuna storage (SQLite)."""
        return self.root / "optuna.db"

    @property
    def optuna_journal(self) -> Path:
        """The default Optuna storage: one journal file for every study of the user dir."""
        return self.optuna / "journal.log"

    @property
    def optuna(self) -> Path:
        """Optuna's study locks and finalisation claims."""
        return self.root / "optuna"

    # -- data and caches -----------------------------------------------------------------
    @property
    def data_root(self) -> Path:
        """Imported candles of every exchange."""
        return self.root / "data"

    def data(self, exchange: str) -> Path:
        """Imported candles, in Freqtrade's layout."""
        return self.data_root / exchange

    def market_snapshot(self, exchange: str) -> Path:
        """The frozen markets offline Freqtrade runs load."""
        return self.root / "markets" / f"{exchange}.json"

    @property
    def feature_cache(self) -> Path:
        """Cached feature frames (parquet, keyed by data and spec)."""
        return self.root / "cache" / "features"

    # -- the trade journal -----------------------------------------------------------------
    @property
    def journal(self) -> Path:
        """Every bot's positions and partial exits (``strategies.journal``)."""
        return self.root / "journal.sqlite"

    # -- Freqtrade -------------------------------------------------------------------------
    @property
    def strategies(self) -> Path:
        """Strategy files and their tuned ``<Strategy>.json`` (Freqtrade's place)."""
        return self.root / "strategies"

    @property
    def backtests(self) -> Path:
        """Our backtest results, one folder per cache key."""
        return self.root / "backtest_results" / "tradingbot"

    def walk_forward(self, run_id: str) -> Path:
        """Stitched out-of-sample predictions of a training run."""
        return self.backtests / "walk_forward" / run_id

    @property
    def replay(self) -> Path:
        """Paper trading on a replayed market: its trade database and config."""
        return self.root / "replay"

    @property
    def replay_trades_db(self) -> Path:
        return self.replay / "tradesv3.replay.sqlite"

    def trades_db(self, *, live: bool) -> Path:
        """The bot's trade database for paper (dry-run) or live trading."""
        return self.root / f"tradesv3.{'live' if live else 'dryrun'}.sqlite"

    @property
    def predictions(self) -> Path:
        """What running bots served, one SQLite file per bot (``ml.serving.prediction_log``)."""
        return self.root / "predictions"

    # -- the risk manager, registry, reports -------------------------------------------------
    @property
    def risk_state(self) -> Path:
        """The circuit breaker and concurrency locks."""
        return self.root / "state"

    @property
    def registry_db(self) -> Path:
        """Incidents, the strategy registry and ideas (SQLite)."""
        return self.root / "registry" / "strategies_registry.sqlite"

    @property
    def reports(self) -> Path:
        return self.root / "reports"

    @property
    def backups(self) -> Path:
        return self.root / "backups"

    @property
    def docs(self) -> Path:
        """Generated STRATEGY_CATALOGUE.md and RESULTS.md."""
        return self.root / "docs"


def pair_to_filename(pair: str) -> str:
    """Freqtrade's file name of a pair: ``"BTC/USDT" -> "BTC_USDT"``."""
    for char in ("/", " ", ".", "@", "$", "+", ":"):
        pair = pair.replace(char, "_")
    return pair
