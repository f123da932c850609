"""The accuracy chart (pure): the headline comparison in, Vega-Lite dict out.

One chart per market: the lift of the model's clusters next to the OI placebo and the
naive levels (swing highs/lows, round numbers), per horizon, each a point with its 95 %
block-bootstrap interval. Lift 1 (a rule) is what an arbitrary level at the same
distance, in units of recent volatility, would score.
"""

from __future__ import annotations

from collections.abc import Sequence

import altair as alt

SERIES = ("model clusters", "OI placebo", "swing high/low", "round numbers")
KEYS = ("model", "placebo", "swing", "round")
COLOURS = ("#d81b1b", "#7f7f7f", "#1f77b4", "#2ca02c")


def _rows(comparison: Sequence[dict]) -> list[dict]:
    out = []
    for c in comparison:
        for name, key in zip(SERIES, KEYS):
            x = c.get(key) or {}
            ci = x.get("lift_ci") or [None, None]
            if x.get("skipped") or x.get("lift") is None or ci[0] is None:
                continue
            out.append({"horizon": f"{c['horizon_h']} h", "horizon_h": c["horizon_h"], "series": name,
                        "lift": round(float(x["lift"]), 3), "lo": round(float(ci[0]), 3),
                        "hi": round(float(ci[1]), 3), "cases": x.get("cases")})
    return out


def lift_spec(comparison: Sequence[dict], *, title: str = "", height: int = 240) -> dict:
    """Lift by horizon for the model, the placebo and the naive levels, with 95 % error bars.

    ``comparison``: the ``comparison`` rows of a market's backtest (rows without an
    interval are left out).
    """
    rows = _rows(comparison)
    order = [f"{h} h" for h in sorted({r["horizon_h"] for r in rows})]
    base = alt.Chart(alt.NamedData("lifts")).encode(
        x=alt.X("horizon:N", sort=order, title="horizon", axis=alt.Axis(labelAngle=0)),
        xOffset=alt.XOffset("series:N", sort=list(SERIES)),
        color=alt.Color("series:N", sort=list(SERIES), title=None,
                        scale=alt.Scale(domain=list(SERIES), range=list(COLOURS)),
                        legend=alt.Legend(orient="bottom")),
    )
    tooltip = [alt.Tooltip("series:N"), alt.Tooltip("horizon:N"), alt.Tooltip("lift:Q", format=".2f"),
               alt.Tooltip("lo:Q", format=".2f", title="95 % low"), alt.Tooltip("hi:Q", format=".2f", title="95 % high"),
               alt.Tooltip("cases:Q")]
    bars = base.mark_errorbar(ticks={"size": 10}, thickness=1.5).encode(
        y=alt.Y("lo:Q", title="lift (1 = any level at the same distance)"), y2="hi:Q")
    points = base.mark_point(filled=True, size=60).encode(y="lift:Q", tooltip=tooltip)
    one = alt.Chart(alt.NamedData("one")).mark_rule(strokeDash=[4, 4], color="#444").encode(y="y:Q")
    spec = alt.layer(one, bars, points).to_dict(validate=False)
    spec["datasets"] = {"lifts": rows, "one": [{"y": 1.0}]}
    spec.update(width="container", height=height, autosize={"type": "fit-x", "contains": "padding"})
    if title:
        spec["title"] = {"text": title, "subtitle": "points: lift; bars: 95 % block-bootstrap interval"}
    return spec


# -- page context ----------------------------------------------------------------
# Every number is formatted here, so the templates need no custom filters and
# render the same under any Jinja environment (autoescaped, StrictUndefined).

def chart_file(asset_id: str, market_key: str) -> str:
    return f"{asset_id}-{market_key}.json"


def chart_specs(results) -> dict[str, dict]:
    """{file name: Vega-Lite spec} for every market: lift of the model, the placebo and naive levels by horizon."""
    out = {}
    for r in results:
        for m in r.get("markets", []):
            title = f"{r.get('name', r['asset'])} ({m['key']}): model vs placebo vs naive levels"
            out[chart_file(r["asset"], m["key"])] = lift_spec(m.get("comparison", []), title=title)
    return out
