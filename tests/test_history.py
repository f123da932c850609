"""History files: export -> restore is lossless, export is append-only (nothing new: nothing written), names are
validated. Compaction and the storage rules have their own file (tests/test_history_compaction.py)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipeline import cli
from pipeline.store import compaction, history, tables
from pipeline.store.db import TABLES, Store

T0 = dt.datetime(2026, 9, 21, 23, 58)  # rows straddle midnight: two day partitions
NOW = dt.datetime(2026, 9, 22, 1, 0, tzinfo=dt.UTC)  # the export's clock: the same day, nothing to compact yet


def _ts(minutes: int) -> dt.datetime:
    return T0 + dt.timedelta(minutes=minutes)


def _fill(store: Store) -> None:
    """Rows in every raw table, several partitions, NULLs wherever the schema allows them."""
    n = 5
    # Not the bundled sample's series (FX_BTC_JPY), which export leaves out on purpose.
    for ex, inst, quote in (("okx", "BTC-USDT-SWAP", "USDT"), ("bitflyer", "FX_ETH_JPY", "JPY")):
        store.upsert("raw_candles", {
            "exchange": [ex] * n, "instrument": [inst] * n, "interval_s": [60] * n,
            "ts": [_ts(i) for i in range(n)],
            "open": [100.0 + i for i in range(n)], "high": [101.5 + i for i in range(n)],
            "low": [99.25 + i for i in range(n)], "close": [100.125 + i for i in range(n)],
            "volume": [1.0, None, 3.0, 0.1 + 0.2, 5.0],  # 0.30000000000000004 must survive exactly
            "taker_buy_volume": [None, 0.5, None, None, 1e-12],
            "quote": [quote] * n,
        })
        store.upsert("raw_open_interest", {
            "exchange": [ex] * 3, "instrument": [inst] * 3, "ts": [_ts(0), _ts(1), _ts(3)],
            "oi_base": [None, 12.5, 13.0], "oi_usd": [1.5e9, None, 1.6e9],
        })
    store.upsert("raw_funding", {
        "exchange": ["okx"] * 2, "instrument": ["BTC-USDT-SWAP"] * 2, "ts": [_ts(-60), _ts(420)], "rate": [0.0001, -2.5e-5],
    })
    store.upsert("raw_liquidations", {
        "exchange": ["okx"] * 3, "instrument": ["BTC-USDT-SWAP"] * 3, "ts": [_ts(1), _ts(1), _ts(2)],
        "side": ["long", "short", "long"], "price": [100.0, 100.0, 99.5], "size_base": [0.5, 0.5, 2.0],
        "notional_usd": [50.0, 50.0, 199.0],
    })
    store.upsert("raw_source_runs", {
        "run_id": ["r1", "r1"], "asset": ["btc", "btc"], "exchange": ["okx", "okx"],
        "instrument": ["BTC-USDT-SWAP"] * 2, "dataset": ["candles", "liquidations"],
        "started_at": [_ts(0), _ts(0)], "finished_at": [_ts(1), _ts(1)], "status": ["ok", "error"],
        "requests": [3, 1], "rows_received": [5, 0], "rows_stored": [5, 0], "rows_rejected": [0, 0],
        "message": [None, "HTTP 451: unavailable in this region"],
    })
    store.upsert("raw_fx_rates", {"quote": ["JPY"], "usd_per_unit": [1 / 156.46], "source": ["test"]})


def _dump(store: Store) -> dict[str, pa.Table]:
    out = {}
    for t in TABLES:
        tbl = store.con.sql(tables.statement("rows_in_key_order", t)).to_arrow_table()
        out[t] = tbl
    return out


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture
def filled(tmp_path: Path) -> Store:
    s = Store(tmp_path / "a.duckdb")
    _fill(s)
    yield s
    s.close()


def test_keys_match_the_schema(filled: Store):
    for t in TABLES:
        assert tuple(filled._key_columns(t)) == history.KEYS[t]


def test_round_trip_is_lossless(filled: Store, tmp_path: Path):
    dest = tmp_path / "history"
    rep = history.export(filled, dest, now=NOW)
    assert not rep.errors and rep.unchanged == 0
    stamp = NOW.strftime(history.RUN_STAMP)
    for t in history.PARTITIONED:  # one new file per table, all markets in it
        assert (dest / t / f"run={stamp}" / "part.parquet").is_file()
    assert (dest / "raw_fx_rates/part.parquet").is_file()
    assert len(rep.changed) == len(list(dest.rglob("part.parquet"))) == 6

    with Store(tmp_path / "b.duckdb") as fresh:
        r1 = history.restore(fresh, dest)
        assert r1.rows == {t: filled.count(t) for t in TABLES}
        before, after = _dump(filled), _dump(fresh)
        for t in TABLES:
            assert after[t].equals(before[t]), t
        assert after["raw_candles"].column("volume").to_pylist()[3] == 0.1 + 0.2
        assert after["raw_source_runs"].column("message").null_count == 1
        # Idempotent: a second restore adds nothing and changes nothing.
        r2 = history.restore(fresh, dest)
        assert sum(r2.inserted.values()) == 0
        for t in TABLES:
            assert _dump(fresh)[t].equals(before[t])


def test_reexport_of_unchanged_data_writes_nothing(filled: Store, tmp_path: Path):
    dest = tmp_path / "history"
    history.export(filled, dest, now=NOW)
    first = _files(dest)
    mtimes = {p: p.stat().st_mtime_ns for p in dest.rglob("part.parquet")}
    later = NOW + dt.timedelta(hours=2)
    rep = history.export(filled, dest, now=later)
    assert rep.changed == [] and rep.removed == [] and rep.unchanged == len(TABLES)
    assert _files(dest) == first
    assert {p: p.stat().st_mtime_ns for p in dest.rglob("part.parquet")} == mtimes  # not even rewritten

    # Restoring into a new store and exporting from it writes nothing either.
    with Store(tmp_path / "c.duckdb") as other:
        history.restore(other, dest)
        assert history.export(other, dest, now=later).changed == []

    # A new candle is appended as one small new file holding exactly that row; nothing else is touched.
    filled.upsert("raw_candles", {
        "exchange": ["okx"], "instrument": ["BTC-USDT-SWAP"], "interval_s": [60], "ts": [_ts(10)],
        "open": [1.0], "high": [1.0], "low": [1.0], "close": [1.0], "volume": [None], "taker_buy_volume": [None],
        "quote": ["USDT"],
    })
    rep = history.export(filled, dest, now=later)
    assert [str(p.relative_to(dest)) for p in rep.changed] == [
        f"raw_candles/run={later.strftime(history.RUN_STAMP)}/part.parquet"]
    assert pq.read_table(rep.changed[0]).column("ts").to_pylist() == [_ts(10)]
    assert {k: v for k, v in _files(dest).items() if k in first} == first


def test_export_never_drops_rows_the_store_lacks(filled: Store, tmp_path: Path):
    dest = tmp_path / "history"
    history.export(filled, dest, now=NOW)
    n_before = filled.count("raw_candles")
    # A fresh cache that only holds one newer candle (e.g. a short collection window).
    with Store(tmp_path / "d.duckdb") as partial:
        partial.upsert("raw_candles", {
            "exchange": ["okx"], "instrument": ["BTC-USDT-SWAP"], "interval_s": [60], "ts": [_ts(30)],
            "open": [1.0], "high": [2.0], "low": [0.5], "close": [1.5], "volume": [1.0], "taker_buy_volume": [None],
            "quote": ["USDT"],
        })
        rep = history.export(partial, dest, now=NOW + dt.timedelta(days=1))
    assert rep.new_rows["raw_candles"] == 1
    assert compaction.compact(dest, now=NOW + dt.timedelta(days=1)).removed  # yesterday's runs folded
    with Store(tmp_path / "e.duckdb") as again:
        history.restore(again, dest)
        assert again.count("raw_candles") == n_before + 1
        ts = again.con.execute("SELECT ts FROM raw_candles WHERE exchange = 'okx' ORDER BY ts").fetchall()
        assert [t[0] for t in ts] == [_ts(i) for i in range(5)] + [_ts(30)]


@pytest.mark.parametrize("exchange,instrument", [("../evil", "BTC"), ("okx", "../../etc"), ("okx", "a/b"),
                                                   ("OKX", "BTC"), ("okx", ".hidden")])
def test_unsafe_names_are_rejected(tmp_path: Path, exchange: str, instrument: str):
    with pytest.raises(history.HistoryError):
        history.partition_path(tmp_path, "raw_funding", exchange, instrument, "2026-09-21")
    with Store(tmp_path / "e.duckdb") as s:
        s.upsert("raw_funding", {"exchange": [exchange, "okx"], "instrument": [instrument, "BTC-USDT-SWAP"],
                                 "ts": [_ts(0), _ts(0)], "rate": [0.1, 0.2]})
        dest = tmp_path / "out" / "history"
        rep = history.export(s, dest, now=NOW)
    assert len(rep.errors) == 1 and "unsafe" in rep.errors[0] and "1 rows not exported" in rep.errors[0]
    # The safe row was exported; nothing was created anywhere else.
    [only] = tmp_path.rglob("part.parquet")
    assert only.relative_to(tmp_path) == Path(f"out/history/raw_funding/run={NOW.strftime(history.RUN_STAMP)}/part.parquet")
    assert pq.read_table(only).column("exchange").to_pylist() == ["okx"]
    # Compacted a month later, it lands in the exchange's month file, still alone.
    compaction.compact(dest, now=NOW + dt.timedelta(days=40))
    [only] = tmp_path.rglob("part.parquet")
    assert only.relative_to(dest) == Path("raw_funding/exchange=okx/month=2026-09/part.parquet")


def test_restore_rejects_misplaced_rows_and_unknown_folders(filled: Store, tmp_path: Path):
    dest = tmp_path / "history"
    history.export(filled, dest, now=NOW)
    compaction.compact(dest, now=NOW + dt.timedelta(days=40))  # into month files
    src = dest / "raw_funding/exchange=okx/month=2026-09/part.parquet"
    wrong = dest / "raw_funding/exchange=bybit/month=2026-09/part.parquet"
    wrong.parent.mkdir(parents=True)
    wrong.write_bytes(src.read_bytes())
    with Store(tmp_path / "f.duckdb") as s, pytest.raises(history.HistoryError, match="another exchange"):
        history.restore(s, dest)
    wrong.unlink()
    odd = dest / "raw_funding/exchange=okx/part.parquet"
    odd.write_bytes(src.read_bytes())
    with Store(tmp_path / "g.duckdb") as s, pytest.raises(history.HistoryError, match="unexpected"):
        history.restore(s, dest)


def test_cli_export_and_restore(filled: Store, tmp_path: Path, capsys):
    filled.close()
    data = tmp_path / "data"
    data.mkdir()
    (tmp_path / "a.duckdb").rename(data / "liqmap.duckdb")
    assert cli.main(["--data-dir", str(data), "export"]) == 0
    out = capsys.readouterr().out
    assert "changed raw_candles/run=" in out
    assert cli.main(["--data-dir", str(data), "export"]) == 0
    out = capsys.readouterr().out
    assert "0 partitions written" in out and not any(line.startswith("changed ") for line in out.splitlines())
    other = tmp_path / "other"
    assert cli.main(["--data-dir", str(other), "restore", "--from", str(data / "history")]) == 0
    assert "restored" in capsys.readouterr().out
    with Store(other / "liqmap.duckdb", read_only=True) as s:
        assert s.count("raw_candles") == 10
    # No history yet (first run of the workflow) is not an error.
    assert cli.main(["--data-dir", str(tmp_path / "empty"), "restore"]) == 0


def test_the_bundled_sample_is_not_exported(tmp_path: Path):
    from pipeline.store.sample import load_if_empty

    with Store(tmp_path / "s.duckdb") as store:
        assert load_if_empty(store)
        store.upsert("raw_funding", {"exchange": ["okx"], "instrument": ["BTC-USDT-SWAP"],
                                     "ts": [dt.datetime(2026, 9, 21, 8)], "rate": [0.0001]})
        rep = history.export(store, tmp_path / "history")
    assert rep.rows["raw_candles"] == 0 and rep.rows["raw_open_interest"] == 0 and rep.rows["raw_funding"] == 1
    assert not list((tmp_path / "history").rglob("*bitflyer*")) and not list((tmp_path / "history").rglob("*BTC-TOTAL*"))
