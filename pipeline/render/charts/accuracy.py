"""Presentation of backtest results (pure): the accuracy chart spec and the page context.

Chart: backtest summary rows in, Vega-Lite dict out.

One chart: hit rate of the model's clusters next to the distance-matched
baseline, per horizon, each a point with a 95 % Wilson error bar. The bars use
the dependence-adjusted interval (effective independent cases) by default,
because hourly points with long horizons overlap; the naive interval would
look more certain than the data are.

Context: :func:`accuracy_context` / :func:`asset_context` turn
``commands.backtest.run_for_asset`` results into plain strings for
``site/templates/accuracy.md.j2`` and ``_accuracy_section.md.j2``.
"""

from __future__ import annotations

import datetime as _dt
import math as _math
from collections.abc import Sequence

import altair as alt

SERIES = ("model clusters", "baseline (same distance)")
COLOURS = ("#d81b1b", "#7f7f7f")


def _rows(summary: Sequence[dict], side: str, interval: str) -> list[dict]:
    suffix = "_eff" if interval == "eff" else ""
    out = []
    for r in summary:
        if r.get("side") != side or r.get("skipped"):
            continue
        label = f"{r['horizon_h']} h"
        for name, rate, ci in (
            (SERIES[0], r.get("hit_rate"), r.get(f"hit_ci{suffix}")),
            (SERIES[1], r.get("baseline_rate"), r.get(f"baseline_ci{suffix}")),
        ):
            if rate is None or not ci or ci[0] is None:
                continue
            out.append({
                "horizon": label, "horizon_h": r["horizon_h"], "series": name,
                "rate": round(float(rate), 4), "lo": round(float(ci[0]), 4), "hi": round(float(ci[1]), 4),
                "cases": r["cases"], "n_eff": r.get("n_eff"),
                "lift": None if r.get("lift") is None else round(float(r["lift"]), 3),
            })
    return out


def hit_rate_spec(summary: Sequence[dict], *, side: str = "both", interval: str = "eff",
                  title: str = "", height: int = 260) -> dict:
    """Hit rate vs baseline by horizon with 95 % error bars.

    ``summary``: rows from :func:`pipeline.backtest.summarize` (skipped rows are
    left out). ``side``: "both" | "above" | "below". ``interval``: "eff" for the
    dependence-adjusted interval, "naive" for the per-case one.
    """
    rows = _rows(summary, side, interval)
    order = [f"{h} h" for h in sorted({r["horizon_h"] for r in rows})]
    base = alt.Chart(alt.NamedData("rates")).encode(
        x=alt.X("horizon:N", sort=order, title="horizon", axis=alt.Axis(labelAngle=0)),
        xOffset=alt.XOffset("series:N", sort=list(SERIES)),
        color=alt.Color("series:N", sort=list(SERIES), title=None,
                        scale=alt.Scale(domain=list(SERIES), range=list(COLOURS)),
                        legend=alt.Legend(orient="bottom")),
    )
    tooltip = [
        alt.Tooltip("series:N"), alt.Tooltip("horizon:N"),
        alt.Tooltip("rate:Q", format=".1%", title="rate"),
        alt.Tooltip("lo:Q", format=".1%", title="95 % low"),
        alt.Tooltip("hi:Q", format=".1%", title="95 % high"),
        alt.Tooltip("cases:Q"), alt.Tooltip("n_eff:Q", title="effective cases"),
        alt.Tooltip("lift:Q", title="lift"),
    ]
    bars = base.mark_errorbar(ticks={"size": 12}, thickness=1.5).encode(
        y=alt.Y("lo:Q", title="share of clusters touched", axis=alt.Axis(format="%"),
                scale=alt.Scale(domain=[0, 1])),
        y2="hi:Q",
    )
    points = base.mark_point(filled=True, size=70).encode(y="rate:Q", tooltip=tooltip)
    spec = alt.layer(bars, points).to_dict(validate=False)
    spec["datasets"] = {"rates": rows}
    spec.update(width="container", height=height, autosize={"type": "fit-x", "contains": "padding"})
    if title:
        spec["title"] = {"text": title, "subtitle": "points: share touched; bars: 95 % Wilson interval on the "
                         + ("effective independent cases" if interval == "eff" else "cases")}
    return spec


# -- page context ----------------------------------------------------------------
# Every number is formatted here, so the templates need no custom filters and
# render the same under any Jinja environment (autoescaped, StrictUndefined).

SIDE_LABELS = {"above": "above price (shorts)", "below": "below price (longs)", "both": "both sides"}


def _ok(x) -> bool:
    return x is not None and isinstance(x, (int, float)) and _math.isfinite(x)


def fmt_pct(x, digits: int = 1) -> str:
    return f"{100 * x:.{digits}f} %" if _ok(x) else "–"


def fmt_ci(ci, digits: int = 1) -> str:
    if not ci or not _ok(ci[0]) or not _ok(ci[1]):
        return "–"
    return f"{100 * ci[0]:.{digits}f}–{100 * ci[1]:.{digits}f} %"


def fmt_ratio(x) -> str:
    return f"{x:.2f}" if _ok(x) else "–"


def fmt_ratio_ci(ci) -> str:
    if not ci or not _ok(ci[0]) or not _ok(ci[1]):
        return "–"
    hi = f"{ci[1]:.2f}" if ci[1] < 100 else f"{ci[1]:.0f}"
    return f"{ci[0]:.2f}–{hi}"


def fmt_time(ms) -> str:
    if not _ok(ms):
        return "–"
    return _dt.datetime.fromtimestamp(ms / 1000, _dt.UTC).strftime("%Y-%m-%d %H:%M UTC")


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
        "hit": "–" if skipped else fmt_pct(r.get("hit_rate")),
        "hit_ci": "–" if skipped else fmt_ci(r.get("hit_ci")),
        "hit_ci_eff": "–" if skipped else fmt_ci(r.get("hit_ci_eff")),
        "base": "–" if skipped else fmt_pct(r.get("baseline_rate")),
        "base_ci": "–" if skipped else fmt_ci(r.get("baseline_ci")),
        "base_ci_eff": "–" if skipped else fmt_ci(r.get("baseline_ci_eff")),
        "lift": "–" if skipped else fmt_ratio(r.get("lift")),
        "lift_ci": "–" if skipped else fmt_ratio_ci(r.get("lift_ci_eff")),
        "near": "–" if skipped else f"{r.get('median_near_pct', float('nan')):.2f} %",
        "width": "–" if skipped else f"{r.get('median_width_pct', float('nan')):.2f} %",
    }


def chart_file(asset_id: str, market_key: str) -> str:
    return f"{asset_id}-{market_key}.json"


def _realized_ctx(rl: dict) -> dict:
    if not rl or not rl.get("available"):
        return {"available": False, "text": (rl or {}).get("reason", "no realized liquidations stored"), "shares": []}
    shares = [{"band": f"± {k} %", "share": fmt_pct(v)} for k, v in (rl.get("share_within_pct") or {}).items()]
    text = (f"{rl['realized_orders']:,} realized liquidation orders over {rl['hours']} hours "
            f"({fmt_time(rl['first_ms'])} – {fmt_time(rl['last_ms'])}). Hourly modelled vs realized notional: "
            f"Pearson {fmt_ratio(rl.get('pearson'))}, Spearman {fmt_ratio(rl.get('spearman'))} "
            f"(longs {fmt_ratio(rl.get('spearman_long'))}, shorts {fmt_ratio(rl.get('spearman_short'))}).")
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
        "range": f"{fmt_time(rng.get('first_candle_ms'))} – {fmt_time(rng.get('last_candle_ms'))}",
        "eval_range": f"{fmt_time(rng.get('first_eval_ms'))} – {fmt_time(rng.get('last_eval_ms'))}",
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
            "lift": fmt_ratio(r.get("score")), "lift_ci": fmt_ratio_ci(r.get("score_ci")),
            "hit": fmt_pct(r.get("hit_rate")), "base": fmt_pct(r.get("baseline_rate")),
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
    """Context of ``accuracy.md.j2`` (variable ``acc``) from ``run_for_asset`` results."""
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


def chart_specs(results) -> dict[str, dict]:
    """{file name: Vega-Lite spec} for every market: hit rate vs baseline by horizon (both sides)."""
    out = {}
    for r in results:
        for m in r.get("markets", []):
            title = f"{r.get('name', r['asset'])} ({m['key']}): clusters touched vs same-distance baseline"
            out[chart_file(r["asset"], m["key"])] = hit_rate_spec(m.get("summary", []), title=title)
    return out
