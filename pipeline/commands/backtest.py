"""``liqmap backtest``: measure how often price reached the model's predicted clusters.

Runs :func:`pipeline.steps.backtest.run_for_asset` for each asset (the bundled
sample when the store is empty), writes one JSON results file per asset and
prints a table. With ``--candles FILE --oi FILE`` it backtests your own files
instead (the input contract of ``liqmap compute``; model defaults from the
``--asset`` entry of assets.yaml) and writes the same JSON shape.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

from pipeline import paths
from pipeline.backtest.cases import MIN_CASES
from pipeline.backtest.predict import BacktestSettings
from pipeline.commands import load_registry
from pipeline.markets import markets_for


def configure(p) -> None:
    p.add_argument("--candles", type=Path, default=None, metavar="FILE",
                   help="backtest your own candles (.csv/.parquet, as for liqmap compute) instead of the store")
    p.add_argument("--oi", type=Path, default=None, metavar="FILE",
                   help="open interest for --candles (.csv/.parquet, as for liqmap compute)")
    p.add_argument("--asset", default="btc",
                   help="with --candles: the assets.yaml entry giving model defaults and windows (default: btc)")
    p.add_argument("--assets", default=None,
                   help="comma-separated asset ids (default: every asset with stored candles)")
    p.add_argument("--variants", action="store_true",
                   help="also backtest the model variants and say which default the evidence supports")
    p.add_argument("--out", type=Path, default=None,
                   help="results file (JSON); default: <data-dir>/backtest/<asset>.json per asset. "
                        "With several assets, FILE gets every asset under its id.")
    p.add_argument("--min-cases", type=int, default=MIN_CASES,
                   help=f"rows with fewer cases are reported as skipped (default {MIN_CASES})")
    p.add_argument("--top-k", type=int, default=BacktestSettings.top_k, help="clusters scored per side (default 3)")
    p.add_argument("--warmup-h", type=float, default=BacktestSettings.warmup_h,
                   help="hours of history before the first evaluation point (default 6)")


def results_path(data_dir, asset_id: str) -> Path:
    return paths.data_paths(data_dir).root / "backtest" / f"{paths.safe_name(asset_id)}.json"


def _pct(x) -> str:
    return "    -" if x is None or (isinstance(x, float) and not math.isfinite(x)) else f"{100 * x:5.1f}"


def _lift(x, ci) -> str:
    if x is None:
        return "-"
    if not ci or ci[0] is None:
        return f"{x:.2f} [no interval]"
    return f"{x:.2f} [{ci[0]:.2f}-{ci[1]:.2f}]"


def format_table(result: dict) -> str:
    """Plain-text table of one asset's results (the command's output)."""
    lines = [f"{result['name']} ({result['asset']})"]
    for m in result["markets"]:
        r = m["range"]
        lines.append(f"  market {m['key']}: {m['title']}; {r['candles']} candles, {r['hours']} h, "
                     f"{r['eval_points']} evaluation points")
        lines.append("    horizon side    cases blocks  hit %  base %   lift [95 % block bootstrap]")
        for row in m["summary"]:
            if row.get("skipped"):
                lines.append(f"    {row['horizon_h']:>5} h {row['side']:<6} {row['cases']:>6}         "
                             f"skipped: {row['reason']}")
                continue
            lines.append(
                f"    {row['horizon_h']:>5} h {row['side']:<6} {row['cases']:>6} {row['blocks']:>6} "
                f"{_pct(row['hit_rate'])}  {_pct(row['baseline_rate'])}   {_lift(row['lift'], row['lift_ci'])}"
                + (f"  ({row['ci_reason']})" if row.get("ci_reason") else ""))
        lines.append("    headline (both sides): lift of the model, the OI placebo and naive levels")
        for c in m.get("comparison", []):
            lines.append(f"    {c['horizon_h']:>5} h  model {_lift(c['model']['lift'], c['model']['lift_ci'])}"
                         f"  placebo {_lift(c['placebo']['lift'], c['placebo']['lift_ci'])}"
                         f"  swing {_lift(c['swing']['lift'], c['swing']['lift_ci'])}"
                         f"  round {_lift(c['round']['lift'], c['round']['lift_ci'])}")
        rl = m.get("realized", {})
        if rl.get("available"):
            lines.append(f"    realized liquidations: {rl['realized_orders']} orders over {rl['hours']} h; "
                         f"Pearson {rl['pearson']}, Spearman {rl['spearman']}; "
                         f"share within x % of a cluster: {rl.get('share_within_pct')}")
        else:
            lines.append(f"    realized liquidations: {rl.get('reason', 'none stored')}")
    v = result.get("variants")
    if v:
        lines.append(f"  variants (market {v['market']}; chosen on the earlier half, reported on the later half):")
        for row in v["table"]:
            sc = "-" if row.get("score") is None else f"{row['score']:.2f}"
            lines.append(f"    {row['name']:<36} earlier lift {sc:>5}  later lift "
                         f"{_lift(row.get('later_lift'), row.get('later_lift_ci'))}")
        lines.append(f"  default: {v['winner']}: {v['why']}")
    return "\n".join(lines)


def _run_files(args, reg, settings) -> int:
    from pipeline.model import book
    from pipeline.model.params import ModelParams
    from pipeline.steps.backtest import run_for_arrays
    from pipeline.store import userfiles as userio

    def fail(msg: str) -> int:
        print(f"liqmap backtest: {msg}", file=sys.stderr)
        return 2

    if args.oi is None:
        return fail("--candles needs --oi FILE too")
    if args.assets:
        return fail("--assets is for stored data; with --candles use --asset ID")
    try:
        asset = reg.get(args.asset)
    except KeyError:
        return fail(f"--asset: {args.asset!r} is not in assets.yaml (known: {', '.join(a.id for a in reg.assets)})")
    try:
        if args.out is not None and args.out.suffix.lower() != ".json":
            raise ValueError(f"--out {args.out}: the results are JSON; give a .json file")
        c = userio.read_candles(args.candles)
        oi = userio.read_open_interest(args.oi, c)
    except (userio.InputError, ValueError) as exc:
        return fail(str(exc))
    if c.time_ms.size < 2:
        return fail(f"{c.path}: at least two candles are needed")
    params = ModelParams.from_asset(asset, reg.settings_for(asset))
    candles = {"time_ms": c.time_ms, "open": c.open, "high": c.high, "low": c.low, "close": c.close,
               "volume": c.volume}
    if c.taker_buy_volume is not None:
        candles["taker_buy_volume"] = c.taker_buy_volume
    oi_per_candle = book.align_oi(c.time_ms, oi.time_ms, oi.oi_usd, oi_base=oi.oi_base, close=c.close)
    res = run_for_arrays(asset, params, candles, oi_per_candle, key="file", title=f"your files ({c.path.name})",
                         candles_from=str(c.path), oi_from=f"{oi.path} ({oi.source_column})",
                         variants=args.variants, settings=settings)
    print(format_table(res))
    out = args.out
    if out is None:
        print("(give --out FILE.json to keep the full results)")
        return 0
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(res, indent=1, allow_nan=False), encoding="utf-8")
    except OSError as exc:
        return fail(f"cannot write output: {exc}")
    print(f"wrote {out}")
    return 0


def run(args) -> int:
    from pipeline.steps.backtest import run_for_asset
    from pipeline.store.db import open_store
    from pipeline.store.series import stored_pairs

    reg = load_registry()
    if reg is None:
        return 2
    settings = BacktestSettings(min_cases=args.min_cases, top_k=args.top_k, warmup_h=args.warmup_h)
    if args.candles is not None:
        return _run_files(args, reg, settings)
    with open_store(args.data_dir) as store:
        from pipeline.store import sample

        if sample.load_if_empty(store):
            print("store was empty: loaded the bundled sample (about two days; figures are indicative only)")
        if args.assets:
            ids = [a.strip() for a in args.assets.split(",") if a.strip()]
        else:
            pairs = stored_pairs(store)
            ids = [a.id for a in reg.assets if markets_for(a, pairs)]
        results = {}
        for asset_id in ids:
            try:
                asset = reg.get(asset_id)
            except KeyError:
                print(f"unknown asset {asset_id!r}; known: {', '.join(a.id for a in reg.assets)}", file=sys.stderr)
                return 2
            res = run_for_asset(store, reg, asset, variants=args.variants, settings=settings)
            if not res["markets"]:
                print(f"{asset_id}: no stored market with candles; nothing to backtest", file=sys.stderr)
                continue
            results[asset_id] = res
            print(format_table(res))
    if not results:
        return 1
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        payload = next(iter(results.values())) if len(results) == 1 else results
        args.out.write_text(json.dumps(payload, indent=1), encoding="utf-8")
        print(f"wrote {args.out}")
    else:
        for asset_id, res in results.items():
            f = results_path(args.data_dir, asset_id)
            f.parent.mkdir(parents=True, exist_ok=True)
            f.write_text(json.dumps(res, indent=1), encoding="utf-8")
            print(f"wrote {f}")
    return 0
