"""A replay's trades against a backtest's: what counts as an unexplained difference."""

from __future__ import annotations

import pandas as pd

from strategies.replay_comparison import compare_trades

END = pd.Timestamp("2021-03-15", tz="UTC")


def _trades(*rows: tuple[str, str, str | None]) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "pair": "BTC/USDT",
                "open_date": pd.Timestamp(opened, tz="UTC"),
                "close_date": pd.Timestamp(closed, tz="UTC") if closed else pd.NaT,
                "open_rate": 100.0,
                "close_rate": 101.0,
                "exit_reason": reason,
            }
            for opened, closed, reason in rows
        ]
    )


def test_an_entry_in_the_last_candle_of_the_range_is_a_boundary_not_a_difference() -> None:
    """Before: the replay's entry on the range's last candle, which the backtest could not
    fill, was reported as unexplained."""
    backtest = _trades(("2021-03-10 05:00", "2021-03-11 05:00", "exit_signal"))
    replay = _trades(
        ("2021-03-10 05:00", "2021-03-11 05:00", "exit_signal"),
        ("2021-03-14 23:00", None, None),  # the last candle of 20210301-20210315
    )
    compared = compare_trades(replay, backtest, "1h", END.to_pydatetime())
    assert len(compared.matched) == 1 and len(compared.replay_only) == 1
    assert compared.unexplained.empty


def test_a_trade_only_one_run_has_inside_the_range_is_unexplained() -> None:
    backtest = _trades(("2021-03-10 05:00", "2021-03-11 05:00", "exit_signal"))
    replay = _trades(
        ("2021-03-10 05:00", "2021-03-11 05:00", "exit_signal"),
        ("2021-03-12 07:00", "2021-03-12 09:00", "exit_signal"),
    )
    compared = compare_trades(replay, backtest, "1h", END.to_pydatetime())
    assert len(compared.unexplained) == 1
