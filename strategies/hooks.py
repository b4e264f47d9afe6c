"""What every Tradingbot strategy does the same way, so a strategy file only decides.

* :func:`connect` (from ``bot_start``): the model adapter named in the Freqtrade
  config's ``tradingbot`` section and the risk manager of the ``RISK_*`` settings,
  with JSON logs and the Prometheus textfile when the config asks for them;
* :func:`confirm_entry` (from ``confirm_trade_entry``): every new trade
  through the risk manager, failing closed (Freqtrade reads an exception raised in
  that hook as "allow the trade");
* :func:`allowed_increase` (from the guard of ``adjust_trade_position``, see
  :mod:`strategies.guarded`): an addition to an open position, cut to the exposure
  room or refused, failing closed;
* :func:`sized_stake`, :func:`open_positions`, :func:`wallet_total`: stakes within
  the exposure limit, from Freqtrade's open trades and wallet.
"""

from __future__ import annotations

import os
from decimal import Decimal
from pathlib import Path
from typing import Any

import pandas as pd
from freqtrade.enums import RunMode
from freqtrade.persistence import Trade

from common.layout import UserDir
from ml import observability
from ml.model_uris import check_model_uri, trusted_tracking_uri
from ml.observability import MetricsTextfile
from ml.serving import PAIR_PLACEHOLDER, ModelAdapter, PairModels
from ml.serving.prediction_log import PredictionLog, log_path
from strategies.risk import Position, RiskManager, RiskSettings, refuse_entry

DEFAULT_REFRESH_MINUTES = 5.0


def connect(strategy: Any) -> None:
    """Set ``strategy.adapter`` (its config's ``tradingbot.model_uri``, else the class's
    ``default_model_uri``; with ``{pair}`` in it, one model per pair) and ``strategy.risk``.
    Walk-forward backtests pass stitched ``predictions``: a file, or one per pair."""
    config = strategy.config
    settings = config.get("tradingbot", {})
    # models load only from the registry of a store the operator trusts (ml.model_uris)
    tracking_uri = trusted_tracking_uri(settings.get("tracking_uri"), _layout(config), os.environ)
    report = settings.get("guard_report")
    timerange = str(config.get("timerange") or "")
    start = timerange.split("-")[0] if "-" in timerange else ""
    if settings.get("log_json"):  # our own log lines as JSON, with this bot's correlation id
        observability.correlation_id.set(observability.new_correlation_id())
        observability.json_logging_for(("ml", "strategies", "tradingbot"))
    textfile = settings.get("metrics_textfile")
    metrics = MetricsTextfile(Path(textfile)) if textfile else None
    uri = check_model_uri(str(settings.get("model_uri", strategy.default_model_uri)))
    running = config.get("runmode") in (RunMode.LIVE, RunMode.DRY_RUN)
    common: dict[str, Any] = {
        "tracking_uri": tracking_uri,
        "evaluation_start": pd.Timestamp(start, tz="UTC") if start else None,
        "metrics": metrics,
        # a running bot follows promotions (at most every N minutes); a backtest never does
        "refresh_minutes": float(settings.get("refresh_minutes", DEFAULT_REFRESH_MINUTES))
        if running
        else None,
    }
    if running and settings.get("record_predictions", True):
        # what this bot serves, candle by candle: `tradingbot backtest --live-predictions`
        bot = str(config.get("bot_name") or "freqtrade")
        common["prediction_log"] = PredictionLog(log_path(_layout(config), bot))
    predictions = settings.get("predictions")
    # a whitelist: each pair served by its own model (or, walking forward with a pooled
    # model, by the predictions of that pair)
    if PAIR_PLACEHOLDER in uri or isinstance(predictions, dict):
        strategy.adapter = PairModels(
            uri,
            report_path=Path(report) if report else None,
            stitched_predictions={p: Path(f) for p, f in dict(predictions or {}).items()},
            pinned={
                pair: check_model_uri(str(exact), where=f"model_uris[{pair}]")
                for pair, exact in dict(settings.get("model_uris") or {}).items()
            },
            **common,
        )
    else:
        strategy.adapter = ModelAdapter(
            uri,
            report_path=Path(report) if report else None,
            stitched_predictions=Path(predictions) if predictions else None,
            **common,
        )
    connect_risk(strategy, metrics)


def connect_risk(strategy: Any, metrics: MetricsTextfile | None = None) -> None:
    """Set ``strategy.risk`` only: a strategy that reads no model."""
    settings = RiskSettings.from_env(os.environ, _layout(strategy.config))
    strategy.risk = RiskManager(settings, metrics=metrics)


def _layout(config: dict[str, Any]) -> UserDir:
    """The user dir Freqtrade was started with: where the path enters this process."""
    return UserDir(Path(config.get("user_data_dir", "user_data")))


def model_columns(strategy: Any, dataframe: pd.DataFrame, pair: str) -> pd.DataFrame:
    """The adapter's prediction columns for ``pair``, given the candles of the model's
    reference pairs from Freqtrade's data provider (``[features] reference_pairs``)."""
    references = {
        other: strategy.dp.get_pair_dataframe(other, strategy.timeframe)
        for other in strategy.adapter.reference_pairs(pair)
    }
    return strategy.adapter.populate(  # type: ignore[no-any-return]
        dataframe, pair, live=is_live(strategy), references=references
    )


def reference_informative_pairs(strategy: Any) -> list[tuple[str, str]]:
    """``informative_pairs`` for Freqtrade: the reference pairs the whitelist's models
    need, at the strategy's timeframe, so a running bot downloads their candles."""
    adapter = getattr(strategy, "adapter", None)
    if adapter is None or strategy.dp is None:
        return []
    wanted = {
        other for pair in strategy.dp.current_whitelist() for other in adapter.reference_pairs(pair)
    }
    return [(other, strategy.timeframe) for other in sorted(wanted)]


def is_live(strategy: Any) -> bool:
    """Dry-run or live (the circuit breaker applies per trade), not a backtest."""
    return bool(strategy.dp.runmode in (RunMode.LIVE, RunMode.DRY_RUN))


def open_positions() -> list[Position]:
    return [
        Position(t.pair, Decimal(str(t.stake_amount))) for t in Trade.get_trades_proxy(is_open=True)
    ]


def wallet_total(strategy: Any) -> Decimal:
    wallets = strategy.wallets
    return Decimal(str(wallets.get_total_stake_amount())) if wallets else Decimal(0)


def sized_stake(strategy: Any, pair: str, stake: Decimal) -> Decimal:
    """``stake`` cut to what the per-market exposure limit leaves in ``pair``."""
    return Decimal(strategy.risk.size_stake(pair, stake, open_positions(), wallet_total(strategy)))


def confirm_entry(strategy: Any, pair: str, amount: float, rate: float) -> bool:
    """May ``amount`` at ``rate`` be bought in ``pair``? Any failure refuses."""
    try:
        decision = strategy.risk.check_entry(
            pair,
            Decimal(str(amount)) * Decimal(str(rate)),
            open_positions(),
            wallet_total(strategy),
            use_breaker=is_live(strategy),
        )
        return bool(decision.allowed)
    except Exception as exc:
        return refuse_entry(getattr(strategy, "risk", None), pair, exc)


def allowed_increase(
    strategy: Any, pair: str, stake: float, min_stake: float | None = None
) -> float | None:
    """The part of an addition of ``stake`` to the open position in ``pair`` that the
    risk manager allows (cut to the exposure room), or None: refused, or less than the
    exchange's ``min_stake`` is left. Any failure refuses."""
    try:
        allowed = strategy.risk.size_increase(
            pair,
            Decimal(str(stake)),
            open_positions(),
            wallet_total(strategy),
            use_breaker=is_live(strategy),
        )
    except Exception as exc:
        refuse_entry(getattr(strategy, "risk", None), pair, exc)
        return None
    if allowed <= 0 or (min_stake is not None and allowed < Decimal(str(min_stake))):
        return None
    return float(allowed)


# trade custom data of a strategy that resizes its positions (ml.sizing.rebalance_due):
# when the position was last sized (ISO 8601, UTC; before any resize, the trade's open)
SIZED_AT = "sized_at"


def _utc(moment: Any) -> pd.Timestamp:
    """A datetime (naive ones are UTC, as Freqtrade's) or ISO 8601 text, in UTC."""
    stamp = pd.Timestamp(moment)
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


def days_since_sized(trade: Trade, now: Any) -> float:
    """Days from when ``trade`` was last sized (its open, before any resize) to ``now``."""
    sized_at = trade.get_custom_data(SIZED_AT, default=None) or trade.open_date_utc
    return float((_utc(now) - _utc(sized_at)).total_seconds() / 86_400)


def mark_sized(trade: Trade, key: str, value: float, now: Any) -> None:
    """Record that ``trade`` was sized for ``value`` (custom data ``key``) at ``now``."""
    trade.set_custom_data(key, value)
    trade.set_custom_data(SIZED_AT, _utc(now).isoformat())
