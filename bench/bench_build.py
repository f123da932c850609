"""Benchmark of one full site build (pipeline.build.build) on a synthetic store (a script, not a test).

Answers "how much history can one build runner handle". For each size a fresh
DuckDB store is filled through the collectors' load path (``Store.upsert`` ->
``sql/load/*.sql``, rows in the collectors' Arrow schemas) with plausible data
for every registry asset x its exchanges x D days: 5-minute candles (random
walk; volume; taker-buy volume where the exchange publishes it), 5-minute USD
open interest drifting upward (Hyperliquid: only a few recent observations, it
has no OI history), funding every 8 h (hourly on Hyperliquid and dYdX), and one
``raw_source_runs`` row per source. A non-empty store keeps build() from
loading the bundled sample.

Then ``build(data, out=site, docs=docs, strict=True)`` is timed per phase
(report.timings), with the peak RSS of the build process, the site's size and
file count and the snapshot bytes the build writes into the data dir. MkDocs
runs as a subprocess of the build, and on Linux a child's maxrss starts from the
RSS of the process it was forked from, so RUSAGE_CHILDREN cannot tell MkDocs's
own peak: after the timed build the same MkDocs command is re-run from a slim
wrapper process to measure it. Filling and every repeat run in their
own subprocesses, so a peak RSS belongs to one build of one size; each repeat
builds from a fresh copy of the filled store (a previous build's snapshots would
otherwise change the work). Times are medians over repeats, RSS the maximum.

The per-asset jobs (read, model, charts, backtest) run in a pool of worker processes
when there is more than one CPU (``steps/compute.py``; ``LIQMAP_BUILD_WORKERS=1``
runs them in the build process). Then ``model``, ``charts`` and ``backtest`` are
summed over the workers (so ``bt %`` can pass 100), ``compute`` is their wall time,
``RSS MB`` is the build process's peak and ``wrk MB`` the largest peak of one worker
(the workers run at the same time: their sum bounds the memory in use). ``cpu s`` is
the CPU time of the build, its workers and its MkDocs run (user + system): on a
machine shared with other work it moves less than wall time does.

Usage: .venv/bin/python bench/bench_build.py [--days 7,30,90] [--repeats 1] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

CANDLE_MS = 300_000
HOUR_MS = 3_600_000
PHASES = ("load", "model", "charts", "backtest", "compute", "snapshots", "pages", "mkdocs", "total")
# Rough present-day magnitudes; an asset missing here (the registry grew) gets the fallbacks.
PRICE = {"btc": 90_000.0, "eth": 3_000.0, "sol": 150.0, "xrp": 2.0}
SIGMA = {"btc": 0.0012, "eth": 0.0016, "sol": 0.0022, "xrp": 0.0022}  # sd of 5-minute log returns
OI_SCALE = {"btc": 1.0, "eth": 0.6, "sol": 0.15, "xrp": 0.12}  # an asset's OI relative to BTC's
VENUE_OI_USD = {"binance": 8e9, "bybit": 5e9, "okx": 3e9, "hyperliquid": 2.5e9, "dydx": 1.5e8}  # BTC
FUNDING_EVERY_H = {"hyperliquid": 1, "dydx": 1}  # the others: 8
CURRENT_OI_OBS = 6  # venues without OI history: one observation per 2-hourly collect run


def fill(data_dir: Path, days: int, seed: int = 0) -> dict[str, int]:
    """Create and fill the store under ``data_dir``; return rows per table."""
    import numpy as np
    import pyarrow as pa

    from pipeline import registry
    from pipeline.collect.exchanges import venues as exchange_classes
    from pipeline.collect.exchanges.base import SCHEMAS
    from pipeline.collect.report import SourceOutcome, new_run_id
    from pipeline.store.db import open_store

    rng = np.random.default_rng(seed)
    reg, venues = registry.load(), exchange_classes()
    n = days * 288
    # End at the last closed candle, as if a collect run had just finished before the build.
    end = int(time.time() * 1000) // CANDLE_MS * CANDLE_MS - CANDLE_MS
    t = end - CANDLE_MS * np.arange(n - 1, -1, -1, dtype=np.int64)

    def ts(ms) -> pa.Array:  # naive UTC microseconds, the store's convention
        return pa.array(np.asarray(ms, dtype=np.int64) * 1000, pa.timestamp("us"))

    def rows(table: str, ex: str, inst: str, **cols) -> pa.Table:
        m = len(cols["ts"])
        return pa.table({"exchange": [ex] * m, "instrument": [inst] * m, **cols}, schema=SCHEMAS[table])

    run_id = new_run_id("bench")
    with open_store(data_dir) as store:
        for asset in reg.assets:
            sigma = SIGMA.get(asset.id, 0.002)
            # One price path per asset; venues differ by a small smoothed basis (arbitrage keeps them close).
            path = PRICE.get(asset.id, 100.0) * np.exp(np.cumsum(rng.normal(0, sigma, n)))
            for ex, inst in asset.instruments.items():
                cls = venues[ex]
                c = path * (1 + np.convolve(rng.normal(0, 3e-4, n), np.ones(12) / 12, mode="same"))
                o = np.r_[c[0], c[:-1]]
                wick = np.abs(rng.normal(0, sigma / 2, (2, n)))
                h, lo = np.maximum(o, c) * (1 + wick[0]), np.minimum(o, c) * (1 - wick[1])
                oi_usd = VENUE_OI_USD.get(ex, 1e9) * OI_SCALE.get(asset.id, 0.05) * np.exp(
                    np.cumsum(rng.normal(1e-5, 0.002, n)))  # ~ +0.3 %/day, a few % daily noise
                vol = oi_usd * 0.002 / c * rng.lognormal(0, 0.5, n)  # ~half the OI traded per day, base units
                taker = vol * rng.uniform(0.4, 0.6, n) if cls.capabilities.get("taker_buy") else None
                candles = rows("raw_candles", ex, inst, interval_s=np.full(n, CANDLE_MS // 1000), ts=ts(t),
                               open=o, high=h, low=lo, close=c, volume=vol,
                               taker_buy_volume=taker if taker is not None else pa.nulls(n, pa.float64()),
                               quote=[cls.quote] * n)
                if cls.capabilities.get("oi_history"):
                    oi = rows("raw_open_interest", ex, inst, ts=ts(t), oi_base=oi_usd / c, oi_usd=oi_usd)
                else:  # current OI only: what the last few runs saw, a few seconds after each candle closed
                    idx = n - 1 - np.arange(CURRENT_OI_OBS)[::-1] * (2 * HOUR_MS // CANDLE_MS)
                    idx = idx[idx >= 0]
                    oi = rows("raw_open_interest", ex, inst, ts=ts(t[idx] + CANDLE_MS + 7_000),
                              oi_base=oi_usd[idx] / c[idx], oi_usd=oi_usd[idx])
                step = FUNDING_EVERY_H.get(ex, 8) * HOUR_MS
                ft = np.arange(-(-int(t[0]) // step) * step, end + 1, step, dtype=np.int64)
                # ~0.01 % per 8 h (about 11 % a year), scaled to the venue's interval, wandering.
                rate = 1e-4 * step / (8 * HOUR_MS) * (1 + np.cumsum(rng.normal(0, 0.15, ft.size)) / 4)
                funding = rows("raw_funding", ex, inst, ts=ts(ft), rate=rate)
                runs = []
                for dataset, tbl in (("candles", candles), ("open_interest", oi), ("funding", funding)):
                    res = store.upsert(f"raw_{dataset}", tbl)
                    runs.append(SourceOutcome(asset.id, ex, inst, dataset, requests=1, received=res.received,
                                              stored=res.inserted).finish().record(run_id))
                store.upsert("raw_source_runs", {k: [r[k][0] for r in runs] for k in runs[0]})
        return {r["table_name"]: r["n"] for r in store.query("table_counts").to_pylist()}


def _du(path: Path) -> tuple[float, int]:
    files = [p for p in path.rglob("*") if p.is_file()] if path.exists() else []
    return sum(p.stat().st_size for p in files) / 2**20, len(files)


# Runs the argv it is given and prints its peak RSS (MB); small itself, so the number is MkDocs's.
_RSS_WRAPPER = ("import resource, subprocess, sys; subprocess.run(sys.argv[1:], check=True, capture_output=True); "
                "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024)")


def _mkdocs_rss_mb(work: Path) -> float:
    """Peak RSS of the build's MkDocs step, re-run on its generated config (see the module docstring)."""
    cfg = work / "docs.mkdocs.yml"  # build._mkdocs writes it next to the docs dir
    cmd = [sys.executable, "-m", "mkdocs", "build", "--strict", "--clean", "-q", "-f", str(cfg), "-d", str(work / "site2")]
    out = subprocess.run([sys.executable, "-c", _RSS_WRAPPER, *cmd], capture_output=True, text=True, check=True,
                         cwd=ROOT, env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    shutil.rmtree(work / "site2")
    return float(out.stdout)


def build_once(work: Path) -> dict:
    """Time one build of the store in ``work/data``; sizes of what it wrote."""
    from pipeline.build import build

    t0 = time.perf_counter()
    report = build(work / "data", out=work / "site", docs=work / "docs", strict=True)
    wall = time.perf_counter() - t0
    # CPU seconds of the build, its workers and MkDocs: less sensitive than wall time to other load.
    cpu = sum(getattr(resource.getrusage(who), f) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)
              for f in ("ru_utime", "ru_stime"))
    site_mb, site_files = _du(work / "site")
    snap_mb, snap_files = _du(work / "data" / "snapshots")
    return {
        "timings": report.timings, "wall_s": wall, "cpu_s": cpu,
        "rss_build_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "workers": report.workers, "rss_worker_mb": report.worker_rss_mb,
        "rss_mkdocs_mb": _mkdocs_rss_mb(work),
        "site_mb": site_mb, "site_files": site_files, "docs_mb": _du(work / "docs")[0],
        "snapshots_mb": snap_mb, "snapshot_files": snap_files,
        "pages": len(report.pages), "warnings": report.warnings, "held": report.held,
    }


def _child(*args: str) -> dict:
    out = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True)
    if out.returncode:
        sys.exit(f"child {' '.join(args)} failed ({out.returncode}):\n{out.stderr[-4000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def one_size(days: int, repeats: int) -> dict:
    with tempfile.TemporaryDirectory(prefix=f"bench-build-{days}d-") as tmp:
        seed = Path(tmp) / "seed"
        t0 = time.perf_counter()
        rows = _child("--fill", str(seed / "data"), "--days", str(days))
        fill_s = time.perf_counter() - t0
        db_mb = _du(seed / "data")[0]
        runs = []
        for r in range(repeats):
            work = Path(tmp) / f"run{r}"
            shutil.copytree(seed, work)
            runs.append(_child("--build", str(work)))
            shutil.rmtree(work)  # keeps /tmp small at 90 days x repeats
    med = {k: statistics.median(r["timings"].get(k, float("nan")) for r in runs) for k in PHASES}
    last = runs[-1]
    return {
        "days": days, "rows": rows, "db_mb": db_mb, "fill_s": fill_s, "timings": med,
        "rss_build_mb": max(r["rss_build_mb"] for r in runs), "rss_mkdocs_mb": max(r["rss_mkdocs_mb"] for r in runs),
        "workers": last["workers"], "rss_worker_mb": max(r["rss_worker_mb"] for r in runs),
        "totals": [r["timings"]["total"] for r in runs], "cpu_s": statistics.median(r.get("cpu_s", 0) for r in runs),
        **{k: last[k] for k in ("site_mb", "site_files", "docs_mb", "snapshots_mb", "snapshot_files", "pages",
                                "warnings", "held")},
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--days", default="7,30,90", help="comma-separated history lengths (default 7,30,90)")
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--json", type=Path, help="also write every result to FILE")
    ap.add_argument("--fill", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--build", type=Path, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.fill:
        print(json.dumps(fill(a.fill, int(a.days))))
        return 0
    if a.build:
        print(json.dumps(build_once(a.build)))
        return 0

    print(f"command: {' '.join([Path(sys.executable).name, *sys.argv])}")
    cols = ("days", "candles", "fill s", *PHASES, "cpu s", "bt %", "RSS MB", "workers", "wrk MB", "mkdocs MB", "site MB",
            "files", "snap MB")
    print(" ".join(f"{c:>9}" for c in cols), flush=True)
    results = []
    for days in (int(d) for d in a.days.split(",")):
        r = one_size(days, a.repeats)
        results.append(r)
        tm = r["timings"]
        cells = [days, r["rows"]["raw_candles"], f"{r['fill_s']:.1f}", *(f"{tm[k]:.1f}" for k in PHASES),
                 f"{r['cpu_s']:.1f}",
                 f"{100 * tm['backtest'] / tm['total']:.0f}", f"{r['rss_build_mb']:.0f}", r["workers"],
                 f"{r['rss_worker_mb']:.0f}", f"{r['rss_mkdocs_mb']:.0f}",
                 f"{r['site_mb']:.1f}", r["site_files"], f"{r['snapshots_mb']:.1f}"]
        print(" ".join(f"{c:>9}" for c in cells), flush=True)
        for w in r["warnings"] + [f"held: {h}" for h in r["held"]]:
            print(f"  {days}d: {w}")
    for r in results:
        print(json.dumps({k: v for k, v in r.items() if k not in ("warnings",)}))
    if a.json:
        a.json.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
