"""Chart specs (pure: numpy in, Vega-Lite spec dicts out; no I/O).

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

Colour scale
    ``t = sqrt(min(v / vmax, 1))`` where ``vmax`` is the 99.5th percentile of
    the non-empty cells (one extreme bin must not wash the rest out); square
    root rather than linear because notional per bin is heavy-tailed, rather
    than log because log makes dust as bright as real clusters. ``t`` indexes a
    256-entry colour table interpolated through the anchors in ``ANCHORS``
    (dark indigo -> blue-violet -> teal -> yellow -> orange -> red) in OKLab,
    re-spaced so consecutive entries are equally far apart perceptually.
    The legend uses a Vega ``sqrt`` scale over the same stops, so it matches.

Context panels
    Beneath the heatmap, on the same (shared) time scale, optional panels for
    open interest, funding and RSI: one narrow row each, titled above the row,
    the (right-hand) y axes of all rows given the same width so the plot areas line up. Panel values sit on the
    heatmap's evenly spaced time columns, so rows carry only a column index and
    a value; the time is computed in the spec.

Liquidation map
    Bars per price bin stacked by leverage tier, from the current level book;
    cumulative long liquidations from the price downward and short
    liquidations from the price upward (right axis); a rule at the price.
"""

from __future__ import annotations

import base64
import datetime as dt
import math
import struct
import zlib
from dataclasses import dataclass

import altair as alt
import numpy as np

# Anchor colours of the heatmap scale (position in [0, 1], sRGB hex).
ANCHORS = (
    (0.00, "#140b34"),  # empty / dust: dark indigo
    (0.22, "#3b3a9e"),  # blue-violet: a little
    (0.45, "#21908d"),  # teal
    (0.70, "#f6e326"),  # yellow: moderate
    (0.85, "#fb8d24"),  # orange
    (1.00, "#d81b1b"),  # red: a lot
)
VMAX_PERCENTILE = 99.5
TOOLTIP_COLS = 60
TOOLTIP_ROWS = 40
LEGEND_STOPS = 11
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


# -- colour table -------------------------------------------------------------
def _srgb_to_linear(c):
    return np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)


def _linear_to_srgb(c):
    c = np.clip(c, 0.0, 1.0)
    return np.where(c <= 0.0031308, 12.92 * c, 1.055 * c ** (1 / 2.4) - 0.055)


_M1 = np.array([[0.4122214708, 0.5363325363, 0.0514459929],
                [0.2119034982, 0.6806995451, 0.1073969566],
                [0.0883024619, 0.2817188376, 0.6299787005]])
_M2 = np.array([[0.2104542553, 0.7936177850, -0.0040720468],
                [1.9779984951, -2.4285922050, 0.4505937099],
                [0.0259040371, 0.7827717662, -0.8086757660]])


def to_oklab(rgb: np.ndarray) -> np.ndarray:
    """sRGB in [0, 1] (..., 3) -> OKLab (..., 3)."""
    lms = _srgb_to_linear(np.asarray(rgb, float)) @ _M1.T
    return np.cbrt(lms) @ _M2.T


def from_oklab(lab: np.ndarray) -> np.ndarray:
    lms = (np.asarray(lab, float) @ np.linalg.inv(_M2).T) ** 3
    return _linear_to_srgb(lms @ np.linalg.inv(_M1).T)


def _hex(h: str) -> np.ndarray:
    return np.array([int(h[i:i + 2], 16) for i in (1, 3, 5)], float) / 255.0


def _build_lut(n: int = 256) -> np.ndarray:
    pos = np.array([p for p, _ in ANCHORS])
    lab = to_oklab(np.stack([_hex(h) for _, h in ANCHORS]))
    fine = np.linspace(0, 1, 4096)
    path = np.stack([np.interp(fine, pos, lab[:, i]) for i in range(3)], axis=1)
    # Re-parametrise by arc length so equal steps in t are equal perceptual steps.
    seg = np.linalg.norm(np.diff(path, axis=0), axis=1)
    s = np.concatenate(([0.0], np.cumsum(seg)))
    s /= s[-1]
    target = np.linspace(0, 1, n)
    even = np.stack([np.interp(target, s, path[:, i]) for i in range(3)], axis=1)
    return np.round(from_oklab(even) * 255).astype(np.uint8)


LUT = _build_lut()  # (256, 3) uint8


def lut_hex(t: float) -> str:
    r, g, b = LUT[int(round(np.clip(t, 0, 1) * (len(LUT) - 1)))]
    return f"#{r:02x}{g:02x}{b:02x}"


def colour_scale_vmax(values: np.ndarray) -> float:
    v = np.asarray(values, float)
    nz = v[np.isfinite(v) & (v > 0)]
    return float(np.percentile(nz, VMAX_PERCENTILE)) if nz.size else 0.0


def colour_index(values: np.ndarray, vmax: float) -> np.ndarray:
    """Values -> LUT index (uint8): sqrt scaling, clipped at ``vmax``; 0 or NaN -> 0."""
    v = np.nan_to_num(np.asarray(values, float), nan=0.0)
    if vmax <= 0:
        return np.zeros(v.shape, np.uint8)
    t = np.sqrt(np.clip(v / vmax, 0.0, 1.0))
    return np.round(t * (len(LUT) - 1)).astype(np.uint8)


# -- PNG ----------------------------------------------------------------------
def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def encode_png_indexed(index: np.ndarray, palette: np.ndarray) -> bytes:
    """A palette PNG (colour type 3, 8 bit) from an (h, w) uint8 index image and a (<=256, 3) palette.

    One byte per pixel keeps the file small; rows use the PNG "Sub" filter
    because heatmap bands are mostly constant along time (the x direction), which
    leaves long runs of zeros: zlib's run-length strategy finds those as well as
    level 6 does at a fraction of the time (bench/bench_charts.py).
    """
    idx = np.ascontiguousarray(index, dtype=np.uint8)
    h, w = idx.shape
    sub = idx.copy()
    sub[:, 1:] = idx[:, 1:] - idx[:, :-1]  # uint8 arithmetic wraps mod 256, as PNG wants
    raw = np.empty((h, w + 1), np.uint8)
    raw[:, 0] = 1  # filter type Sub
    raw[:, 1:] = sub
    pal = np.ascontiguousarray(palette, dtype=np.uint8)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 3, 0, 0, 0))
        + _chunk(b"PLTE", pal.tobytes())
        + _chunk(b"IDAT", _deflate(raw.tobytes()))
        + _chunk(b"IEND", b"")
    )


def _deflate(data: bytes) -> bytes:
    z = zlib.compressobj(9, zlib.DEFLATED, 15, 9, zlib.Z_RLE)
    return z.compress(data) + z.flush()


def decode_png_indexed(data: bytes) -> tuple[np.ndarray, np.ndarray]:
    """Inverse of :func:`encode_png_indexed` (for tests and checks): (index image, palette)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, chunks = 8, {}
    while pos < len(data):
        (n,) = struct.unpack(">I", data[pos:pos + 4])
        kind = data[pos + 4:pos + 8]
        chunks.setdefault(kind, b"")
        chunks[kind] += data[pos + 8:pos + 8 + n]
        pos += 12 + n
    w, h, depth, ctype = struct.unpack(">IIBB", chunks[b"IHDR"][:10])
    assert (depth, ctype) == (8, 3)
    raw = np.frombuffer(zlib.decompress(chunks[b"IDAT"]), np.uint8).reshape(h, w + 1)
    assert (raw[:, 0] == 1).all()
    idx = np.cumsum(raw[:, 1:], axis=1, dtype=np.uint64).astype(np.uint8)  # undo Sub (mod 256)
    return idx, np.frombuffer(chunks[b"PLTE"], np.uint8).reshape(-1, 3)


def heatmap_png(grid: np.ndarray, vmax: float | None = None) -> tuple[bytes, float]:
    """PNG of a (time, price) grid: width = time columns, height = price bins, high prices on top."""
    g = np.asarray(grid, float)
    vmax = colour_scale_vmax(g) if vmax is None else vmax
    idx = colour_index(g, vmax).T[::-1]
    return encode_png_indexed(idx, LUT), vmax


def preview_png(grid: np.ndarray, price_edges: np.ndarray, close: np.ndarray, width: int = 1200,
                height: int = 630) -> bytes:
    """A social-preview PNG (og:image) of a map: the grid resampled to ``width`` x ``height``
    (nearest cell), the closes drawn in white. Palette PNG: 255 colours of the scale plus white."""
    g = np.nan_to_num(np.asarray(grid, float), nan=0.0)
    m, k = g.shape
    idx = (colour_index(g, colour_scale_vmax(g)).astype(np.uint16) * 254 // 255).astype(np.uint8)  # (m, k)
    cols = np.minimum((np.arange(width) * m) // width, m - 1)
    rows = np.minimum(((height - 1 - np.arange(height)) * k) // height, k - 1)  # top row = highest price
    img = idx[cols][:, rows].T.copy()  # (height, width)
    edges = np.asarray(price_edges, float)
    c = np.asarray(close, float)[cols]
    ok = np.isfinite(c)
    y = np.clip(((edges[-1] - c[ok]) / (edges[-1] - edges[0]) * height).astype(int), 0, height - 1)
    x = np.flatnonzero(ok)
    for dy in (-1, 0, 1):
        img[np.clip(y + dy, 0, height - 1), x] = 255
    palette = np.vstack([LUT[np.round(np.linspace(0, 255, 255)).astype(int)], [[255, 255, 255]]])
    return encode_png_indexed(img, palette)


def data_url(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


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


def _altair_finish(chart, title: str, height: int, datasets: dict[str, list]) -> dict:
    # Data and top-level properties are set on the dict: Altair validates inline values and
    # .properties() against the full JSON schema, which costs far more than building the spec.
    return _finish(chart.to_dict(validate=False), title, height, datasets)


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
        blob = base64.b64encode(zlib.compress(delta.astype("<u2").tobytes(), 9)).decode("ascii")
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


# -- liquidation map ------------------------------------------------------------
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
                            legend=alt.Legend(title="Leverage")),
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


def fmt_time(ms: int | float) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
