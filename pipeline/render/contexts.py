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
from pipeline.render.charts import heatmap
from pipeline.render.charts.accuracy import chart_file
from pipeline.render.charts.asset import LIQ_MAP_BINS, LIQ_MAP_MAX_PCT

# -- accuracy --------------------------------------------------------------------------
SIDE_LABELS = {"above": "above price (shorts)", "below": "below price (longs)", "both": "both sides"}


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
        "n_eff": f"{r.get('n_eff', 0):,.1f}",
        "skipped": skipped,
        "reason": r.get("reason", ""),
        "hit": fmt.DASH if skipped else fmt.share(r.get("hit_rate")),
        "hit_ci": fmt.DASH if skipped else fmt.share_ci(r.get("hit_ci")),
        "hit_ci_eff": fmt.DASH if skipped else fmt.share_ci(r.get("hit_ci_eff")),
        "base": fmt.DASH if skipped else fmt.share(r.get("baseline_rate")),
        "base_ci": fmt.DASH if skipped else fmt.share_ci(r.get("baseline_ci")),
        "base_ci_eff": fmt.DASH if skipped else fmt.share_ci(r.get("baseline_ci_eff")),
        "lift": fmt.DASH if skipped else fmt.ratio(r.get("lift")),
        "lift_ci": fmt.DASH if skipped else fmt.ratio_ci(r.get("lift_ci_eff")),
        "near": fmt.DASH if skipped else f"{r.get('median_near_pct', float('nan')):.2f} %",
        "width": fmt.DASH if skipped else f"{r.get('median_width_pct', float('nan')):.2f} %",
    }


def _realized_ctx(rl: dict) -> dict:
    if not rl or not rl.get("available"):
        return {"available": False, "text": (rl or {}).get("reason", "no realized liquidations stored"), "shares": []}
    shares = [{"band": f"± {k} %", "share": fmt.share(v)} for k, v in (rl.get("share_within_pct") or {}).items()]
    text = (f"{rl['realized_orders']:,} realized liquidation orders over {rl['hours']} hours "
            f"({fmt.fmt_time(rl['first_ms'])} – {fmt.fmt_time(rl['last_ms'])}). Hourly modelled vs realized notional: "
            f"Pearson {fmt.ratio(rl.get('pearson'))}, Spearman {fmt.ratio(rl.get('spearman'))} "
            f"(longs {fmt.ratio(rl.get('spearman_long'))}, shorts {fmt.ratio(rl.get('spearman_short'))}).")
    return {"available": True, "text": text, "shares": shares}


def market_context(asset_id: str, m: dict) -> dict:
    rows = [_row_ctx(r) for r in m.get("summary", [])]
    both = [r for r in m.get("summary", []) if r.get("side") == "both" and not r.get("skipped")]
    head = next((r for r in both if r["horizon_h"] == 24), both[0] if both else None)
    rng = m.get("range", {})
    conf = m.get("confluence", {}) or {}
    return {
        "key": m["key"], "title": m.get("title", m["key"]), "is_sample": bool(m.get("is_sample")),
        "candles_from": m.get("candles_from", ""), "oi_from": m.get("oi_from", ""),
        "range": f"{fmt.fmt_time(rng.get('first_candle_ms'))} – {fmt.fmt_time(rng.get('last_candle_ms'))}",
        "eval_range": f"{fmt.fmt_time(rng.get('first_eval_ms'))} – {fmt.fmt_time(rng.get('last_eval_ms'))}",
        "hours": f"{rng.get('hours', 0):,.1f}",
        "eval_points": f"{rng.get('eval_points', 0):,}",
        "candles": f"{rng.get('candles', 0):,} × {rng.get('candle_interval_s', 0)} s",
        "rows": rows,
        "headline": None if head is None else _row_ctx(head),
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
            "cases": f"{r.get('cases', 0):,}", "n_eff": f"{r.get('n_eff', 0):,.1f}",
            "lift": fmt.ratio(r.get("score")), "lift_ci": fmt.ratio_ci(r.get("score_ci")),
            "hit": fmt.share(r.get("hit_rate")), "base": fmt.share(r.get("baseline_rate")),
            "is_default": r["name"] == v.get("default"), "is_winner": r["name"] == v.get("winner"),
        })
    return {"market": v.get("market", ""), "rows": rows, "winner": v.get("winner", ""), "best": v.get("best") or "–",
            "default": v.get("default", ""), "why": v.get("why", ""), "score": v.get("score", ""),
            "taker_available": bool(v.get("taker_available"))}


def asset_context(result: dict) -> dict:
    """Context of one asset (the ``acc_asset`` variable of ``_accuracy_section.md.j2``)."""
    return {
        "id": result["asset"], "name": result.get("name", result["asset"]), "symbol": result.get("symbol", ""),
        "markets": [market_context(result["asset"], m) for m in result.get("markets", [])],
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
        "window_points": f"{s.get('window_max_points', 720):,}",
        "warmup_h": f"{s.get('warmup_h', 6):g}",
        "top_k": s.get("top_k", 3),
        "min_cases": s.get("min_cases", 30),
        "price_bins": s.get("price_bins", 400),
        "span_pct": f"{s.get('span_pct', 15):g}",
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
        "pads": windows.PRICE_PAD, "vmax_pct": heatmap.VMAX_PERCENTILE, "hot_quantile": levels.HOT_QUANTILE,
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
