"""Page contexts (pure): plain values the Jinja templates print, from views, backtest results and the registry.

- accuracy: :func:`accuracy_context` (the Accuracy page) and :func:`asset_context`
  (each asset page's accuracy section) from ``pipeline.steps.backtest.run_for_asset`` results;
- methodology: :func:`methodology_context`, every model assumption as configured;
- shards: :func:`view_summary` / :func:`merged_view`, what the home page needs of an
  asset built by another shard.
"""

from __future__ import annotations

import dataclasses
import math

from pipeline import registry
from pipeline.markets import JPY_PER_USD
from pipeline.model import levels, windows
from pipeline.model.params import ModelParams
from pipeline.model.views import CURRENT_FIELDS, FUNDING_MAX_INTERVALS, OI_MAX_AGE_MS, TOP_CLUSTERS, AssetView
from pipeline.render import format as fmt
from pipeline.render.charts import colour
from pipeline.render.charts.accuracy import chart_file
from pipeline.render.charts.asset import LIQ_MAP_BINS, LIQ_MAP_MAX_PCT

# -- accuracy --------------------------------------------------------------------------
SIDE_LABELS = {"above": "above price (shorts)", "below": "below price (longs)", "both": "both sides"}
COMPARATOR_LABELS = {"placebo": "the OI placebo", "swing": "recent swing highs/lows", "round": "round numbers"}
HEADLINE_H = 24


def _row_ctx(r: dict) -> dict:
    skipped = bool(r.get("skipped"))
    return {
        "horizon": f"{r['horizon_h']} h",
        "side": r.get("side", "both"),
        "side_label": SIDE_LABELS.get(r.get("side", "both"), r.get("side", "")),
        "timeframe": str(r.get("timeframe", "")),
        "rank": str(r.get("rank", "")),
        "confluence": str(r.get("confluence", "")),
        "cases": f"{r['cases']:,}",
        "blocks": f"{r.get('blocks', 0):,}" if not skipped else fmt.DASH,
        "skipped": skipped,
        "reason": r.get("reason", ""),
        "hit": fmt.DASH if skipped else fmt.share(r.get("hit_rate")),
        "hit_ci": fmt.DASH if skipped else fmt.share_ci(r.get("hit_ci")),
        "base": fmt.DASH if skipped else fmt.share(r.get("baseline_rate")),
        "base_ci": fmt.DASH if skipped else fmt.share_ci(r.get("baseline_ci")),
        "lift": fmt.DASH if skipped else fmt.ratio(r.get("lift")),
        "lift_ci": fmt.DASH if skipped else fmt.ratio_ci(r.get("lift_ci")),
        "near": fmt.DASH if skipped else f"{r.get('median_near_pct', float('nan')):.2f} %",
        "width": fmt.DASH if skipped else f"{r.get('median_width_pct', float('nan')):.2f} %",
    }


def _word(ci) -> str:
    """Verdict on a ratio's 95 % interval."""
    if not ci or ci[0] is None or ci[1] is None:
        return "cannot yet be compared with"
    if ci[0] > 1:
        return "beat"
    if ci[1] < 1:
        return "do worse than"
    return "cannot be told apart from"


def _lift_text(x: dict) -> str:
    if x.get("skipped") or x.get("lift") is None:
        return fmt.DASH
    ci = x.get("lift_ci") or [None, None]
    return f"{fmt.ratio(x['lift'])} ({fmt.ratio_ci(ci)})" if ci[0] is not None else f"{fmt.ratio(x['lift'])} (no interval)"


def _headline(m: dict) -> dict | None:
    """The comparison row the verdict rests on: 24 h when it has an interval, else the longest that has one."""
    rows = [c for c in m.get("comparison", []) if not c["model"].get("skipped")]
    with_ci = [c for c in rows if (c["model"].get("lift_ci") or [None])[0] is not None]
    pick = next((c for c in with_ci if c["horizon_h"] == HEADLINE_H), with_ci[-1] if with_ci else None)
    return pick or (rows[0] if rows else None)


def _comparison_ctx(c: dict) -> dict:
    out = {"horizon": f"{c['horizon_h']} h", "model": _lift_text(c["model"])}
    for k in COMPARATOR_LABELS:
        out[k] = _lift_text(c[k])
        r = c.get(f"model_vs_{k}") or {}
        out[f"vs_{k}"] = (f"×{fmt.ratio(r.get('ratio'))} ({fmt.ratio_ci(r.get('ratio_ci'))})"
                          if r.get("ratio") is not None else fmt.DASH)
        out[f"word_{k}"] = _word(r.get("ratio_ci"))
    return out


def verdict(asset_name: str, m: dict | None) -> str:
    """One sentence: does the model beat the placebo and the naive levels, by how much, over what period."""
    if m is None:
        return f"{asset_name}: not measured yet (no stored history)."
    h = _headline(m)
    rng = m.get("range", {})
    period = (f"{fmt.fmt_time(rng.get('first_eval_ms'))} – {fmt.fmt_time(rng.get('last_eval_ms'))}, "
              f"{rng.get('hours', 0):,.0f} h of {m.get('title', m['key'])}")
    if h is None:
        return f"{asset_name}: too little history to measure ({period})."
    c = _comparison_ctx(h)
    parts = [f"{c['word_' + k]} {COMPARATOR_LABELS[k]} ({c['vs_' + k]})" for k in COMPARATOR_LABELS]
    return (f"{asset_name}, {c['horizon']}: the model's clusters {parts[0]}, {parts[1]} and {parts[2]}; "
            f"model lift {c['model']} against placebo {c['placebo']}. Period: {period}.")


def _realized_ctx(rl: dict) -> dict:
    if not rl or not rl.get("available"):
        return {"available": False, "text": (rl or {}).get("reason", "no realized liquidations stored"), "shares": []}
    rand = rl.get("random_share_within_pct") or {}
    shares = [{"band": f"± {k} %", "share": fmt.share(v), "random": fmt.share(rand.get(k))}
              for k, v in (rl.get("share_within_pct") or {}).items()]
    act = rl.get("activity_baseline") or {}
    text = (f"{rl['realized_orders']:,} realized liquidation orders over {rl['hours']} hours "
            f"({fmt.fmt_time(rl['first_ms'])} – {fmt.fmt_time(rl['last_ms'])}). Hourly modelled vs realized notional: "
            f"Pearson {fmt.ratio(rl.get('pearson'))}, Spearman {fmt.ratio(rl.get('spearman'))} "
            f"(longs {fmt.ratio(rl.get('spearman_long'))}, shorts {fmt.ratio(rl.get('spearman_short'))}). "
            f"Activity baseline, gross OI churn vs realized: Pearson {fmt.ratio(act.get('pearson'))}, "
            f"Spearman {fmt.ratio(act.get('spearman'))}.")
    return {"available": True, "text": text, "shares": shares}


def market_context(asset_id: str, m: dict) -> dict:
    rng = m.get("range", {})
    conf = m.get("confluence", {}) or {}
    head = _headline(m)
    pl = m.get("placebo") or {}
    return {
        "key": m["key"], "title": m.get("title", m["key"]), "is_sample": bool(m.get("is_sample")),
        "candles_from": m.get("candles_from", ""), "oi_from": m.get("oi_from", ""),
        "range": f"{fmt.fmt_time(rng.get('first_candle_ms'))} – {fmt.fmt_time(rng.get('last_candle_ms'))}",
        "eval_range": f"{fmt.fmt_time(rng.get('first_eval_ms'))} – {fmt.fmt_time(rng.get('last_eval_ms'))}",
        "hours": f"{rng.get('hours', 0):,.1f}",
        "eval_points": f"{rng.get('eval_points', 0):,}",
        "candles": f"{rng.get('candles', 0):,} × {rng.get('candle_interval_s', 0)} s",
        "rows": [_row_ctx(r) for r in m.get("summary", [])],
        "comparison": [_comparison_ctx(c) for c in m.get("comparison", [])],
        "headline": None if head is None else _comparison_ctx(head),
        "verdict": "",
        "placebo_runs": pl.get("runs", 0),
        "placebo_same": fmt.share(pl.get("same_clusters_share")),
        "by_rank": [_row_ctx(r) for r in m.get("by_rank", [])],
        "by_timeframe": [_row_ctx(r) for r in m.get("by_timeframe", [])],
        "confluence": {"timeframes": ", ".join(conf.get("timeframes", [])), "points": conf.get("points") or 0,
                       "rows": [_row_ctx(r) for r in conf.get("rows", [])]},
        "realized": _realized_ctx(m.get("realized", {})),
        "chart_file": chart_file(asset_id, m["key"]),
        "step_h": f"{m.get('step_h', 1):g}",
        "window_step_h": f"{m.get('window_step_h') or m.get('step_h', 1):g}",
    }


def variants_context(v: dict | None) -> dict | None:
    if not v:
        return None
    rows = []
    for r in v.get("table", []):
        fade = r.get("fade_half_life_hours")
        rows.append({
            "name": r["name"], "side_split": r.get("side_split", ""), "leverage_mix": r.get("leverage_mix", ""),
            "weights": " / ".join(f"{100 * w:.0f}" for w in r.get("weights", [])),
            "fade": "none" if fade is None else f"{fade:g} h",
            "earlier": fmt.ratio(r.get("score")), "later": fmt.ratio(r.get("later_lift")),
            "later_ci": fmt.ratio_ci(r.get("later_lift_ci")),
            "is_default": r["name"] == v.get("default"), "is_winner": r["name"] == v.get("winner"),
        })
    return {"market": v.get("market", ""), "rows": rows, "winner": v.get("winner", ""), "best": v.get("best") or "–",
            "default": v.get("default", ""), "why": v.get("why", ""), "score": v.get("score", ""),
            "taker_available": bool(v.get("taker_available"))}


def _main_market(result: dict) -> dict | None:
    ms = result.get("markets", [])
    return max(ms, key=lambda m: m.get("range", {}).get("eval_points", 0)) if ms else None


def asset_context(result: dict) -> dict:
    """Context of one asset (the ``acc_asset`` variable of ``_accuracy_section.md.j2``)."""
    name = result.get("name", result["asset"])
    markets = [market_context(result["asset"], m) for m in result.get("markets", [])]
    for ctx, m in zip(markets, result.get("markets", [])):
        ctx["verdict"] = verdict(name, m)
    main = _main_market(result)
    return {
        "id": result["asset"], "name": name, "symbol": result.get("symbol", ""),
        "markets": markets,
        "verdict": verdict(name, main),
        "is_sample": bool(main and main.get("is_sample")),
        "variants": variants_context(result.get("variants")),
    }


def accuracy_context(results, *, settings: dict | None = None) -> dict:
    """Context of ``accuracy.md.j2`` (variable ``acc``) from ``pipeline.steps.backtest.run_for_asset`` results."""
    results = list(results)
    if settings is None:
        settings = next((m.get("settings") for r in results for m in r.get("markets", []) if m.get("settings")), {})
    s = settings or {}
    assets = [asset_context(r) for r in results]
    return {
        "assets": assets,
        "any_data": any(a["markets"] for a in assets),
        "any_sample": any(m["is_sample"] for a in assets for m in a["markets"]),
        "horizons": ", ".join(f"{h} h" for h in s.get("horizons_h", ())),
        "step_h": f"{s.get('step_h', 1):g}",
        "max_points": f"{s.get('max_eval_points', 2000):,}",
        "window_points": f"{s.get('window_max_points', 360):,}",
        "warmup_h": f"{s.get('warmup_h', 6):g}",
        "top_k": s.get("top_k", 3),
        "min_cases": s.get("min_cases", 30),
        "price_bins": s.get("price_bins", 400),
        "span_pct": f"{s.get('span_pct', 15):g}",
        "placebo_runs": s.get("placebo_runs", 3),
        "placebo_block_h": f"{s.get('placebo_block_h', 24):g}",
        "bands": ", ".join(f"± {b:g} %" for b in s.get("bands_pct", ())),
        "score": next((r["variants"]["score"] for r in results if r.get("variants")), ""),
    }




# -- methodology -------------------------------------------------------------------------
def methodology_context(reg: registry.Registry) -> dict:
    defaults = {f.name: f.default for f in dataclasses.fields(ModelParams) if f.default is not dataclasses.MISSING}
    rows = []
    for a in reg.assets:
        s = reg.settings_for(a)
        p = ModelParams.from_asset(a, s)
        mmr, cum = p.bracket
        tiers, c = [], 0.0
        for i, t in enumerate(a.mmr_tiers):
            if i:
                c += t.from_usd * (t.mmr - a.mmr_tiers[i - 1].mmr)
            tiers.append({"from_usd": t.from_usd, "mmr": t.mmr, "cum": c})
        f = p.price_factors()
        lev = [{"leverage": L, "weight": w, "long_pct": (f[0, i] - 1) * 100, "short_pct": (f[1, i] - 1) * 100}
               for i, (L, w) in enumerate(zip(p.leverage, p.weights))]
        rows.append({"asset": a, "settings": s, "params": p, "mmr": mmr, "cum": cum, "tiers": tiers, "leverage": lev})
    # Registry settings win; fields the registry does not (yet) carry show the model's default.
    current = {k: getattr(reg.model, k, v) for k, v in defaults.items()}
    return {
        "assets": rows, "defaults": defaults, "current": current, "registry_defaults": reg.model,
        "pads": windows.PRICE_PAD, "vmax_pct": colour.VMAX_PERCENTILE, "hot_quantile": levels.HOT_QUANTILE,
        "top": TOP_CLUSTERS, "jpy_per_usd": JPY_PER_USD, "max_cols": windows.MAX_COLS,
        "timeframes": registry.TIMEFRAMES_MS, "liq_bins": LIQ_MAP_BINS, "liq_max_pct": LIQ_MAP_MAX_PCT * 100,
        "oi_max_age_h": OI_MAX_AGE_MS // 3_600_000, "funding_max_intervals": FUNDING_MAX_INTERVALS,
    }


# -- shards --------------------------------------------------------------------------------
@dataclasses.dataclass
class Reference:
    clusters: list[levels.Cluster]


@dataclasses.dataclass
class MergedView:
    """What the home page needs of an asset built by another shard (read from its view.json)."""

    asset: registry.Asset
    has_data: bool
    price: float
    price_time_ms: int
    sample: dict | None
    reference: Reference | None
    funding_8h: float = math.nan
    oi_usd: float = math.nan
    oi_change_24h: float = math.nan


def _finite_or_none(x: float) -> float | None:
    return x if math.isfinite(x) else None


def view_summary(v: AssetView, accuracy: dict | None) -> dict:
    ref = v.reference
    return {
        "id": v.asset.id, "has_data": v.has_data, "price": _finite_or_none(v.price),
        "price_time_ms": v.price_time_ms,
        "sample": v.sample, "clusters": [c.__dict__ for c in ref.clusters] if ref else [], "accuracy": accuracy,
        **{k: _finite_or_none(getattr(v, k)) for k in CURRENT_FIELDS},
    }


def merged_view(reg: registry.Registry, d: dict) -> MergedView:
    clusters = [levels.Cluster(**c) for c in d["clusters"]]
    price = math.nan if d["price"] is None else d["price"]
    current = {k: math.nan if d.get(k) is None else d[k] for k in CURRENT_FIELDS}
    return MergedView(reg.get(d["id"]), d["has_data"], price, d["price_time_ms"], d["sample"],
                      Reference(clusters) if d["has_data"] else None, **current)
