"""Storage for a year of 2-hourly runs, 20 assets x 5 exchanges (issue 12 targets: tip <= 1 GB, repository <= 1.5 GB,
<= 20,000 files, restore <= 60 s).

A full year of runs is too slow on a 2-core machine, so sizes are measured on a shorter stretch and
extrapolated, and it says so: it writes ``--days`` days of synthetic 5-minute candles and open interest for
100 markets through the real export (2-hourly run files) and compaction (month files), measures the bytes per
market-day of the compacted history and of one run's files, and the bytes and files of one snapshot as the
build writes it; then scales each to 365 days. Repository = tip + the run files and day files written between
two squashes (the policy: every 30 days), as git stores each blob once.

Restore is measured, not extrapolated: a year of compacted month files for the same 100 markets (21 million
rows of candles and open interest; what the tip holds after a year) is written and restored into an empty store.

    .venv/bin/python bench/bench_storage.py --days 3
"""

from __future__ import annotations

import argparse
import datetime as dt
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

from pipeline.collect.exchanges.base import SCHEMAS
from pipeline.snapshots import files as snapshot
from pipeline.store import compaction, history
from pipeline.store.db import Store

ASSETS, EXCHANGES, SQUASH_DAYS, RUNS_PER_DAY = 20, 5, 30, 12


def _market_rows(rng, ex: str, inst: str, t0: dt.datetime, n: int, price: float):
    ts = [t0 + dt.timedelta(minutes=5 * i) for i in range(n)]
    close = price * np.exp(np.cumsum(rng.normal(0, 0.001, n)))
    close = np.round(close, 1)  # prices on a tick, like an exchange's
    hi, lo = np.round(close * (1 + rng.uniform(0, .002, n)), 1), np.round(close * (1 - rng.uniform(0, .002, n)), 1)
    vol = np.round(rng.gamma(2, 50, n), 3)
    candles = {"exchange": [ex] * n, "instrument": [inst] * n, "interval_s": [300] * n, "ts": ts, "open": close,
               "high": hi, "low": lo, "close": close, "volume": vol, "taker_buy_volume": np.round(vol * .5, 3),
               "quote": ["USDT"] * n}
    oi = {"exchange": [ex] * n, "instrument": [inst] * n, "ts": ts,
          "oi_base": np.round(1e5 + np.cumsum(rng.normal(0, 50, n)), 3), "oi_usd": [None] * n}
    return candles, oi


def _year_of_months(hist: Path, rng, markets) -> int:
    """12 compacted month files per exchange and table, as a year's tip holds them; returns the rows."""
    rows = 0
    for month in range(1, 13):
        start = np.datetime64(f"2025-{month:02d}-01T00:00", "us")
        end = np.datetime64(f"2025-{month + 1:02d}-01T00:00" if month < 12 else "2026-01-01T00:00", "us")
        ts = np.arange(start, end, np.timedelta64(5, "m"))
        n = ts.size
        for ex in sorted({m[0] for m in markets}):
            parts: dict[str, list[pa.Table]] = {"raw_candles": [], "raw_open_interest": []}
            for i, (_, inst) in enumerate(m for m in markets if m[0] == ex):
                c, o = _market_rows(rng, ex, inst, dt.datetime(2025, month, 1), n, 100.0 + i)
                parts["raw_candles"].append(pa.table({**c, "ts": ts}, schema=SCHEMAS["raw_candles"]))
                parts["raw_open_interest"].append(pa.table({**o, "ts": ts}, schema=SCHEMAS["raw_open_interest"]))
            for table, tbls in parts.items():
                path = history.month_path(hist, table, ex, f"2025-{month:02d}")
                history._atomic_write(path, history.parquet_bytes(history._sorted(table, pa.concat_tables(tbls))))
                rows += sum(t.num_rows for t in tbls)
    return rows


def _snapshot(work: Path, rng) -> Path:
    """One snapshot as the build writes it: 3 windows x 10 key levels a side, the recomputed tables' statistics."""
    n = 60
    levels = pa.table({"timeframe": [["12h", "24h", "3d"][i // 20] for i in range(n)], "partial": [False] * n,
                       "side": ["long", "short"] * 30, "price_low": rng.uniform(9e4, 1e5, n),
                       "price_high": rng.uniform(9e4, 1e5, n), "notional_usd": rng.uniform(1e6, 1e8, n),
                       "distance_pct": rng.uniform(-5, 5, n), "rank": [i % 10 + 1 for i in range(n)],
                       "confluence": [float(i % 3) for i in range(n)]})
    book = pa.table({"price": rng.uniform(9e4, 1e5, 400), "side": [1, -1] * 200,
                     "leverage": [10.0] * 400, "notional_usd": rng.uniform(1e4, 1e6, 400)})
    return snapshot.write_snapshot(work / "snapshots", "btc", dt.datetime(2026, 3, 1, tzinfo=dt.UTC),
                                   {"levels": levels, "book": book},
                                   {"price": 95_000.0, "model": {"leverage": [5, 10, 25, 50, 100]},
                                    "watermarks": {f"ex{e}:A00USDT": {"first_ms": 0, "candles_ms": 1, "oi_ms": 1}
                                                   for e in range(EXCHANGES)}})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--days", type=int, default=7)
    args = ap.parse_args()
    rng = np.random.default_rng(1)
    work = Path(tempfile.mkdtemp(prefix="bench-storage-"))
    hist = work / "history"
    start = dt.datetime(2026, 3, 1)
    markets = [(f"ex{e}", f"A{a:02d}USDT") for e in range(EXCHANGES) for a in range(ASSETS)]
    run_bytes = []
    with Store(work / "live.duckdb") as store:
        for run in range(args.days * RUNS_PER_DAY):
            t0 = start + dt.timedelta(hours=2 * run)
            for i, (ex, inst) in enumerate(markets):
                c, o = _market_rows(rng, ex, inst, t0, 24, 100.0 + i)
                store.upsert("raw_candles", c)
                store.upsert("raw_open_interest", o)
            now = (t0 + dt.timedelta(hours=2, minutes=5)).replace(tzinfo=dt.UTC)
            rep = history.export(store, hist, now=now)
            compaction.compact(hist, now=now)
            run_bytes.append(sum(p.stat().st_size for p in rep.changed if "run=" in p.parent.name))
        rows = store.count("raw_candles") + store.count("raw_open_interest")
    compaction.compact(hist, now=dt.datetime(2026, 4, 1, 1, tzinfo=dt.UTC))  # the month closes: month files
    tip_hist = sum(p.stat().st_size for p in hist.rglob("*.parquet"))
    files_hist = len(list(hist.rglob("*.parquet")))

    year = work / "year"
    year_rows = _year_of_months(year, rng, markets)
    year_bytes = sum(p.stat().st_size for p in year.rglob("*.parquet"))
    tick = time.perf_counter()
    with Store(work / "restored.duckdb") as s:
        rep = history.restore(s, year)
    restore_s = time.perf_counter() - tick
    assert sum(rep.inserted.values()) == year_rows, rep.inserted

    folder = _snapshot(work, rng)
    snap_bytes = sum(p.stat().st_size for p in folder.iterdir())
    snap_files = len(list(folder.iterdir()))
    snaps = ASSETS * (365 + 7 * (RUNS_PER_DAY - 1))  # after thinning: one a day, all of the last week

    scale = 365 / args.days
    tip = tip_hist * scale + snaps * snap_bytes
    # Month files per exchange and table, plus at most a month of day files and a day of run files.
    files = EXCHANGES * 2 * 12 + 31 * 2 + RUNS_PER_DAY * 2
    files += snaps * snap_files
    per_run = float(np.median(run_bytes)) + ASSETS * snap_bytes
    repo = tip + SQUASH_DAYS * RUNS_PER_DAY * per_run + SQUASH_DAYS / 30 * tip_hist * scale / 12
    print(f"measured: {args.days} days x {len(markets)} markets, {rows:,} rows; compacted history {tip_hist / 1e6:.1f} MB "
          f"in {files_hist} files; one run's files "
          f"{np.median(run_bytes) / 1e3:.0f} KB; one snapshot {snap_bytes / 1e3:.1f} KB in {snap_files} files")
    print(f"extrapolated to a year (x{scale:.1f}, linear), {ASSETS} assets:")
    print(f"  tip        {tip / 1e9:.2f} GB  (target <= 1 GB)")
    print(f"  repository {repo / 1e9:.2f} GB  (tip + {SQUASH_DAYS} days of runs between squashes; target <= 1.5 GB)")
    print(f"  files      {int(files):,}  (history ~{EXCHANGES * 2 * 12 + 86}, snapshots {snaps:,} x {snap_files}; "
          f"target <= 20,000)")
    print(f"  restore    {restore_s:.0f} s  (measured: a year of month files, {year_rows:,} rows, "
          f"{year_bytes / 1e6:.0f} MB, into an empty store; target <= 60 s)")
    print(f"  per run    {per_run / 1e3:.0f} KB for {ASSETS} assets, {per_run / 1e3 * 4 / ASSETS:.0f} KB for 4")
    shutil.rmtree(work)


if __name__ == "__main__":
    main()
