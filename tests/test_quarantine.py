"""Plausibility quarantine (sql/quality/quarantine.sql): spikes are kept, counted and left out of the model."""

from __future__ import annotations

import datetime as dt
import math

import pytest
from replay.harness import REGISTRY_YAML as REG_YAML
from replay.harness import registry_for_tests

from pipeline import registry
from pipeline.collect.live import refresh_quarantine
from pipeline.store import sample
from pipeline.store.db import Store

T0 = dt.datetime(2026, 11, 16)
N = 60
REG = registry_for_tests()


def _ts(i: int) -> dt.datetime:
    return T0 + dt.timedelta(minutes=5 * i)


def candles(exchange, instrument, quote="USDT", *, scale=None, wick=None):
    """A gently moving 5-minute series; ``scale`` {i: factor} multiplies a whole candle, ``wick`` {i: low factor}."""
    rows = {k: [] for k in ("exchange", "instrument", "interval_s", "ts", "open", "high", "low", "close", "volume",
                            "taker_buy_volume", "quote")}
    for i in range(N):
        p = 95_000 * (1 + 0.003 * math.sin(i / 3))
        f = (scale or {}).get(i, 1.0)
        o, c = p * f, p * 1.001 * f
        h, lo = max(o, c) * 1.0008, min(o, c) * 0.9992 * (wick or {}).get(i, 1.0)
        for k, v in zip(rows, (exchange, instrument, 300, _ts(i), o, h, lo, c, 10.0, None, quote)):
            rows[k].append(v)
    return rows


def open_interest(exchange, instrument, *, scale=None, base=True):
    vals = [82_000 * (1 + 0.002 * math.cos(i / 4)) * (scale or {}).get(i, 1.0) for i in range(N)]
    return {"exchange": [exchange] * N, "instrument": [instrument] * N, "ts": [_ts(i) for i in range(N)],
            "oi_base": vals if base else [None] * N, "oi_usd": [None] * N if base else [v * 95_000 for v in vals]}


@pytest.fixture
def store(tmp_path):
    s = Store(tmp_path / "q.duckdb")
    yield s
    s.close()


def quarantined(store):
    return store.con.execute("SELECT exchange, dataset, ts, reason FROM raw_quarantine ORDER BY ALL").fetchall()


def test_the_bundled_real_sample_is_left_alone(store):
    sample.load(store)
    assert store.count("raw_candles") > 2000 and store.count("raw_open_interest") > 500
    assert refresh_quarantine(store, registry.load()) == 0
    # Also with the thresholds halfway to 1: the sample's largest departures are far below the defaults.
    assert refresh_quarantine(store, registry.parse(
        registry.paths.ASSETS_YAML.read_text() + "\nquality: {oi_spike_factor: 1.2, candle_spike_factor: 1.05}\n")) == 0


@pytest.mark.parametrize("factor", [10.0, 0.1])
def test_a_single_10x_candle_is_quarantined_and_left_out_of_the_model(store, factor):
    store.upsert("raw_candles", candles("binance", "BTCUSDT", scale={30: factor}))
    store.upsert("raw_candles", candles("okx", "BTC-USDT-SWAP"))
    assert refresh_quarantine(store, REG) == 1
    [(ex, ds, ts, reason)] = quarantined(store)
    assert (ex, ds, ts) == ("binance", "candles", _ts(30))
    assert "beyond its neighbours and 1 other venue(s) at that time" in reason
    arr = store.arrays("market_candles", exchange="binance", instrument="BTCUSDT", since_ms=0)
    assert len(arr["time_ms"]) == N - 1 and arr["high"].max() < 100_000 and arr["low"].min() > 90_000
    assert store.count("raw_candles") == 2 * N  # kept, not deleted
    [st] = [r for r in _status(store) if r["exchange"] == "binance"]
    assert st["quarantined"] == 1


def test_a_bad_wick_on_one_venue_is_quarantined_but_a_market_wide_crash_is_not(store):
    store.upsert("raw_candles", candles("binance", "BTCUSDT", wick={20: 0.3, 40: 0.3}))
    store.upsert("raw_candles", candles("okx", "BTC-USDT-SWAP", wick={40: 0.35}))
    store.upsert("raw_candles", candles("bybit", "BTCUSDT", wick={40: 0.32}))
    refresh_quarantine(store, REG)
    assert [(q[0], q[2]) for q in quarantined(store)] == [("binance", _ts(20))]
    # A lone venue with no peers for that asset is judged on its neighbours alone.
    store.upsert("raw_candles", candles("dydx", "SOL-USD", "USD", scale={5: 10.0}))
    refresh_quarantine(store, REG)
    assert ("dydx", "candles", _ts(5)) in {q[:3] for q in quarantined(store)}
    assert "(no other venue at that time)" in [q for q in quarantined(store) if q[0] == "dydx"][0][3]


@pytest.mark.parametrize("factor,base", [(10.0, True), (0.1, True), (0.0, True), (10.0, False), (0.1, False)])
def test_a_single_oi_print_far_from_both_neighbours_is_quarantined(store, factor, base):
    store.upsert("raw_candles", candles("bybit", "BTCUSDT"))
    store.upsert("raw_open_interest", open_interest("bybit", "BTCUSDT", scale={25: factor}, base=base))
    assert refresh_quarantine(store, REG) == 1
    [(ex, ds, ts, reason)] = quarantined(store)
    assert (ex, ds, ts) == ("bybit", "open_interest", _ts(25))
    assert reason == ("open interest of zero between non-zero prints" if factor == 0
                      else f"open interest {max(factor, 1 / factor):.1f}x away from its neighbours")
    oi = store.arrays("market_open_interest", exchange="bybit", instrument="BTCUSDT", since_ms=0)
    assert len(oi["time_ms"]) == N - 1 and 7e9 < oi["oi_usd"].min() and oi["oi_usd"].max() < 8.2e9


def test_a_level_shift_and_an_end_print(store):
    # OI that steps to 10x and stays there is a change of level, not a spike: nothing quarantined.
    store.upsert("raw_open_interest", open_interest("okx", "BTC-USDT-SWAP", scale={i: 10.0 for i in range(30, N)}))
    assert refresh_quarantine(store, REG) == 0
    # The newest print has one neighbour: 10x away from it is held until the next print confirms it.
    store.upsert("raw_open_interest", open_interest("binance", "BTCUSDT", scale={N - 1: 10.0}))
    assert refresh_quarantine(store, REG) == 1
    store.upsert("raw_open_interest", {"exchange": ["binance"], "instrument": ["BTCUSDT"], "ts": [_ts(N)],
                                       "oi_base": [820_000.0], "oi_usd": [None]})
    assert refresh_quarantine(store, REG) == 0


def test_thresholds_come_from_the_registry(store):
    store.upsert("raw_open_interest", open_interest("okx", "BTC-USDT-SWAP", scale={25: 2.5}))
    assert refresh_quarantine(store, REG) == 0  # default 3x
    strict = registry.parse(REG_YAML + "\nquality: {oi_spike_factor: 2}\n")
    assert refresh_quarantine(store, strict) == 1
    assert refresh_quarantine(store, REG) == 0  # recomputed, not accumulated


def _status(store):
    store.upsert("raw_source_runs", {
        "run_id": ["r"] * 2, "asset": ["btc"] * 2, "exchange": ["binance", "okx"],
        "instrument": ["BTCUSDT", "BTC-USDT-SWAP"], "dataset": ["candles"] * 2, "started_at": [T0] * 2,
        "finished_at": [T0] * 2, "status": ["ok"] * 2, "requests": [1] * 2, "rows_received": [N] * 2,
        "rows_stored": [N] * 2, "rows_rejected": [0] * 2, "message": [None] * 2})
    return store.query("source_status").to_pylist()

