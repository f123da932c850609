"""``liqmap backtest``: measure how often price reached the model's predicted clusters.

Loads each asset's markets from the store (the bundled sample when the store is
empty), runs the model and :mod:`pipeline.backtest`, writes one JSON results
file per asset and prints a table. :func:`run_for_asset` is what the site build
calls to render the accuracy page and each asset's accuracy section.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Any

import numpy as np

from . import load_registry
from .. import backtest as bt
from .. import paths, registry
from ..markets import Market, markets_for


def configure(p) -> None:
    p.add_argument("--assets", default=None,
                   help="comma-separated asset ids (default: every asset with stored candles)")
    p.add_argument("--variants", action="store_true",
                   help="also backtest the model variants and say which default the evidence supports")
    p.add_argument("--out", type=Path, default=None,
                   help="results file (JSON); default: <data-dir>/backtest/<asset>.json per asset. "
                        "With several assets, FILE gets every asset under its id.")
    p.add_argument("--min-cases", type=int, default=bt.MIN_CASES,
                   help=f"rows with fewer cases are reported as skipped (default {bt.MIN_CASES})")
    p.add_argument("--top-k", type=int, default=bt.Settings.top_k, help="clusters scored per side (default 3)")
    p.add_argument("--warmup-h", type=float, default=bt.Settings.warmup_h,
                   help="hours of history before the first evaluation point (default 6)")


def _stored_candle_pairs(store) -> set[tuple[str, str]]:
    return {(r["exchange"], r["instrument"]) for r in store.query("data_extent").to_pylist()
            if r["dataset"] == "candles"}


def _market_arrays(store, market: Market) -> tuple[dict, np.ndarray, dict | None]:
    """Candles (USD), OI aligned to candles, realized liquidations (or None) of one market."""
    from .. import model

    ex, inst = market.candles
    candles = store.arrays("market_candles", exchange=ex, instrument=inst, since_ms=0)
    oex, oinst = market.oi
    oi = store.arrays("market_open_interest", exchange=oex, instrument=oinst, since_ms=0)
    oi_usd = model.align_oi(candles["time_ms"], oi["time_ms"], oi["oi_usd"], oi_base=oi["oi_base"],
                            close=candles["close"]) if oi["time_ms"].size else \
        np.full(candles["time_ms"].size, np.nan)
    liq = store.arrays("market_liquidations", exchange=ex, instrument=inst, since_ms=0)
    return candles, oi_usd, (liq if liq["time_ms"].size else None)


def run_for_asset(store, registry_: registry.Registry, asset: registry.Asset | str, *,
                  variants: bool = True, settings: bt.Settings | None = None) -> dict:
    """Backtest every stored market of ``asset``; JSON-ready dict (see ``backtest.accuracy_context``).

    Variants are run on the market with the most evaluation points only (they
    multiply the cost by ~27 and the longest history is the best evidence).
    Loads the bundled sample first when the store is empty.
    """
    from .. import model, sample

    settings = settings or bt.Settings()
    if isinstance(asset, str):
        asset = registry_.get(asset)
    if not store.read_only:
        sample.load_if_empty(store)
    params = model.ModelParams.from_asset(asset, registry_.settings_for(asset))
    tfs = {tf: registry.TIMEFRAMES_MS[tf] for tf in asset.timeframes}
    try:  # windows are drawn with the site's own price padding when the build ships
        from ..build import PRICE_PAD as pads
    except ImportError:  # pragma: no cover - depends on which helpers have shipped
        pads = bt.DEFAULT_PADS
    out: dict[str, Any] = {
        "asset": asset.id, "name": asset.name, "symbol": asset.symbol,
        "params": {"leverage": list(params.leverage), "weights": list(params.weights),
                   "side_split": params.side_split, "fade_half_life_hours": params.fade_half_life_hours},
        "method": {"baseline": "distance-, side- and horizon-matched, time-randomised (leave-one-out)",
                   "score": bt.SCORE_TEXT},
        "markets": [], "variants": None,
    }
    best: tuple[int, Market, dict, np.ndarray] | None = None
    for market in markets_for(asset, _stored_candle_pairs(store)):
        candles, oi_usd, liq = _market_arrays(store, market)
        if candles["time_ms"].size < 2:
            continue
        res = bt.backtest_market(candles, oi_usd, params, settings=settings, timeframes_ms=tfs, pads=pads,
                                 liquidations=liq)
        res = {"key": market.key, "title": market.title, "is_sample": market.is_sample,
               "candles_from": f"{market.candles[0]} {market.candles[1]}",
               "oi_from": f"{market.oi[0]} {market.oi[1]}", **res}
        out["markets"].append(bt.to_jsonable(res))
        n = res["range"]["eval_points"]
        if best is None or n > best[0]:
            best = (n, market, candles, oi_usd)
    if variants and best is not None:
        _, market, candles, oi_usd = best
        v = bt.run_variants(candles, oi_usd, params, settings=settings)
        out["variants"] = bt.to_jsonable({"market": market.key, **v})
    return out


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
    from ..store import open_store

    reg = load_registry()
    if reg is None:
        return 2
    settings = bt.Settings(min_cases=args.min_cases, top_k=args.top_k, warmup_h=args.warmup_h)
    with open_store(args.data_dir) as store:
        from .. import sample

        if sample.load_if_empty(store):
            print("store was empty: loaded the bundled sample (about two days; figures are indicative only)")
        if args.assets:
            ids = [a.strip() for a in args.assets.split(",") if a.strip()]
        else:
            pairs = _stored_candle_pairs(store)
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


def write_accuracy_pages(env, results: list[dict], docs_dir: Path) -> list[Path]:
    """Render ``accuracy.md`` and its chart specs into ``docs_dir`` (for the site build).

    ``env``: the build's Jinja environment; ``results``: ``run_for_asset`` outputs.
    Writes ``docs_dir/accuracy.md`` and ``docs_dir/accuracy/<asset>-<market>.json``
    (chart placeholders resolve against the Markdown file's folder, as the
    heatmap specs do: ``accuracy/<file>`` from the page, ``../accuracy/<file>``
    from ``heatmaps/<asset>.md``). Returns the Markdown page written.
    """
    from .. import backtest_charts as bc

    folder = Path(docs_dir) / "accuracy"
    folder.mkdir(parents=True, exist_ok=True)
    for name, spec in bc.chart_specs(results).items():
        (folder / name).write_text(json.dumps(spec, separators=(",", ":"), allow_nan=False), encoding="utf-8")
    page = Path(docs_dir) / "accuracy.md"
    page.write_text(env.get_template("accuracy.md.j2").render(acc=bc.accuracy_context(results)), encoding="utf-8")
    return [page]


def section_contexts(results: list[dict]) -> dict[str, dict]:
    """{asset id: context} for ``_accuracy_section.md.j2`` (pass as ``accuracy`` to asset pages)."""
    from .. import backtest_charts as bc

    return {r["asset"]: bc.asset_context(r) for r in results}
