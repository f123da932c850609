"""Storage rules of the history (issue 12): append-only runs, compaction into day and month files that loses
nothing (row hashes equal before and after), restore after compaction equal to restore before, revised values
kept with the newest winning, and old one-file-per-market-and-day branches folded in."""

from __future__ import annotations

import datetime as dt
import hashlib
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.store import compaction, history, tables
from pipeline.store.db import TABLES, Store

START = dt.datetime(2026, 8, 30, 0, 0)  # runs cross a month end: day files, then month files


def _candles(ex: str, inst: str, t0: dt.datetime, n: int, bump: float = 0.0) -> dict:
    ts = [t0 + dt.timedelta(minutes=5 * i) for i in range(n)]
    return {"exchange": [ex] * n, "instrument": [inst] * n, "interval_s": [300] * n, "ts": ts,
            "open": [100.0 + i % 13 + bump for i in range(n)], "high": [103.0 + i % 13 + bump for i in range(n)],
            "low": [99.0 + i % 13 + bump for i in range(n)], "close": [101.5 + i % 13 + bump for i in range(n)],
            "volume": [None if i % 5 == 0 else 0.1 * i for i in range(n)], "taker_buy_volume": [None] * n,
            "quote": ["USDT"] * n}


def _oi(ex: str, inst: str, t0: dt.datetime, n: int) -> dict:
    return {"exchange": [ex] * n, "instrument": [inst] * n, "ts": [t0 + dt.timedelta(minutes=5 * i) for i in range(n)],
            "oi_base": [1000.0 + i for i in range(n)], "oi_usd": [None] * n}


def _row_hashes(store: Store) -> dict[str, list[str]]:
    """sha256 of every row of every table, sorted: equal lists = the same rows, nothing lost or added."""
    out = {}
    for t in TABLES:
        tbl = store.con.sql(tables.statement("rows_in_key_order", t)).to_arrow_table()
        out[t] = sorted(hashlib.sha256(repr(tuple(r.values())).encode()).hexdigest() for r in tbl.to_pylist())
    return out


def _restore(src: Path, db: Path) -> dict[str, list[str]]:
    with Store(db) as s:
        history.restore(s, src)
        return _row_hashes(s)


def _simulate(tmp_path: Path, runs: int = 30) -> tuple[Store, Path, dt.datetime]:
    """``runs`` 2-hourly runs: each collects 2 h of two markets, re-states one earlier candle with a revised value,
    and exports without compacting (the state before compaction)."""
    store = Store(tmp_path / "live.duckdb")
    dest = tmp_path / "history"
    now = START
    for i in range(runs):
        t0 = START + dt.timedelta(hours=2 * i)
        for ex, inst in (("okx", "BTC-USDT-SWAP"), ("bybit", "BTCUSDT")):
            store.upsert("raw_candles", _candles(ex, inst, t0, 24))
            store.upsert("raw_open_interest", _oi(ex, inst, t0, 24))
        if i:  # an exchange revised the previous run's last candle: the newest value must win everywhere
            store.upsert("raw_candles", _candles("okx", "BTC-USDT-SWAP", t0 - dt.timedelta(minutes=5), 1, bump=0.5))
        now = t0 + dt.timedelta(hours=2, minutes=3)
        history.export(store, dest, now=now.replace(tzinfo=dt.UTC))
    return store, dest, now


def test_compaction_loses_nothing_and_restore_after_equals_restore_before(tmp_path: Path):
    store, dest, now = _simulate(tmp_path)
    runs_before = sorted(dest.rglob("part.parquet"))
    assert all(p.parent.name.startswith("run=") for p in runs_before if "raw_fx" not in str(p))
    before = _restore(dest, tmp_path / "before.duckdb")
    assert before == _row_hashes(store)  # the append-only runs already hold exactly the store

    # Two days later: everything but today's runs is folded; a month later: everything into months.
    rep = compaction.compact(dest, now=(now + dt.timedelta(days=2)).replace(tzinfo=dt.UTC))
    assert rep.removed and not rep.quarantined
    mid = sorted(str(p.relative_to(dest)) for p in dest.rglob("part.parquet"))
    assert "raw_candles/exchange=okx/month=2026-08/part.parquet" in mid
    assert "raw_candles/date=2026-09-01/part.parquet" in mid and not any("run=" in p for p in mid)
    assert _restore(dest, tmp_path / "mid.duckdb") == before

    compaction.compact(dest, now=dt.datetime(2026, 10, 1, 0, 5, tzinfo=dt.UTC))
    after = sorted(str(p.relative_to(dest)) for p in dest.rglob("part.parquet"))
    assert after == ["raw_candles/exchange=bybit/month=2026-08/part.parquet",
                     "raw_candles/exchange=bybit/month=2026-09/part.parquet",
                     "raw_candles/exchange=okx/month=2026-08/part.parquet",
                     "raw_candles/exchange=okx/month=2026-09/part.parquet",
                     "raw_open_interest/exchange=bybit/month=2026-08/part.parquet",
                     "raw_open_interest/exchange=bybit/month=2026-09/part.parquet",
                     "raw_open_interest/exchange=okx/month=2026-08/part.parquet",
                     "raw_open_interest/exchange=okx/month=2026-09/part.parquet"]
    assert len(after) < len(runs_before) / 5
    assert _restore(dest, tmp_path / "after.duckdb") == before  # row hashes equal: nothing lost, nothing added
    # The month files hold each key once (the revised value), in key order: fewer, better-compressed files.
    month = pq.read_table(dest / "raw_candles/exchange=okx/month=2026-08/part.parquet")
    assert month.num_rows == len(set(month.column("ts").to_pylist()))
    assert month.column("ts").to_pylist() == sorted(month.column("ts").to_pylist())
    # A second compaction changes nothing; an export of the same store writes nothing.
    assert compaction.compact(dest, now=dt.datetime(2026, 10, 1, 0, 5, tzinfo=dt.UTC)).written == []
    assert history.export(store, dest, now=dt.datetime(2026, 10, 1, 1, tzinfo=dt.UTC)).changed == []
    assert compaction.compact(dest, now=dt.datetime(2026, 10, 1, 1, tzinfo=dt.UTC)).written == []
    store.close()


def test_a_run_that_is_interrupted_mid_compaction_loses_nothing(tmp_path: Path, monkeypatch):
    store, dest, now = _simulate(tmp_path, runs=14)
    before = _restore(dest, tmp_path / "before.duckdb")
    calls = []
    real_unlink = Path.unlink

    def crash_on_second_delete(self, *a, **k):
        calls.append(self)
        if len(calls) == 2:
            raise OSError("runner died")
        return real_unlink(self, *a, **k)

    monkeypatch.setattr(Path, "unlink", crash_on_second_delete)
    try:
        compaction.compact(dest, now=(now + dt.timedelta(days=40)).replace(tzinfo=dt.UTC))
    except OSError:
        pass
    monkeypatch.setattr(Path, "unlink", real_unlink)
    # Targets were written before any source was removed: the half-compacted history restores the same rows.
    assert _restore(dest, tmp_path / "half.duckdb") == before
    compaction.compact(dest, now=(now + dt.timedelta(days=40)).replace(tzinfo=dt.UTC))
    assert _restore(dest, tmp_path / "done.duckdb") == before
    store.close()


def test_old_one_file_per_market_and_day_history_is_read_and_folded(tmp_path: Path):
    """Data branches written before the tiers: exchange=/instrument=/date= files restore and compact."""
    dest = tmp_path / "history"
    with Store(tmp_path / "old.duckdb") as old:
        old.upsert("raw_candles", _candles("okx", "BTC-USDT-SWAP", START, 600))
        tbl = old.con.sql(tables.statement("rows_in_key_order", "raw_candles")).to_arrow_table()
        tbl = tbl.append_column("_date", pa.compute.strftime(tbl.column("ts"), format="%Y-%m-%d"))
        for day in sorted(set(tbl.column("_date").to_pylist())):
            part = tbl.filter(pa.compute.equal(tbl.column("_date"), day)).drop_columns(["_date"])
            path = history.partition_path(dest, "raw_candles", "okx", "BTC-USDT-SWAP", day)
            path.parent.mkdir(parents=True)
            pq.write_table(part, path)
        expected = _row_hashes(old)
    assert _restore(dest, tmp_path / "a.duckdb") == expected
    compaction.compact(dest, now=dt.datetime(2026, 9, 2, 1, tzinfo=dt.UTC))
    names = sorted(str(p.relative_to(dest)) for p in dest.rglob("part.parquet"))
    assert names == ["raw_candles/date=2026-09-01/part.parquet", "raw_candles/exchange=okx/month=2026-08/part.parquet"]
    assert _restore(dest, tmp_path / "b.duckdb") == expected
