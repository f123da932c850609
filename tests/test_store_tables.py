"""One table list (pipeline/store/tables.py) and DuckDB's catalogue give every table's key, columns and Arrow schema;
the statements every table shares are templates; restore loads each table in one statement, idempotently."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pyarrow as pa
import pytest

from pipeline import paths
from pipeline.collect.exchanges import base
from pipeline.store import history, tables
from pipeline.store.db import DERIVED, TABLES, Store


def test_keys_columns_and_collector_schemas_come_from_the_schema(tmp_path: Path):
    with Store(tmp_path / "s.duckdb") as s:
        for t in TABLES + DERIVED:
            assert tables.key(t) == tuple(s._key_columns(t)), t
            got = s.con.sql(f"SELECT * FROM {tables.ident(t)} LIMIT 0").to_arrow_table().schema
            assert tables.arrow_schema(t) == got and tables.columns(t) == tuple(got.names)
        for t, schema in base.SCHEMAS.items():
            assert schema == tables.arrow_schema(t)
            # The collector's row key is the primary key within one market.
            assert ("exchange", "instrument", *base.KEYS[t]) == tables.key(t)
            assert s.upsert(t, pa.Table.from_pylist([], schema=schema)).received == 0
    assert history.KEYS == {t: tables.key(t) for t in TABLES}
    # No per-table copies of shared statements are left to drift apart.
    assert not (paths.SQL_DIR / "load").exists() and not (paths.SQL_DIR / "history").exists()


def test_templates_accept_only_catalogue_names():
    assert tables.statement("upsert", "raw_candles").strip().endswith(
        'INSERT OR REPLACE INTO "raw_candles" BY NAME SELECT * FROM staging;')
    assert 'ORDER BY "exchange", "instrument", "interval_s", "ts"' in tables.statement("rows_in_key_order", "raw_candles")
    for bad in ("raw_candles; DROP TABLE raw_candles", "Raw_Candles", "nope"):
        with pytest.raises(KeyError):
            tables.statement("upsert", bad)
    with pytest.raises(ValueError):
        tables.statement("new_rows", "raw_candles", hist_columns='"ts"; DROP TABLE x')
    with pytest.raises(KeyError):
        tables.statement("../schema/01_raw_candles", "raw_candles")
    with pytest.raises(ValueError):
        tables.ident('x"; --')


def _candles(n: int, close: float, start: dt.datetime) -> dict:
    ts = [start + dt.timedelta(minutes=5 * i) for i in range(n)]
    return {"exchange": ["okx"] * n, "instrument": ["BTC-USDT-SWAP"] * n, "interval_s": [300] * n, "ts": ts,
            "open": [close] * n, "high": [close + 1] * n, "low": [close - 1] * n, "close": [close] * n,
            "volume": [1.0] * n, "taker_buy_volume": [None] * n, "quote": ["USDT"] * n}


def test_restore_is_one_statement_per_table_and_idempotent(tmp_path: Path):
    hist = tmp_path / "history"
    start = dt.datetime(2026, 9, 20)
    with Store(tmp_path / "a.duckdb") as a:
        a.upsert("raw_candles", _candles(300, 100.0, start))
        history.export(a, hist, now=dt.datetime(2026, 9, 21, 2, tzinfo=dt.UTC))
        # A later run revises the first 10 candles: two files hold those keys, the later one wins.
        a.upsert("raw_candles", _candles(10, 105.0, start))
        history.export(a, hist, now=dt.datetime(2026, 9, 21, 4, tzinfo=dt.UTC))
        want = a.con.sql(tables.statement("rows_in_key_order", "raw_candles")).to_arrow_table()
    assert len(list(hist.rglob("*.parquet"))) == 2
    with Store(tmp_path / "b.duckdb") as b:
        rep = history.restore(b, hist)
        assert rep.rows["raw_candles"] == 310 and rep.inserted["raw_candles"] == 300
        assert b.con.sql(tables.statement("rows_in_key_order", "raw_candles")).to_arrow_table().equals(want)
        again = history.restore(b, hist)  # a filled store: nothing new, nothing changed
        assert again.inserted["raw_candles"] == 0
        assert b.con.sql(tables.statement("rows_in_key_order", "raw_candles")).to_arrow_table().equals(want)
        # A store value the history disagrees with is replaced by the history's (as the upsert did).
        b.upsert("raw_candles", _candles(1, 999.0, start))
        history.restore(b, hist)
        assert b.con.sql(tables.statement("rows_in_key_order", "raw_candles")).to_arrow_table().equals(want)
