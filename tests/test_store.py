"""The DuckDB store: schema from sql/, idempotent transactional loads, the bundled sample."""

from __future__ import annotations

import datetime as dt

import duckdb
import pytest

from pipeline.markets import SAMPLE_MARKET
from pipeline.store import sample
from pipeline.store.db import Store


def candles(n=3, low=100.0):
    t0 = dt.datetime(2026, 1, 1)
    return {
        "exchange": ["okx"] * n,
        "instrument": ["BTC-USDT-SWAP"] * n,
        "interval_s": [300] * n,
        "ts": [t0 + dt.timedelta(minutes=5 * i) for i in range(n)],
        "open": [101.0] * n,
        "high": [102.0] * n,
        "low": [low] * n,
        "close": [101.5] * n,
        "volume": [1.0] * n,
        "taker_buy_volume": [None] * n,
        "quote": ["USDT"] * n,
    }


def test_load_twice_changes_nothing(tmp_path):
    with Store(tmp_path / "s.duckdb") as s:
        first = s.upsert("raw_candles", candles())
        second = s.upsert("raw_candles", candles())
        assert (first.inserted, first.changed) == (3, 0)
        assert (second.inserted, second.changed) == (0, 3)
        assert s.count("raw_candles") == 3


def test_bad_batch_rolls_back_whole(tmp_path):
    with Store(tmp_path / "s.duckdb") as s:
        s.upsert("raw_candles", candles(2))
        bad = candles(4)
        bad["low"][3] = -1.0  # violates CHECK (low > 0)
        with pytest.raises(duckdb.ConstraintException):
            s.upsert("raw_candles", bad)
        assert s.count("raw_candles") == 2
        assert s.arrays("market_candles", exchange="okx", instrument="BTC-USDT-SWAP", since_ms=0)["low"].tolist() == [100.0, 100.0]


def test_unknown_table_and_query_rejected(tmp_path):
    with Store(tmp_path / "s.duckdb") as s:
        with pytest.raises(KeyError):
            s.upsert("raw_candles; DROP TABLE raw_candles", candles())
        with pytest.raises(KeyError):
            s.query("../schema/01_raw_candles")


def test_parameters_are_not_sql(tmp_path):
    with Store(tmp_path / "s.duckdb") as s:
        s.upsert("raw_candles", candles())
        out = s.arrays("market_candles", exchange="okx' OR '1'='1", instrument="x", since_ms=0)
        assert len(out["time_ms"]) == 0 and s.count("raw_candles") == 3


def test_sample_loads_once_and_converts_jpy(tmp_path):
    with Store(tmp_path / "s.duckdb") as s:
        assert s.is_empty()
        assert sample.load_if_empty(s) is True
        assert sample.load_if_empty(s) is False
        counts = {r["table_name"]: r["n"] for r in s.query("table_counts").to_pylist()}
        assert counts["raw_candles"] == 2931 and counts["raw_open_interest"] == 4310
        sample.load(s)  # an explicit reload is idempotent too
        assert s.count("raw_candles") == 2931
        ex, inst = SAMPLE_MARKET.candles
        c = s.arrays("market_candles", exchange=ex, instrument=inst, since_ms=0)
        # First row of the CSV: close 12733430 JPY at 156.46 JPY per USD.
        assert c["close"][0] == pytest.approx(12733430.0 / 156.46)
        assert c["quote"][0] == "JPY"
        assert (c["time_ms"][1:] > c["time_ms"][:-1]).all()


def test_store_reopens_read_only(tmp_path):
    path = tmp_path / "s.duckdb"
    with Store(path) as s:
        s.upsert("raw_candles", candles())
    with Store(path, read_only=True) as s:
        assert s.count("raw_candles") == 3
