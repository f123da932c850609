"""Heatmap and liquidation-map chart specs (pure: numpy in, Vega-Lite spec dicts out; no I/O).

The colour table and the PNG images are :mod:`.colour`; the liquidation map is :mod:`.liqmap`.

Heatmap
    The grid (time columns x price bins, up to ~1000 x 400 cells) is coloured
    here with numpy and shipped as ONE palette PNG inside a ``data:`` URL, drawn
    by an Altair ``mark_image`` layer on real time/price axes. Shipping the cells
    as JSON rows instead was measured at 5.3 MB / 1.9 s render per chart against
    115 KB / 0.46 s for the image, so cells never become rows. On top: candles
    at the column width, the current price tagged on the price axis, the key
    levels as labelled lines, realized liquidations as dots, and a colour legend
    (a two-row layer that only carries the colour scale). The exact cell values
    travel compactly in ``usermeta`` for the page's crosshair (site/static/js/charts.js),
    so the value shown is the drawn bin's, in the legend's unit. The spec is a
    plain dict: Altair's schema machinery cost about 0.13 s per chart.

Context panels
    Beneath the heatmap, on the same (shared) time scale, optional panels for
    open interest, funding and RSI: one narrow row each, titled above the row,
    the (right-hand) y axes of all rows given the same width so the plot areas line up. Panel values sit on the
    heatmap's evenly spaced time columns, so rows carry only a column index and
    a value; the time is computed in the spec.
"""

from __future__ import annotations

import base64
import math
import zlib
from dataclasses import dataclass

import numpy as np

from pipeline.render.charts.colour import LEGEND_STOPS, colour_scale_vmax, data_url, heatmap_png, lut_hex

TOOLTIP_COLS = 60
TOOLTIP_ROWS = 40
Y_AXIS_PX = 48  # fixed y-axis width of every row, so stacked rows share one plot area
PANEL_HEIGHT = 64


@dataclass(frozen=True)
class Panel:
    """A context row under the heatmap: one value per heatmap column (NaN = gap)."""

    title: str  # y-axis title
    values: np.ndarray
    fmt: str  # d3 format of the values
    kind: str = "line"  # "line", or "bar" (bars coloured by sign, for funding)
    rules: tuple[float, ...] = ()  # reference lines (RSI 30/70, funding 0)
    domain: tuple[float, float] | None = None
    note: str = ""  # said after the title (how the row was made)


# -- helpers ------------------------------------------------------------------
def _sig(x: float, digits: int = 6) -> float:
    return float(f"{x:.{digits}g}")


def money_expr(x: str) -> str:
    """A Vega expression formatting the number ``x`` as the site's tables do: $1.23B, $45.6M, $7.8k.
    (d3's "s" format would say G for billions.)"""
    return (f"(abs({x}) >= 1e9 ? format({x} / 1e9, '$,.3~r') + 'B' : abs({x}) >= 1e6 ? format({x} / 1e6, '$.3~r') + 'M'"
            f" : abs({x}) >= 1e3 ? format({x} / 1e3, '$.3~r') + 'k' : format({x}, '$.3~r'))")


MONEY_LABELS = money_expr("datum.value")


def price_format(price: float) -> str:
    """A d3 format for prices of this magnitude (BTC needs no cents, XRP needs four decimals)."""
    if price >= 1000:
        return "$,.0f"
    if price >= 10:
        return "$,.2f"
    return "$,.4f"


def price_digits(price: float) -> int:
    return 0 if price >= 1000 else 2 if price >= 10 else 4


_TIME_AXIS = {"title": None, "format": "%d %b %H:%M", "labelAngle": 0, "labelOverlap": True, "labelSeparation": 8,
              "labelFlush": True, "tickCount": {"expr": "width < 500 ? 3 : 7"}}


def _finish(spec: dict, title: str, height: int, datasets: dict[str, list]) -> dict:
    spec["datasets"] = datasets
    spec["autosize"] = {"type": "fit-x", "contains": "padding"}
    if "vconcat" in spec:  # each row takes the container's width; heights are the rows' own
        for row in spec["vconcat"]:
            row["width"] = "container"
    else:
        spec.update(width="container", height=height)
    if title:
        spec["title"] = {"text": title, "anchor": "start", "fontSize": 13, "limit": {"expr": "width"}}
    return spec


VALUE_STEPS = (1.01, 1.02, 1.05, 1.1, 1.25, 1.5)  # crosshair values: 1 % apart on a log scale, coarser if need be
VALUE_FLOOR = 1e-6  # cells under a millionth of the largest read as 0
VALUE_BUDGET = 300_000  # characters of one grid's value blob (noise compresses badly: coarser steps then)


def _values_blob(g: np.ndarray) -> list:
    """The grid's cell values for the page's crosshair, compactly: uint16 codes
    ``1 + round(log(v / vtop) / log(step)) + offset`` (0 = empty), bin-major
    (row j = price bin j from the bottom), differenced along time (bands change
    slowly along time, so most differences are zero), zlib, base64. With step 1.01
    the value shown is off by at most 0.5 %; exact values as uint16 square-root codes
    were 5x larger (133 KB against 23 KB on the sample's 3-day window). A grid whose
    blob would exceed ``VALUE_BUDGET`` gets a coarser step. Returns [blob, vtop, step,
    offset]; charts.js decodes it."""
    vtop = float(g.max()) if g.size and g.max() > 0 else 1.0
    with np.errstate(divide="ignore"):
        ln = np.log(np.maximum(g, 1e-300) / vtop)
    for step in VALUE_STEPS:
        offset = math.ceil(-math.log(VALUE_FLOOR) / math.log(step))
        codes = np.where(g >= vtop * VALUE_FLOOR, 1 + np.round(ln / math.log(step)) + offset, 0)
        codes = codes.astype(np.uint16).T  # (k, m)
        delta = codes.copy()
        delta[:, 1:] = codes[:, 1:] - codes[:, :-1]  # wraps mod 2**16; undone by a cumulative sum
        raw = delta.astype("<u2").tobytes()
        # zlib level 6 first: level 9 searches its match chains to the end on these sparse codes
        # (0.1 to 0.8 s per grid against 2 to 50 ms, for blobs about a fifth smaller). Level 9 is
        # tried before a coarser step, so the step (the values shown) is the one level 9 chose.
        blob = base64.b64encode(zlib.compress(raw, 6)).decode("ascii")
        if len(blob) <= VALUE_BUDGET:
            break
        blob = base64.b64encode(zlib.compress(raw, 9)).decode("ascii")
        if len(blob) <= VALUE_BUDGET:
            break
    return [blob, vtop, step, offset]


def decode_values(entry: list, m: int, k: int) -> np.ndarray:
    """Inverse of :func:`_values_blob` (what charts.js does): the (m, k) values the crosshair shows."""
    blob, vtop, step, offset = entry
    delta = np.frombuffer(zlib.decompress(base64.b64decode(blob)), "<u2").reshape(k, m)
    codes = np.cumsum(delta, axis=1, dtype=np.uint64).astype(np.uint16).astype(float)
    return np.where(codes > 0, vtop * step ** (codes - 1 - offset), 0.0).T


def _x(field: str, axis=None, **extra) -> dict:
    enc = {"field": field, "type": "temporal", "scale": {"type": "utc", "nice": False}}
    if axis is not None:
        enc["axis"] = axis
    return {**enc, **extra}


def _calc(expr: str, name: str) -> dict:
    return {"calculate": expr, "as": name}


# -- heatmap ------------------------------------------------------------------
def heatmap_spec(
    grid: np.ndarray,
    col_end_ms: np.ndarray,
    price_edges: np.ndarray,
    price_ms: np.ndarray,
    price: np.ndarray,
    *,
    title: str = "",
    height: int = 420,
    panels: list[Panel] | tuple[Panel, ...] = (),
    ohlc: np.ndarray | None = None,
    bands: dict[str, tuple[str, np.ndarray]] | None = None,
    clusters: list[dict] | None = None,
    realized: dict[str, np.ndarray] | None = None,
) -> dict:
    """Vega-Lite spec of a liquidation heatmap, built as a plain dict (Altair's schema
    machinery cost about 0.13 s per chart even with ``validate=False``).

    ``grid``: (m, k) notional per (time column, price bin); column j ends at
    ``col_end_ms[j]`` (epoch ms); ``price_edges`` ascending (k+1). ``price_ms`` /
    ``price``: the close per column (the current price is the last finite one).
    ``ohlc``: (m, 4) candles at the column width, drawn over the map. ``bands``:
    leverage filter, key -> (label, (m, k) grid), each its own image on the same colour
    scale, chosen by a select under the chart. ``clusters``: key levels to mark
    (dicts with side, rank, price_low, price_high, notional_usd). ``realized``: stored
    liquidations (time_ms, side, price, notional_usd) drawn as dots.
    ``panels``: context rows drawn beneath on the same time axis (m values each;
    panels with no finite value are left out).

    Zoom and pan (wheel, drag, pinch) are bound to both scales of the map; a double
    click resets. The map carries no Vega tooltips: ``usermeta.liqmap`` holds the
    exact cell values and the grid geometry, and charts.js draws the crosshair and
    shows the value of the bin under the pointer (or the tap).
    """
    g = np.nan_to_num(np.asarray(grid, float), nan=0.0)
    ends = np.asarray(col_end_ms, dtype=np.int64)
    edges = np.asarray(price_edges, float)
    m, k = g.shape
    if ends.shape != (m,) or edges.shape != (k + 1,):
        raise ValueError("grid, col_end_ms and price_edges disagree in shape")
    step = int(ends[1] - ends[0]) if m > 1 else 60_000
    t0, t1 = int(ends[0] - step), int(ends[-1])
    p0, p1 = float(edges[0]), float(edges[-1])
    vmax = colour_scale_vmax(g)
    rows = [p for p in panels if np.isfinite(np.asarray(p.values, float)).any()]
    if any(np.asarray(p.values).shape != (m,) for p in rows):
        raise ValueError("a panel needs one value per time column")
    pm = np.asarray(price_ms, dtype=np.int64)
    pv = np.asarray(price, float)
    ok = np.isfinite(pv) & (pm >= t0) & (pm <= t1)
    last = float(pv[ok][-1]) if ok.any() else math.nan
    pfmt = price_format(last if math.isfinite(last) else 0.5 * (p0 + p1))

    images = [{"band": "all", "a": t0, "b": t1, "lo": p0, "hi": p1, "url": data_url(heatmap_png(g, vmax)[0])}]
    values = {"all": _values_blob(g)}
    band_options = []
    for key, (label, bg) in (bands or {}).items():
        bg = np.nan_to_num(np.asarray(bg, float), nan=0.0)
        if bg.shape != (m, k):
            raise ValueError(f"leverage band {key!r} does not match the grid")
        images.append({"band": key, "a": t0, "b": t1, "lo": p0, "hi": p1, "url": data_url(heatmap_png(bg, vmax)[0])})
        values[key] = _values_blob(bg)
        band_options.append((key, label))

    y_scale = {"domain": [p0, p1], "nice": False, "zero": False}
    x_clip: dict = {}  # no explicit domain: the image spans it exactly (a numeric domain on a temporal field warns)
    price_axis = {"title": None, "format": pfmt, "orient": "right", "labelFontSize": 10, "tickCount": 6,
                  **_fixed_width()}
    image = {
        "data": {"name": "image"},
        "mark": {"type": "image", "aspect": False, "align": "left", "baseline": "bottom", "clip": True},
        "encoding": {
            "x": _x("a", _TIME_AXIS if not rows else {**_TIME_AXIS, "labels": False, "ticks": False}, **x_clip),
            "x2": {"field": "b"},
            "y": {"field": "lo", "type": "quantitative", "scale": y_scale, "axis": price_axis},
            "y2": {"field": "hi"},
            "url": {"field": "url", "type": "nominal"},
        },
        # Zoom and pan on both axes; a double click resets (Vega-Lite's default for scale bindings).
        "params": [{"name": "zoom", "select": {"type": "interval", "encodings": ["x", "y"]}, "bind": "scales"}],
    }
    image["transform"] = [{"filter": "datum.band == lev"}] if band_options else [{"filter": "datum.band == 'all'"}]

    stops = np.linspace(0, 1, LEGEND_STOPS)
    legend = {
        "data": {"name": "legend"},
        "mark": {"type": "point", "opacity": 0},
        "encoding": {"color": {
            "field": "v", "type": "quantitative",
            "scale": {"type": "sqrt", "domain": [0, _sig(vmax) if vmax > 0 else 1.0],
                      "range": [lut_hex(s) for s in stops], "clamp": True},
            "legend": {"title": "Est. liquidations per bin", "labelExpr": MONEY_LABELS, "orient": "top",
                       "direction": "horizontal", "gradientLength": {"expr": "min(220, width * 0.55)"},
                       "gradientThickness": 8, "titleFontSize": 10, "labelFontSize": 9, "titleLimit": 200,
                       "tickCount": 4, "offset": 4},
        }},
    }
    layers = [image, legend]
    datasets: dict[str, list] = {
        "image": images,
        "legend": [{"v": 0.0}, {"v": _sig(vmax) if vmax > 0 else 1.0}],
    }

    if ohlc is not None:
        o = np.asarray(ohlc, float)
        if o.shape != (m, 4):
            raise ValueError("ohlc needs (open, high, low, close) per time column")
        good = np.flatnonzero(np.isfinite(o).all(axis=1))
        nd = price_digits(last if math.isfinite(last) else p0) + 2
        datasets["candles"] = [{"i": int(i), "o": round(float(o[i, 0]), nd), "h": round(float(o[i, 1]), nd),
                                "l": round(float(o[i, 2]), nd), "c": round(float(o[i, 3]), nd)} for i in good]
        base = [_calc(f"{t0} + datum.i * {step}", "a"), _calc(f"{t0} + (datum.i + 0.5) * {step}", "mid"),
                _calc(f"{t0} + (datum.i + 0.15) * {step}", "a2"), _calc(f"{t0} + (datum.i + 0.85) * {step}", "b2")]
        colour = {"condition": {"test": "datum.c >= datum.o", "value": "#26a69a"}, "value": "#ef5350"}
        layers.append({"data": {"name": "candles"}, "transform": base, "mark": {"type": "rule", "clip": True},
                       "encoding": {"x": _x("mid"), "y": {"field": "l", "type": "quantitative"},
                                    "y2": {"field": "h"}, "color": colour}})
        layers.append({"data": {"name": "candles"}, "transform": base, "mark": {"type": "bar", "clip": True},
                       "encoding": {"x": _x("a2"), "x2": {"field": "b2"}, "y": {"field": "o", "type": "quantitative"},
                                    "y2": {"field": "c"}, "color": colour}})
    elif ok.any():  # no candles: the close as a line
        datasets["price"] = [{"t": int(a), "p": _sig(b, 7)} for a, b in zip(pm[ok], pv[ok])]
        layers.append({"data": {"name": "price"}, "mark": {"type": "line", "color": "#ffffff", "strokeWidth": 1.4,
                                                          "interpolate": "step-after", "clip": True},
                       "encoding": {"x": _x("t"), "y": {"field": "p", "type": "quantitative"}}})

    if clusters:
        marks = []
        for c in sorted(clusters, key=lambda c: c["rank"]):
            mid = 0.5 * (c["price_low"] + c["price_high"])
            if not p0 <= mid <= p1:
                continue
            tag = ("S" if c["side"] == "short" else "L") + str(c["rank"])
            # A label closer than 3 % of the axis to a larger level's would print over it: line only.
            crowded = any(abs(mid - x["p"]) < 0.03 * (p1 - p0) for x in marks if x["tag"])
            marks.append({"p": _sig(mid, 7), "s": c["side"], "v": float(c["notional_usd"]),
                          "tag": "" if crowded else tag})
        if marks:
            datasets["clusters"] = marks
            side_colour = {"condition": {"test": "datum.s == 'short'", "value": "#ff80ab"}, "value": "#80d8ff"}
            layers.append({"data": {"name": "clusters"}, "mark": {"type": "rule", "strokeDash": [5, 3],
                                                                 "strokeWidth": 1.2, "clip": True},
                           "encoding": {"y": {"field": "p", "type": "quantitative"}, "color": side_colour}})
            tag = {"data": {"name": "clusters"},
                   "transform": [{"filter": "datum.tag != ''"},
                                 _calc(f"datum.tag + ' ' + {money_expr('datum.v')}", "label")],
                   "encoding": {"x": {"value": 0}, "y": {"field": "p", "type": "quantitative"},
                                "text": {"field": "label"}}}
            text = {"type": "text", "align": "left", "baseline": "bottom", "dx": 3, "dy": -1, "fontSize": 10,
                    "fontWeight": "bold"}
            # A dark halo under the label keeps it readable on the bright (yellow, red) bands.
            layers.append({**tag, "mark": {**text, "stroke": "#111", "strokeWidth": 3, "strokeJoin": "round",
                                           "color": "#111"}})
            layers.append({**tag, "mark": text, "encoding": {**tag["encoding"], "color": side_colour}})

    if realized is not None and np.asarray(realized.get("time_ms", [])).size:
        rt = np.asarray(realized["time_ms"], np.int64)
        rp = np.asarray(realized["price"], float)
        rv = np.asarray(realized["notional_usd"], float)
        rs = np.asarray(realized["side"]).astype(str)
        keep = (rt >= t0) & (rt <= t1) & np.isfinite(rp) & np.isfinite(rv)
        datasets["realized"] = [{"t": int(a), "p": _sig(b, 7), "v": round(float(c)), "s": str(d)}
                                for a, b, c, d in zip(rt[keep], rp[keep], rv[keep], rs[keep])]
        if datasets["realized"]:
            layers.append({
                "data": {"name": "realized"},
                "transform": [_calc(money_expr("datum.v"), "vt"),
                              _calc("utcFormat(datum.t, '%d %b %H:%M') + ' UTC'", "when")],
                "mark": {"type": "circle", "opacity": 0.85, "stroke": "#000", "strokeWidth": 0.5, "clip": True},
                "encoding": {
                    "x": _x("t"), "y": {"field": "p", "type": "quantitative"},
                    "size": {"field": "v", "type": "quantitative", "scale": {"type": "sqrt", "range": [6, 160]},
                             "legend": None},
                    "color": {"condition": {"test": "datum.s == 'long'", "value": "#ff1744"}, "value": "#00e676"},
                    "tooltip": [{"field": "s", "title": "Realized liquidation"},
                                {"field": "p", "type": "quantitative", "title": "Price", "format": pfmt},
                                {"field": "vt", "title": "Notional"}, {"field": "when", "title": "Time"}],
                },
            })

    if math.isfinite(last):
        datasets["now"] = [{"p": _sig(last, 7)}]
        label = {"data": {"name": "now"}, "transform": [_calc(f"format(datum.p, '{pfmt}')", "label")],
                 "encoding": {"x": {"value": "width"}, "y": {"field": "p", "type": "quantitative"},
                              "text": {"field": "label"}}}
        layers.append({"data": {"name": "now"}, "mark": {"type": "rule", "color": "#ffffff", "strokeDash": [2, 2],
                                                        "strokeWidth": 1, "clip": True},
                       "encoding": {"y": {"field": "p", "type": "quantitative"}}})
        # The current price as a tag against the price axis (inside the plot: Vega-Lite clips every
        # mark of a zoomable view): a thick rounded stroke behind the text makes the tag.
        for extra in ({"stroke": "#ffd600", "strokeWidth": 13, "strokeJoin": "round", "color": "#ffd600"},
                      {"color": "#000000"}):
            layers.append({**label, "mark": {"type": "text", "align": "right", "baseline": "middle", "dx": -6,
                                             "fontSize": 10, "fontWeight": "bold", **extra}})

    heat = {"height": height, "layer": layers}
    meta = {"t0": t0, "step": step, "m": m, "k": k, "p0": p0, "p1": p1, "values": values,
            "price_format": pfmt, "unit": "per bin", "candles": ohlc is not None}
    if not rows:
        spec = {"$schema": SCHEMA, **heat}
        height_total = height
    else:
        vrows = [heat]
        for n, panel in enumerate(rows):
            name = f"panel{n}"
            datasets[name] = _panel_rows(panel.values)
            vrows.append(_panel_chart(panel, name, t0, step, last=n == len(rows) - 1))
        # x shared: one time scale for the map and its panels (zooming the map zooms them);
        # colour independent: the funding bars' sign colours must not join the heatmap's legend.
        spec = {"$schema": SCHEMA, "vconcat": vrows, "spacing": 4,
                "resolve": {"scale": {"x": "shared", "color": "independent"}}}
        height_total = height
    if band_options:
        spec["params"] = [{"name": "lev", "value": "all", "bind": {
            "input": "select", "name": "Leverage ", "options": ["all", *[b for b, _ in band_options]],
            "labels": ["All leverage", *[lbl for _, lbl in band_options]]}}]
    spec["usermeta"] = {"liqmap": meta}
    spec["padding"] = {"left": 2, "right": 2, "top": 4, "bottom": 4}  # a phone's width goes to the plot
    return _finish(spec, title, height_total, datasets)


SCHEMA = "https://vega.github.io/schema/vega-lite/v6.json"


def _fixed_width() -> dict:
    return {"minExtent": Y_AXIS_PX, "maxExtent": Y_AXIS_PX}


def _panel_rows(values: np.ndarray) -> list[dict]:
    v = np.asarray(values, float)
    return [{"i": int(i), "v": _sig(float(v[i]), 5)} for i in np.flatnonzero(np.isfinite(v))]


def _panel_chart(panel: Panel, name: str, t_start: int, step: int, *, last: bool) -> dict:
    """One context row; column ``i`` spans [t_start + i*step, t_start + (i+1)*step). Its title
    sits above the row rather than beside the axis, so a phone keeps the width for the plot."""
    axis = _TIME_AXIS if last else {"title": None, "labels": False, "ticks": False, "domain": False}
    money = panel.fmt == "money"
    y_axis = {"title": None, "tickCount": 3, "labelFontSize": 9, "orient": "right", **_fixed_width(),
              **({"labelExpr": MONEY_LABELS} if money else {"format": panel.fmt})}
    calc = [_calc(f"{t_start} + datum.i * {step}", "a"), _calc(f"{t_start} + (datum.i + 1) * {step}", "b"),
            _calc("utcFormat(datum.b, '%d %b %H:%M') + ' UTC'", "when")]
    if money:
        calc.append(_calc(money_expr("datum.v"), "vt"))
    value_tip = ({"field": "vt", "title": panel.title} if money
                 else {"field": "v", "type": "quantitative", "title": panel.title, "format": panel.fmt})
    tooltip = [value_tip, {"field": "when", "title": "At"}]
    if panel.kind == "bar":
        mark = {"data": {"name": name}, "transform": calc, "mark": {"type": "bar", "clip": True}, "encoding": {
            "x": _x("a", axis), "x2": {"field": "b"},
            "y": {"field": "v", "type": "quantitative", "scale": {"zero": True}, "axis": y_axis},
            "y2": {"datum": 0},
            "color": {"condition": {"test": "datum.v >= 0", "value": "#26a69a"}, "value": "#ef5350"},
            "tooltip": tooltip}}
    else:
        y_scale = {"zero": False, "nice": True} if panel.domain is None else {"domain": list(panel.domain)}
        mark = {"data": {"name": name}, "transform": calc,
                "mark": {"type": "line", "color": "#7e57c2", "strokeWidth": 1.3, "interpolate": "step-after",
                         "clip": True},
                "encoding": {"x": _x("b", axis), "y": {"field": "v", "type": "quantitative", "scale": y_scale,
                                                        "axis": y_axis}, "tooltip": tooltip}}
    layers = [mark]
    if panel.rules:
        layers.append({"data": {"values": [{"r": r} for r in panel.rules]},
                       "mark": {"type": "rule", "color": "#888", "strokeDash": [3, 3], "strokeWidth": 1},
                       "encoding": {"y": {"field": "r", "type": "quantitative"}}})
    return {"height": PANEL_HEIGHT, "title": {"text": panel.title + (f" · {panel.note}" if panel.note else ""),
                                              "anchor": "start", "fontSize": 10, "fontWeight": "normal",
                                              "offset": 2, "limit": {"expr": "width"}},
            "layer": layers}
