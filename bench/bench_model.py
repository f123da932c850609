"""Benchmark of pipeline.model on synthetic 5-minute candles (a script, not a test).

Sizes: 1 day, 1 week, 1 month, 3 months, 1 year of 5-minute candles (random walk,
OI drifting upward with noise). Each size runs in its own subprocess so peak RSS
(resource.getrusage maxrss) belongs to that size alone. Timed: ``model.run`` plus
one ``grid`` with 500 price bins and <= 1000 time columns; median over repeats.

Usage: .venv/bin/python bench/bench_model.py [--repeats 5] [--sizes 1d,1w,1M,3M,1y] [--fade 24]
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

CANDLE_MS = 300_000
SIZES = {"1d": 288, "1w": 7 * 288, "1M": 30 * 288, "3M": 90 * 288, "1y": 365 * 288}


def synthetic(n: int, seed: int = 0):
    import numpy as np

    rng = np.random.default_rng(seed)
    t = 1_700_000_000_000 + CANDLE_MS * np.arange(n, dtype=np.int64)
    c = 60_000 * np.exp(np.cumsum(rng.normal(0, 0.0025, n)))
    o = np.r_[c[0], c[:-1]]
    h = np.maximum(o, c) * (1 + np.abs(rng.normal(0, 0.001, n)))
    lo = np.minimum(o, c) * (1 - np.abs(rng.normal(0, 0.001, n)))
    oi = 5e9 * np.exp(np.cumsum(rng.normal(2e-5, 0.002, n)))  # upward drift
    vol = rng.uniform(50, 500, n)
    return t, o, h, lo, c, oi, vol, vol * rng.uniform(0.3, 0.7, n)


def one(size: str, repeats: int, fade: float | None) -> dict:
    import numpy as np

    from pipeline.model import book as model

    n = SIZES[size]
    t, o, h, lo, c, oi, vol, tb = synthetic(n)
    p = model.ModelParams((5, 10, 25, 50, 100), (0.15, 0.3, 0.25, 0.2, 0.1),
                          ((0, 0.004), (50_000, 0.005), (500_000, 0.01)), fade_half_life_hours=fade)
    cols = model.time_columns(t[0], t[-1], 1000, CANDLE_MS)
    edges = np.linspace(lo.min() * 0.9, h.max() * 1.1, 501)
    times, run_t, grid_t = [], [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        r = model.run(t, o, h, lo, c, oi, p, volume=vol, taker_buy_volume=tb)
        t1 = time.perf_counter()
        g = r.grid(cols, edges)
        t2 = time.perf_counter()
        times.append(t2 - t0)
        run_t.append(t1 - t0)
        grid_t.append(t2 - t1)
    tot = r.totals()
    resid = abs(tot["added"] - tot["active"] - tot["consumed"] - tot["removed"] - tot["faded"]) / tot["added"]
    return {
        "size": size, "candles": n, "levels": int(r.level_birth.size), "cols": len(cols),
        "median_s": statistics.median(times), "run_s": statistics.median(run_t), "grid_s": statistics.median(grid_t),
        "maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "conservation_rel_err": resid,
        "grid_shape": list(g.shape),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--sizes", default=",".join(SIZES))
    ap.add_argument("--fade", type=float, default=None, help="fade half-life in hours (default: no fade)")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        print(json.dumps(one(a.child, a.repeats, a.fade)))
        return 0
    # Baseline RSS of a bare interpreter with numpy + the model imported, for context.
    base = subprocess.run([sys.executable, "-c", "import resource, numpy, sys; sys.path.insert(0, %r); import pipeline.model.book;"
                           "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss/1024)" % str(ROOT)],
                          capture_output=True, text=True, check=True)
    print(f"command: {' '.join([Path(sys.executable).name, *sys.argv])}")
    print(f"baseline RSS (python + numpy + model import): {float(base.stdout):.0f} MB")
    print(f"{'size':>4} {'candles':>8} {'levels':>9} {'cols':>5} {'median s':>9} {'run s':>7} {'grid s':>7} {'peak RSS MB':>11} {'cons. err':>9}")
    for size in a.sizes.split(","):
        cmd = [sys.executable, __file__, "--child", size, "--repeats", str(a.repeats)]
        if a.fade is not None:
            cmd += ["--fade", str(a.fade)]
        out = subprocess.run(cmd, capture_output=True, text=True, check=True)
        r = json.loads(out.stdout)
        print(f"{r['size']:>4} {r['candles']:>8} {r['levels']:>9} {r['cols']:>5} {r['median_s']:>9.3f} {r['run_s']:>7.3f} "
              f"{r['grid_s']:>7.3f} {r['maxrss_mb']:>11.0f} {r['conservation_rel_err']:>9.1e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
