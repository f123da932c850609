"""``liqmap backtest``: measure how often price reached the model's predicted clusters.

Runs :func:`pipeline.steps.backtest.run_for_asset` for each asset (the bundled
sample when the store is empty), writes one JSON results file per asset and
prints a table.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

from pipeline import paths
from pipeline.backtest.cases import MIN_CASES
from pipeline.backtest.predict import Settings
from pipeline.commands import load_registry
from pipeline.markets import markets_for


def configure(p) -> None:
    p.add_argument("--assets", default=None,
                   help="comma-separated asset ids (default: every asset with stored candles)")
    p.add_argument("--variants", action="store_true",
                   help="also backtest the model variants and say which default the evidence supports")
    p.add_argument("--out", type=Path, default=None,
                   help="results file (JSON); default: <data-dir>/backtest/<asset>.json per asset. "
                        "With several assets, FILE gets every asset under its id.")
    p.add_argument("--min-cases", type=int, default=MIN_CASES,
                   help=f"rows with fewer cases are reported as skipped (default {MIN_CASES})")
    p.add_argument("--top-k", type=int, default=Settings.top_k, help="clusters scored per side (default 3)")
    p.add_argument("--warmup-h", type=float, default=Settings.warmup_h,
                   help="hours of history before the first evaluation point (default 6)")


def results_path(data_dir, asset_id: str) -> Path:
    return paths.data_paths(data_dir).root / "backtest" / f"{paths.safe_name(asset_id)}.json"


def _pct(x) -> str:
    return "    -" if x is None or (isinstance(x, float) and not math.isfinite(x)) else f"{100 * x:5.1f}"


def format_table(result: dict) -> str:
    """Plain-text table of one asset's results (the command's output)."""
    lines = [f"{result['name']} ({result['asset']})"]
    for m in result["markets"]:
        r = m["range"]
        lines.append(f"  market {m['key']}: {m['title']}; {r['candles']} candles, {r['hours']} h, "
                     f"{r['eval_points']} evaluation points")
        lines.append("    horizon side    cases  n_eff  hit %  [95 % CI]      base %  [95 % CI]      lift")
        for row in m["summary"]:
            if row.get("skipped"):
                lines.append(f"    {row['horizon_h']:>5} h {row['side']:<6} {row['cases']:>6} {row['n_eff']:>6}  "
                             f"skipped: {row['reason']}")
                continue
            lift = "-" if row["lift"] is None else f"{row['lift']:.2f}"
            lines.append(
                f"    {row['horizon_h']:>5} h {row['side']:<6} {row['cases']:>6} {row['n_eff']:>6} "
                f"{_pct(row['hit_rate'])}  [{_pct(row['hit_ci'][0])}-{_pct(row['hit_ci'][1])}] "
                f"{_pct(row['baseline_rate'])}  [{_pct(row['baseline_ci'][0])}-{_pct(row['baseline_ci'][1])}]  {lift}")
        rl = m.get("realized", {})
        if rl.get("available"):
            lines.append(f"    realized liquidations: {rl['realized_orders']} orders over {rl['hours']} h; "
                         f"Pearson {rl['pearson']}, Spearman {rl['spearman']}; "
                         f"share within x % of a cluster: {rl.get('share_within_pct')}")
        else:
            lines.append(f"    realized liquidations: {rl.get('reason', 'none stored')}")
    v = result.get("variants")
    if v:
        lines.append(f"  variants (market {v['market']}; {v['score'].split(' (')[0]}):")
        for row in v["table"]:
            ci = row.get("score_ci") or [None, None]
            sc = "-" if row.get("score") is None else f"{row['score']:.2f}"
            cis = "" if ci[0] is None else f" [{ci[0]:.2f}-{ci[1]:.2f}]"
            lines.append(f"    {row['name']:<36} cases {row['cases']:>5}  lift {sc}{cis}  "
                         f"hit {_pct(row.get('hit_rate'))} base {_pct(row.get('baseline_rate'))}")
        lines.append(f"  default: {v['winner']}: {v['why']}")
    return "\n".join(lines)


def run(args) -> int:
    from pipeline.steps.backtest import run_for_asset
    from pipeline.store.db import open_store
    from pipeline.store.series import stored_pairs

    reg = load_registry()
    if reg is None:
        return 2
    settings = Settings(min_cases=args.min_cases, top_k=args.top_k, warmup_h=args.warmup_h)
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
