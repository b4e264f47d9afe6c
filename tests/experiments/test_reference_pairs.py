"""Reference-pair features (FreqAI's include_corr_pairlist): trained, backtested, live."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from common.layout import UserDir
from features.data import load_candles
from ml.tracking import configure, default_tracking_uri
from tests.conftest import CliResult, import_synthetic, local_context

SPEC = """
name = "eth_ref"
seed = 3

[data]
pair = "ETH/USDT"
timeframe = "1h"
timerange = "-20210301"

[features]
reference_pairs = ["BTC/USDT"]

[backtest]
timerange = "20210301-20210322"

[regime]
n_restarts = 1
n_iter = 20

[model]
kind = "lightgbm"
params = { n_estimators = 20, num_leaves = 7, min_child_samples = 20 }

[walk_forward]
folds = 1
test_size = 400
"""


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, str]:
    from tradingbot import run

    tmp = tmp_path_factory.mktemp("reference")
    userdir = tmp / "ud"
    import_synthetic(userdir, "ETH/USDT", candles=2000, seed=11)
    import_synthetic(userdir, "BTC/USDT", candles=2000, seed=12)
    spec_path = tmp / "eth_ref.toml"
    spec_path.write_text(SPEC)
    assert run(["train", str(spec_path), "--userdir", str(userdir)]) == 0
    assert (
        run(["promote", "eth_ref", "--reason", "test", "--force", "--userdir", str(userdir)]) == 0
    )
    return userdir, spec_path, default_tracking_uri(userdir)


def test_the_model_reads_the_reference_pairs_features(trained: tuple[Path, Path, str]) -> None:
    from ml.model_source import load_bundle

    userdir, _, _ = trained
    bundle = load_bundle("models:/eth_ref@champion")
    assert bundle.reference_pairs == ("BTC/USDT",)
    assert "%-rsi_14_ref_BTC_USDT" in bundle.metadata.input_columns
    eth = load_candles(UserDir(userdir), "binance", "ETH/USDT", "1h")
    btc = load_candles(UserDir(userdir), "binance", "BTC/USDT", "1h")
    features = bundle.features(eth, {"BTC/USDT": btc})
    assert np.isfinite(features["%-log_return_24_ref_BTC_USDT"].iloc[-100:]).all()


def test_a_freqtrade_backtest_serves_the_reference_candles(
    trained: tuple[Path, Path, str], cli: Callable[..., CliResult], tmp_path: Path
) -> None:
    """The strategy hands the adapter the reference pair's candles from Freqtrade's data
    provider: every candle after the training window is traded, none refused."""
    userdir, spec_path, uri = trained
    done = cli("backtest", spec_path, "--userdir", userdir)
    assert done.code == 0, done.err
    client = configure(uri, UserDir(userdir))
    backtests = client.get_experiment_by_name("backtests")
    assert backtests is not None
    run = client.search_runs([backtests.experiment_id], order_by=["attributes.start_time DESC"])[0]
    guard = json.loads(
        Path(
            client.download_artifacts(run.info.run_id, "results/guard.json", str(tmp_path))
        ).read_text()
    )
    assert guard["unavailable"] == {}
    assert guard["trusted"]["ETH/USDT"] > 400


def test_live_steps_give_the_batch_values_and_a_missing_reference_is_named(
    trained: tuple[Path, Path, str],
) -> None:
    from ml.serving import ModelAdapter

    userdir, _, uri = trained
    eth = load_candles(UserDir(userdir), "binance", "ETH/USDT", "1h")
    btc = load_candles(UserDir(userdir), "binance", "BTC/USDT", "1h")
    for frame in (eth, btc):
        frame["date"] = frame["date"].astype("datetime64[ms, UTC]")  # as Freqtrade's
    adapter = ModelAdapter("models:/eth_ref@champion", tracking_uri=uri)
    assert adapter.reference_pairs("ETH/USDT") == ("BTC/USDT",)
    batch = adapter.populate(eth, "ETH/USDT", references={"BTC/USDT": btc})
    live = ModelAdapter("models:/eth_ref@champion", tracking_uri=uri)
    live.populate(eth.iloc[:1700].copy(), "ETH/USDT", live=True, references={"BTC/USDT": btc})
    columns = ["&-prediction", "&-p_up", *[c for c in batch.columns if c.startswith("&-p_")]]
    for end in range(1701, 1711):
        window = slice(end - 1200, end)
        out = live.populate(
            eth.iloc[window].copy(),
            "ETH/USDT",
            live=True,
            references={"BTC/USDT": btc.iloc[window].copy()},
        )
        np.testing.assert_allclose(
            out[columns].to_numpy(dtype="float64")[-1],
            batch[columns].to_numpy(dtype="float64")[end - 1],
            rtol=1e-7,
            atol=1e-9,
        )
    refused = ModelAdapter("models:/eth_ref@champion", tracking_uri=uri)
    out = refused.populate(eth, "ETH/USDT")
    assert (out["do_predict"] == 0).all()
    assert "reference pair BTC/USDT" in refused.guard.unavailable["ETH/USDT"]


def test_training_without_the_reference_candles_says_which(
    tmp_path: Path, cli: Callable[..., CliResult]
) -> None:
    userdir = tmp_path / "ud"
    import_synthetic(userdir, "ETH/USDT", candles=2000, seed=11)
    spec_path = tmp_path / "eth_ref.toml"
    spec_path.write_text(SPEC)
    failed = cli("train", spec_path, "--userdir", userdir)
    assert failed.code == 2 and "BTC/USDT" in failed.err
    assert not (userdir / "mlflow.db").exists()  # said before anything was recorded


@pytest.mark.slow
def test_a_replayed_paper_bot_gets_the_reference_candles(
    trained: tuple[Path, Path, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Freqtrade's own bot loop asks for the reference pair as an informative pair; the
    replayed market serves it; the trades are the backtest's."""
    import socket

    from experiments.paper import replay_paper
    from strategies.catalogue import introspect
    from strategies.install import install_strategies
    from strategies.params import default_params, with_values
    from strategies.runner import REPO_STRATEGIES

    def refuse(*args: object, **kwargs: object) -> None:
        raise OSError("network disabled: the replay must not need it")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    userdir, _, uri = trained
    install_strategies(UserDir(userdir))
    info = {i.name: i for i in introspect(REPO_STRATEGIES)}["RegimeStrategy"]
    values = {"entry_threshold": 0.5, "exit_threshold": 0.48}
    with_values(default_params(info), values).write(userdir / "strategies")
    root = Path(__file__).resolve().parents[2]
    config = json.loads((root / "user_data" / "config.dryrun.json").read_text())
    config["tradingbot"]["model_uri"] = "models:/eth_ref@champion"
    config["exchange"]["pair_whitelist"] = ["ETH/USDT"]
    path = userdir.parent / "config.json"
    path.write_text(json.dumps(config))
    result, _, compared = replay_paper(
        config=path,
        context=local_context(userdir, uri),
        timerange="20210305-20210312",
        strategy=None,
        model=None,
        quiet=True,
    )
    assert result.steps == 7 * 24
    assert compared.unexplained.empty, compared.unexplained
    assert len(compared.matched) >= 1, (result.trades, compared)


def test_a_walk_forward_backtest_needs_neither_the_model_nor_the_reference_candles(
    trained: tuple[Path, Path, str], cli: Callable[..., CliResult]
) -> None:
    """The stitched out-of-sample predictions already hold what the reference pair gave:
    the strategy asks Freqtrade for no reference candles and loads no model for them."""
    from ml.serving import ModelAdapter

    userdir, spec_path, uri = trained
    stitched = ModelAdapter(
        "models:/eth_ref@champion",
        tracking_uri=uri,
        stitched_predictions=userdir / "stitched.parquet",
    )
    assert stitched.reference_pairs("ETH/USDT") == ()  # the model itself reads BTC/USDT
    assert stitched.bundle is None  # and was not loaded to learn it
    done = cli("backtest", spec_path, "--walk-forward", "--userdir", userdir)
    assert done.code == 0, done.err
