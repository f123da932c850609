"""Benchmark of one market's backtest (pipeline.backtest.market) on synthetic 5-minute data (a script, not a test).

Answers "what does the backtest cost a build, per market". For each length a
synthetic market is generated (random-walk 5-minute candles with regime-switching
volatility, 5-minute USD open interest drifting as a random walk, taker-buy volume),
and ``backtest_market`` is timed as the build calls it (BTC's registry parameters
and timeframes) with ``settings`` at their defaults; ``--variants`` also times
``run_variants`` (which the build no longer runs; ``liqmap backtest --variants`` does).
Times are medians over ``--repeats`` runs in this process.

Usage: .venv/bin/python bench/bench_backtest.py [--days 30,90,365] [--repeats 3] [--variants] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

CANDLE_MS = 300_000


def synthetic_market(days: int, seed: int = 0):
    import numpy as np

    rng = np.random.default_rng(seed)
    n = days * 288
    t = 1_700_000_000_000 // 3_600_000 * 3_600_000 + CANDLE_MS * np.arange(n, dtype=np.int64)
    # Volatility regimes of a few days each: calm and turbulent periods alternate.
    regime = np.repeat(rng.choice([0.0008, 0.0016, 0.003], size=days // 3 + 1), 3 * 288)[:n]
    r = rng.normal(0, 1, n) * regime
    close = 60_000 * np.exp(np.cumsum(r))
    op = np.r_[close[0], close[:-1]]
    wick = np.abs(rng.normal(0, 1, (2, n))) * regime * close * 0.5
    high = np.maximum(op, close) + wick[0]
    low = np.minimum(op, close) - wick[1]
    vol = rng.uniform(50, 150, n)
    candles = {"time_ms": t, "open": op, "high": high, "low": low, "close": close, "volume": vol,
               "taker_buy_volume": vol * rng.uniform(0.4, 0.6, n)}
    oi = 8e9 * np.exp(np.cumsum(rng.normal(0, 0.002, n)))
    return candles, oi


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--days", default="30,90,365")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--variants", action="store_true", help="also time run_variants")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)

    from pipeline import registry
    from pipeline.backtest import market as bt
    from pipeline.backtest.predict import BacktestSettings
    from pipeline.model.params import ModelParams

    reg = registry.load()
    asset = reg.get("btc")
    params = ModelParams.from_asset(asset, reg.settings_for(asset))
    tfs = {tf: registry.TIMEFRAMES_MS[tf] for tf in asset.timeframes}
    out = []
    print(f"command: {' '.join([sys.executable.split('/')[-1], 'bench/bench_backtest.py', *(argv or sys.argv[1:])])}")
    print(f"{'days':>5} {'candles':>8} {'backtest_market s (median)':>27} {'runs':>28}"
          + ("  run_variants s" if args.variants else ""))
    for days in (int(x) for x in args.days.split(",")):
        candles, oi = synthetic_market(days)
        times, vtimes = [], []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            bt.backtest_market(candles, oi, params, settings=BacktestSettings(), timeframes_ms=tfs)
            times.append(time.perf_counter() - t0)
            if args.variants:
                t0 = time.perf_counter()
                bt.run_variants(candles, oi, params, settings=BacktestSettings())
                vtimes.append(time.perf_counter() - t0)
        row = {"days": days, "candles": int(candles["time_ms"].size), "backtest_s": statistics.median(times),
               "runs_s": [round(x, 3) for x in times]}
        if vtimes:
            row["variants_s"] = statistics.median(vtimes)
        out.append(row)
        print(f"{days:>5} {row['candles']:>8} {row['backtest_s']:>27.2f} {str(row['runs_s']):>28}"
              + (f"  {row['variants_s']:.2f}" if vtimes else ""), flush=True)
    if args.json:
        args.json.write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
