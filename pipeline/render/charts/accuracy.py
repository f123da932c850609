"""The accuracy chart (pure): backtest summary rows in, Vega-Lite dict out.

One chart: hit rate of the model's clusters next to the distance-matched
baseline, per horizon, each a point with a 95 % Wilson error bar. The bars use
the dependence-adjusted interval (effective independent cases) by default,
because hourly points with long horizons overlap; the naive interval would
look more certain than the data are.
"""

from __future__ import annotations

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

def chart_file(asset_id: str, market_key: str) -> str:
    return f"{asset_id}-{market_key}.json"


def chart_specs(results) -> dict[str, dict]:
    """{file name: Vega-Lite spec} for every market: hit rate vs baseline by horizon (both sides)."""
    out = {}
    for r in results:
        for m in r.get("markets", []):
            title = f"{r.get('name', r['asset'])} ({m['key']}): clusters touched vs same-distance baseline"
            out[chart_file(r["asset"], m["key"])] = hit_rate_spec(m.get("summary", []), title=title)
    return out
