"""The liquidation map spec (pure): bars per price bin stacked by leverage tier, from the current level book.

Cumulative long liquidations from the price downward and short liquidations from
the price upward (right axis); a rule at the price.
"""

from __future__ import annotations

import altair as alt
import numpy as np

from pipeline.render.charts.colour import lut_hex
from pipeline.render.charts.heatmap import MONEY_LABELS, _finish, _sig, money_expr, price_format


def _altair_finish(chart, title: str, height: int, datasets: dict[str, list]) -> dict:
    # Data and top-level properties are set on the dict: Altair validates inline values and
    # .properties() against the full JSON schema, which costs far more than building the spec.
    return _finish(chart.to_dict(validate=False), title, height, datasets)


def liquidation_map_spec(
    book: dict,
    price: float,
    price_lo: float,
    price_hi: float,
    *,
    bins: int = 120,
    title: str = "",
    height: int = 360,
) -> dict:
    """Vega-Lite spec of the liquidation map of ``book`` (arrays: price, side, leverage, notional_usd)."""
    p = np.asarray(book.get("price", []), float)
    side = np.asarray(book.get("side", []), float)
    lev = np.asarray(book.get("leverage", []), float)
    v = np.asarray(book.get("notional_usd", []), float)
    edges = np.linspace(price_lo, price_hi, bins + 1)
    inside = np.isfinite(p) & (p >= price_lo) & (p < price_hi) & (v > 0)
    levels = sorted({float(x) for x in lev[np.isfinite(lev)]}) or [1.0]
    b = np.clip(((p[inside] - price_lo) / (price_hi - price_lo) * bins).astype(int), 0, bins - 1)
    li = np.searchsorted(levels, lev[inside])
    stack = np.zeros((bins, len(levels)))
    np.add.at(stack, (b, li), v[inside])
    long_bin = np.zeros(bins)
    short_bin = np.zeros(bins)
    np.add.at(long_bin, b[side[inside] > 0], v[inside][side[inside] > 0])
    np.add.at(short_bin, b[side[inside] < 0], v[inside][side[inside] < 0])

    def lev_label(x: float) -> str:
        return f"{x:g}x"

    bar_rows = [
        {"lo": _sig(edges[i]), "hi": _sig(edges[i + 1]), "lev": lev_label(levels[j]), "o": j, "v": round(float(stack[i, j]))}
        for i in range(bins) for j in range(len(levels)) if stack[i, j] > 0
    ]
    mids = 0.5 * (edges[:-1] + edges[1:])
    below = np.flatnonzero(mids < price)
    above = np.flatnonzero(mids >= price)
    curve = []
    # Longs: accumulated from the price downward; shorts: from the price upward.
    cum_long = np.cumsum(long_bin[below][::-1])[::-1]
    curve += [{"p": _sig(price), "c": 0, "s": "Cumulative long liquidations"}]
    curve += [{"p": _sig(edges[i]), "c": round(float(c)), "s": "Cumulative long liquidations"}
              for i, c in zip(below[::-1], cum_long[::-1])]
    cum_short = np.cumsum(short_bin[above])
    curve += [{"p": _sig(price), "c": 0, "s": "Cumulative short liquidations"}]
    curve += [{"p": _sig(edges[i + 1]), "c": round(float(c)), "s": "Cumulative short liquidations"}
              for i, c in zip(above, cum_short)]

    pfmt = price_format(price)
    x_scale = alt.Scale(domain=[float(price_lo), float(price_hi)], nice=False, zero=False)
    lev_range = [lut_hex(t) for t in np.linspace(0.25, 1.0, len(levels))]
    bars = (
        alt.Chart(alt.Data(name="bars"))
        .transform_calculate(vt=money_expr("datum.v"))
        .mark_bar()
        .encode(
            x=alt.X("lo:Q", bin="binned", scale=x_scale, axis=alt.Axis(title="Price (USD)", format=pfmt)),
            x2="hi:Q",
            y=alt.Y("v:Q", stack="zero", axis=alt.Axis(title="Liquidation notional per bin (USD)", labelExpr=MONEY_LABELS)),
            color=alt.Color("lev:N", scale=alt.Scale(domain=[lev_label(x) for x in levels], range=lev_range),
                            # Below the plot: at the side it would take a third of a phone's width.
                            legend=alt.Legend(title="Leverage", orient="bottom", direction="horizontal")),
            order=alt.Order("o:Q"),
            tooltip=[
                alt.Tooltip("lo:Q", title="From", format=pfmt),
                alt.Tooltip("hi:Q", title="To", format=pfmt),
                alt.Tooltip("lev:N", title="Leverage"),
                alt.Tooltip("vt:N", title="Notional"),
            ],
        )
    )
    curves = (
        alt.Chart(alt.Data(name="curves"))
        .transform_calculate(ct=money_expr("datum.c"))
        .mark_line(strokeWidth=2)
        .encode(
            x=alt.X("p:Q", scale=x_scale),
            y=alt.Y("c:Q", axis=alt.Axis(title="Cumulative (USD)", labelExpr=MONEY_LABELS, orient="right")),
            color=alt.Color("s:N", scale=alt.Scale(domain=["Cumulative long liquidations", "Cumulative short liquidations"],
                                                   range=["#1f77b4", "#c2185b"]),
                            legend=alt.Legend(title=None, orient="top")),
            order="p:Q",
            tooltip=[alt.Tooltip("s:N", title=" "), alt.Tooltip("p:Q", title="Price", format=pfmt),
                     alt.Tooltip("ct:N", title="Cumulative")],
        )
    )
    rule = (
        alt.Chart(alt.Data(name="price"))
        .mark_rule(color="#888", strokeDash=[4, 3], strokeWidth=1.5)
        .encode(x=alt.X("p:Q", scale=x_scale), tooltip=[alt.Tooltip("label:N", title=" "),
                                                         alt.Tooltip("p:Q", title="Price", format=pfmt)])
    )
    datasets = {"bars": bar_rows, "curves": curve, "price": [{"p": _sig(price, 7), "label": "Current price"}]}
    chart = alt.layer(bars, rule, curves).resolve_scale(y="independent", color="independent")
    return _altair_finish(chart, title, height, datasets)
