"""Freqtrade's real bot loop (FreqtradeBot.process) in dry-run, with local candles.

Only the exchange's network calls are replaced: markets come from a frozen
snapshot, candles from a local frame, prices and order books from the last close,
and any socket connection fails. Shown: entries follow the adapter's predictions,
an active circuit breaker stops new entries, exposure and trade-count limits hold,
and every trade carries its reason.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from common.layout import UserDir
from experiments.spec import parse_experiment
from experiments.training import train_whitelist
from features.data import import_candles
from features.data.synthetic import generate
from ml.registry import promote
from ml.tracking import configure, default_tracking_uri
from strategies.freqtrade_offline import install_frozen_markets
from strategies.markets import market_entry
from strategies.risk import RiskManager, RiskSettings
from tests.conftest import local_context

ROOT = Path(__file__).resolve().parents[2]
PAIRS = ["BTC/USDT", "ETH/USDT", "XRP/USDT"]
CANDLES = 2500


def _candles_until_now(seed: int) -> pd.DataFrame:
    candles, _ = generate(CANDLES, seed=seed)
    last_closed = pd.Timestamp.now(tz="UTC").floor("1h") - pd.Timedelta(hours=1)
    candles["date"] = pd.date_range(end=last_closed, periods=CANDLES, freq="1h", tz="UTC").astype(
        "datetime64[ns, UTC]"
    )
    return candles


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("paper")
    userdir = root / "ud"
    frames = {}
    for seed, pair in enumerate(PAIRS, start=30):
        frames[pair] = _candles_until_now(seed)
        source = root / f"{pair.replace('/', '_')}.feather"
        frames[pair].to_feather(source)
        import_candles(
            source, pair=pair, timeframe="1h", exchange="binance", layout=UserDir(userdir)
        )
    train_end = frames["BTC/USDT"]["date"].iloc[-300]
    spec = parse_experiment(
        {
            "name": "paper_lgbm",
            "data": {"pairs": PAIRS, "timerange": f"-{train_end:%Y%m%d}"},
            "regime": {"n_restarts": 1, "n_iter": 30},
            "model": {
                "kind": "lightgbm",
                "params": {"n_estimators": 40, "num_leaves": 7, "min_child_samples": 50},
            },
            "walk_forward": {"folds": 1, "test_size": 300},
        },
        source="test",
    )
    uri = default_tracking_uri(userdir)
    # a whitelist: one model per pair (paper_lgbm__BTC_USDT, ...), each serving its own pair
    result = train_whitelist(spec, context=local_context(userdir, uri))
    client = configure(uri, UserDir(userdir))
    for trained in result.pairs.values():
        promote(
            client, trained.model_name, trained.version, "paper test", user="pytest", force=True
        )
    return {"userdir": userdir, "frames": frames, "uri": uri}


@pytest.fixture
def offline_exchange(world: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    from freqtrade.enums import CandleType
    from freqtrade.exchange.exchange import Exchange

    def no_network(*args: object, **kwargs: object) -> None:
        raise OSError("network disabled in this test")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    install_frozen_markets({pair: market_entry(pair) for pair in PAIRS})
    frames: dict[str, pd.DataFrame] = world["frames"]

    def refresh_latest_ohlcv(
        self: Exchange, pair_list: list[Any], **kwargs: object
    ) -> dict[Any, pd.DataFrame]:
        out = {}
        for pair, timeframe, *rest in pair_list:
            frame = frames[pair].copy()
            frame["date"] = frame["date"].astype("datetime64[ms, UTC]")
            key = (pair, timeframe, rest[0] if rest else CandleType.SPOT)
            self._klines[key] = frame
            out[key] = frame
        return out

    def close(pair: str) -> float:
        return float(frames[pair]["close"].iloc[-1])

    monkeypatch.setattr(Exchange, "refresh_latest_ohlcv", refresh_latest_ohlcv)
    monkeypatch.setattr(
        Exchange,
        "fetch_ticker",
        lambda self, pair: {
            "symbol": pair,
            "bid": close(pair),
            "ask": close(pair),
            "last": close(pair),
        },
    )
    monkeypatch.setattr(
        Exchange,
        "fetch_l2_order_book",
        lambda self, pair, limit=100: {
            "symbol": pair,
            "bids": [[close(pair), 1e6]],
            "asks": [[close(pair), 1e6]],
        },
    )
    yield


def _bot(
    world: dict[str, Any],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    strategy: str = "RegimeStrategy",
    model: str = "models:/paper_lgbm__{pair}@champion",
    **risk_env: str,
) -> Any:
    from freqtrade.configuration import Configuration
    from freqtrade.enums import RunMode
    from freqtrade.freqtradebot import FreqtradeBot

    userdir: Path = world["userdir"]
    monkeypatch.setenv("RISK_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("RISK_DB_PATH", str(tmp_path / "risk.sqlite"))
    for key, value in risk_env.items():
        monkeypatch.setenv(key, value)
    config = json.loads((ROOT / "user_data" / "config.dryrun.json").read_text())
    config.update(
        {
            "max_open_trades": 3,
            "db_url": "sqlite://",
            "dry_run_wallet": 1000,
            "user_data_dir": str(userdir),
            "strategy": strategy,
            "tradingbot": {
                "model_uri": model,
                "tracking_uri": world["uri"],
                "metrics_textfile": str(tmp_path / "tradingbot.prom"),
            },
        }
    )
    config["exchange"]["pair_whitelist"] = PAIRS
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    args = {
        "config": [str(path)],
        "strategy_path": str(ROOT / "user_data" / "strategies"),
        "user_data_dir": str(userdir),
    }
    bot = FreqtradeBot(Configuration(args, RunMode.DRY_RUN).get_config())
    if strategy == "RegimeStrategy":
        bot.strategy.entry_threshold.value = (
            0.0  # enter wherever the model is trusted and the regime is not bearish
        )
    return bot


def _open_trades() -> list[Any]:
    from freqtrade.persistence import Trade

    return list(Trade.get_open_trades())


def _expected_entries(bot: Any) -> list[str]:
    pairs = []
    for pair in PAIRS:
        frame, _ = bot.dataprovider.get_analyzed_dataframe(pair, "1h")
        last = frame.iloc[-1]
        if last["do_predict"] == 1 and last["&-regime"] not in ("bear", "crash"):
            pairs.append(pair)
    return pairs


@pytest.mark.slow
def test_bot_loop_enters_on_predictions_respects_the_breaker_and_limits(
    world: dict[str, Any], offline_exchange: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bot = _bot(world, tmp_path, monkeypatch, RISK_LIVE_MAX_PER_MARKET_EXPOSURE_PCT="0.25")
    risk = RiskManager(RiskSettings.from_env(__import__("os").environ, UserDir(world["userdir"])))
    try:
        risk.enable_breaker("test incident", minutes=30)
        bot.process()
        assert _open_trades() == []  # the circuit breaker stopped every entry
        expected = _expected_entries(bot)
        assert expected, "the seeded data should give at least one trusted, non-bearish pair"

        risk.disable_breaker()
        bot.process()
        trades = _open_trades()
        assert sorted(t.pair for t in trades) == sorted(expected)
        for trade in trades:
            frame, _ = bot.dataprovider.get_analyzed_dataframe(trade.pair, "1h")
            last = frame.iloc[-1]
            # the reason travels with it, without per-candle numbers
            assert trade.enter_tag == f"{last['&-regime']}|model_probability+regime_filter"
            # 25% of the 1,000 USDT wallet
            assert Decimal(str(trade.stake_amount)) <= Decimal("250")
        metrics = (tmp_path / "tradingbot.prom").read_text()  # the live path's Prometheus textfile
        assert 'tradingbot_risk_blocks_total{code="cb_active"}' in metrics
        assert "tradingbot_inference_seconds_count" in metrics
        assert "tradingbot_predictions_total{" in metrics
    finally:
        bot.cleanup()


@pytest.mark.slow
def test_bot_loop_respects_the_concurrent_trade_limit(
    world: dict[str, Any], offline_exchange: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bot = _bot(world, tmp_path, monkeypatch, RISK_LIVE_MAX_CONCURRENT_TRADES="1")
    try:
        bot.process()
        bot.process()
        assert len(_open_trades()) == 1
    finally:
        bot.cleanup()


BROKEN_STATES = {
    # a breaker whose end has no zone: once a TypeError that Freqtrade read as "allow"
    "naive until_iso": ('{"active": true, "reason": "x", "until_iso": "2099-01-01T00:00:00"}', {}),
    # garbage in the breaker while the incident database cannot be opened (a directory)
    "garbage breaker, incident db unwritable": ("\x00garbage", {"RISK_DB_PATH": "{tmp}/dbdir"}),
    # a valid active breaker while the metrics textfile cannot be written
    "active breaker, metrics unwritable": (
        '{"active": true, "reason": "x", "until_iso": "2099-01-01T00:00:00Z"}',
        {"metrics": "{tmp}/not_a_dir/tradingbot.prom"},
    ),
}


@pytest.mark.slow
@pytest.mark.parametrize("state", sorted(BROKEN_STATES))
def test_bot_loop_opens_no_trade_when_the_risk_manager_is_broken(
    world: dict[str, Any],
    offline_exchange: None,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    state: str,
) -> None:
    breaker, broken = BROKEN_STATES[state]
    env = {k: v.format(tmp=tmp_path) for k, v in broken.items() if k.startswith("RISK_")}
    (tmp_path / "dbdir").mkdir()
    (tmp_path / "not_a_dir").write_text("a file where a directory is expected")
    bot = _bot(world, tmp_path, monkeypatch, **env)
    if "metrics" in broken:
        from ml.observability import MetricsTextfile

        bot.strategy.risk.metrics = MetricsTextfile(Path(broken["metrics"].format(tmp=tmp_path)))
    breaker_file = tmp_path / "state" / "circuit_breaker.json"
    breaker_file.parent.mkdir(parents=True, exist_ok=True)
    breaker_file.write_text(breaker)
    try:
        bot.process()
        assert _expected_entries(bot), "without the breaker, the bot would have entered"
        assert _open_trades() == []
    finally:
        bot.cleanup()


@pytest.fixture(scope="module")
def allocation_model(world: dict[str, Any]) -> str:
    """A regime allocation (jump models on hourly slow-clock features) on the paper world."""
    kinds = ("ewm_return", "ewm_log_downside_deviation", "ewm_sortino", "trend_distance")
    train_end = world["frames"]["BTC/USDT"]["date"].iloc[-300]
    spec = parse_experiment(
        {
            "name": "paper_allocation",
            "data": {"pairs": PAIRS, "timerange": f"-{train_end:%Y%m%d}"},
            "features": {"features": [{"kind": k, "halflives_days": [0.5, 1]} for k in kinds]},
            "regime": {
                "kind": "jump",
                "columns": ["%-ewm_return_0.5d", "%-ewm_sortino_1d", "%-trend_distance_1d"],
                "jump_penalties": [3.0, 30.0],
                "n_init": 2,
            },
            "model": {"kind": "regime_allocation", "params": {"exposures": {"bear": 0.5}}},
            "walk_forward": {"folds": 1, "test_size": 300},
        },
        source="test",
    )
    result = train_whitelist(spec, context=local_context(world["userdir"], world["uri"]))
    client = configure(world["uri"], UserDir(world["userdir"]))
    for trained in result.pairs.values():
        promote(
            client, trained.model_name, trained.version, "paper test", user="pytest", force=True
        )
    return "models:/paper_allocation__{pair}@champion"


@pytest.mark.slow
def test_the_allocation_strategy_enters_its_target_and_obeys_the_breaker(
    world: dict[str, Any],
    offline_exchange: None,
    allocation_model: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Every regime holds some exposure here (bear 50%), so every trusted pair enters, with
    the share of the stake its target says, once the breaker is off."""
    bot = _bot(world, tmp_path, monkeypatch, "RegimeAllocationStrategy", allocation_model)
    risk = RiskManager(RiskSettings.from_env(__import__("os").environ, UserDir(world["userdir"])))
    try:
        risk.enable_breaker("test incident", minutes=30)
        bot.process()
        assert _open_trades() == []  # the breaker stops the allocation strategy too
        targets = {}
        for pair in PAIRS:
            frame, _ = bot.dataprovider.get_analyzed_dataframe(pair, "1h")
            targets[pair] = float(frame["target_exposure"].iloc[-1])
        assert all(t in (0.5, 1.0) for t in targets.values()), targets

        risk.disable_breaker()
        bot.process()
        trades = {t.pair: t for t in _open_trades()}
        assert sorted(trades) == sorted(PAIRS)
        stakes = {pair: float(trade.stake_amount) for pair, trade in trades.items()}
        full = max(stakes[p] / targets[p] for p in PAIRS)
        for pair, trade in trades.items():
            assert trade.enter_tag.endswith(f"exposure {targets[pair]:.2f}")
            assert stakes[pair] == pytest.approx(full * targets[pair], rel=0.02)
    finally:
        bot.cleanup()


def _one_trade_slot(bot: Any) -> None:
    """Pretend the wallet now backs a single trade slot: each pair's budget becomes the
    whole wallet (``RegimeAllocationStrategy._pair_budget``), so the strategy wants to
    add to every position whose target is above 0."""
    bot.config["max_open_trades"] = 1
    bot.strategy.config["max_open_trades"] = 1


def _resize_targets_to(trades: list[Any], sized_for: float, days_ago: float = 2.0) -> None:
    """Pretend each trade was last sized for ``sized_for``, ``days_ago``: a day or more
    later the strategy wants to move it to its (higher) target at its daily rebalance,
    an addition through ``adjust_trade_position``."""
    sized_at = (datetime.now(UTC) - timedelta(days=days_ago)).isoformat()
    for trade in trades:
        trade.set_custom_data("target_exposure", sized_for)
        trade.set_custom_data("sized_at", sized_at)


@pytest.mark.slow
def test_position_increases_pass_the_breaker_and_the_exposure_cap(
    world: dict[str, Any],
    offline_exchange: None,
    allocation_model: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Freqtrade asks neither ``confirm_trade_entry`` nor ``custom_stake_amount`` before
    adding to an open trade; the guard of every Tradingbot strategy does."""
    bot = _bot(
        world,
        tmp_path,
        monkeypatch,
        "RegimeAllocationStrategy",
        allocation_model,
        RISK_LIVE_MAX_PER_MARKET_EXPOSURE_PCT="0.25",
    )
    risk = RiskManager(RiskSettings.from_env(__import__("os").environ, UserDir(world["userdir"])))
    try:
        bot.process()
        entered = {t.pair: float(t.stake_amount) for t in _open_trades()}
        assert sorted(entered) == sorted(PAIRS)

        _one_trade_slot(bot)
        _resize_targets_to(_open_trades(), 0.1)
        risk.enable_breaker("test incident", minutes=30)
        with caplog.at_level("WARNING", logger="tradingbot.risk"):
            bot.process()
        assert {t.pair: float(t.stake_amount) for t in _open_trades()} == entered
        assert "position increase refused: circuit breaker active" in caplog.text

        risk.disable_breaker()
        caplog.clear()
        _resize_targets_to(_open_trades(), 0.1)
        with caplog.at_level("WARNING", logger="tradingbot.risk"):
            bot.process()
        for trade in _open_trades():  # 25% of the 1,000 wallet at most, whatever was asked
            assert Decimal(str(trade.stake_amount)) <= Decimal("250") * Decimal("1.001")
        assert "position increase of" in caplog.text
        metrics = (tmp_path / "tradingbot.prom").read_text()
        assert 'tradingbot_risk_blocks_total{code="max_exposure"}' in metrics
    finally:
        bot.cleanup()


@pytest.mark.slow
def test_position_increases_happen_within_the_limits(
    world: dict[str, Any],
    offline_exchange: None,
    allocation_model: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The control of the test above: with room left, the same addition goes through, a
    day after the position was last sized (ml.sizing.rebalance_due), not before."""
    bot = _bot(world, tmp_path, monkeypatch, "RegimeAllocationStrategy", allocation_model)
    try:
        bot.process()
        entered = {t.pair: float(t.stake_amount) for t in _open_trades()}
        _resize_targets_to(_open_trades(), 0.1)
        bot.process()  # each pair already holds its target's share of its budget
        assert {t.pair: float(t.stake_amount) for t in _open_trades()} == entered
        _one_trade_slot(bot)
        _resize_targets_to(_open_trades(), 0.1, days_ago=0.5)
        bot.process()  # at most one resize a day: not yet
        assert {t.pair: float(t.stake_amount) for t in _open_trades()} == entered
        _resize_targets_to(_open_trades(), 0.1)
        bot.process()
        grown = {t.pair: float(t.stake_amount) for t in _open_trades()}
        assert any(grown[pair] > entered[pair] * 1.05 for pair in entered), (entered, grown)
    finally:
        bot.cleanup()
