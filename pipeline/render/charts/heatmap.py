"""Heatmap and liquidation-map chart specs (pure: numpy in, Vega-Lite spec dicts out; no I/O).

One piece (over 450 lines) because the colour table, the PNG encoder and the spec layers share
one colour scale: the image, its legend and its tooltip must agree to the byte.

Heatmap
    The grid (time columns x price bins, up to ~1000 x 400 cells) is coloured
    here with numpy and shipped as ONE palette PNG inside a ``data:`` URL, drawn
    by an Altair ``mark_image`` layer on real time/price axes. Shipping the cells
    as JSON rows instead was measured at 5.3 MB / 1.9 s render per chart against
    115 KB / 0.46 s for the image, so cells never become rows. On top: a coarse
    invisible tooltip grid (<= 60 x 40 blocks), a colour legend (a two-row
    layer that only carries the colour scale) and the price line.

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
    open interest, funding and RSI: one narrow row each, the y axes of all rows
    given the same width so the plot areas line up. Panel values sit on the
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
Y_AXIS_PX = 78  # fixed y-axis width of every row, so stacked rows share one plot area
PANEL_HEIGHT = 80


@dataclass(frozen=True)
class Panel:
    """A context row under the heatmap: one value per heatmap column (NaN = gap)."""

    title: str  # y-axis title
    values: np.ndarray
    fmt: str  # d3 format of the values
    kind: str = "line"  # "line", or "bar" (bars coloured by sign, for funding)
    rules: tuple[float, ...] = ()  # reference lines (RSI 30/70, funding 0)
    domain: tuple[float, float] | None = None


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
    because heatmap bands are mostly constant along time (the x direction).
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
        + _chunk(b"IDAT", zlib.compress(raw.tobytes(), 6))
        + _chunk(b"IEND", b"")
    )


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


def data_url(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


# -- helpers ------------------------------------------------------------------
def _sig(x: float, digits: int = 6) -> float:
    return float(f"{x:.{digits}g}")


def _usd_axis(title: str, orient: str = "left") -> alt.Axis:
    return alt.Axis(title=title, format="$,.4~s" if orient == "right" else "$,.6~g", orient=orient)


def price_format(price: float) -> str:
    """A d3 format for prices of this magnitude (BTC needs no cents, XRP needs four decimals)."""
    if price >= 1000:
        return "$,.0f"
    if price >= 10:
        return "$,.2f"
    return "$,.4f"


_TIME_AXIS = alt.Axis(title=None, format="%d %b %H:%M", labelAngle=0, labelOverlap=True)


def _finish(chart, title: str, height: int, datasets: dict[str, list]) -> dict:
    # Data and top-level properties are set on the dict: Altair validates
    # inline values and .properties() against the full JSON schema, which costs
    # far more than building the spec (layers refer to named datasets instead).
    spec = chart.to_dict(validate=False)
    spec["datasets"] = datasets
    spec["autosize"] = {"type": "fit-x", "contains": "padding"}
    if "vconcat" in spec:  # each row takes the container's width; heights are the rows' own
        for row in spec["vconcat"]:
            row["width"] = "container"
    else:
        spec.update(width="container", height=height)
    if title:
        spec["title"] = title
    return spec


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
) -> dict:
    """Vega-Lite spec of a liquidation heatmap.

    ``grid``: (m, k) notional per (time column, price bin); column j ends at
    ``col_end_ms[j]`` (epoch ms); ``price_edges`` ascending (k+1). ``price_ms`` /
    ``price``: the price line (any length; keep it to about one point per column).
    ``panels``: context rows drawn beneath on the same time axis (m values each;
    panels with no finite value are left out).
    """
    g = np.nan_to_num(np.asarray(grid, float), nan=0.0)
    ends = np.asarray(col_end_ms, dtype=np.int64)
    edges = np.asarray(price_edges, float)
    m, k = g.shape
    if ends.shape != (m,) or edges.shape != (k + 1,):
        raise ValueError("grid, col_end_ms and price_edges disagree in shape")
    step = int(ends[1] - ends[0]) if m > 1 else 60_000
    starts = np.concatenate(([ends[0] - step], ends[:-1]))
    t0, t1 = int(starts[0]), int(ends[-1])
    p0, p1 = float(edges[0]), float(edges[-1])
    png, vmax = heatmap_png(g)

    # No explicit x domain: the image row spans it exactly, and a numeric domain on a
    # temporal field makes Vega-Lite warn about conflicting domain forms.
    x_scale = alt.Scale(type="utc", nice=False)
    y_scale = alt.Scale(domain=[p0, p1], nice=False, zero=False)
    pfmt = price_format(0.5 * (p0 + p1))
    rows = [p for p in panels if np.isfinite(np.asarray(p.values, float)).any()]
    if any(np.asarray(p.values).shape != (m,) for p in rows):
        raise ValueError("a panel needs one value per time column")

    image = (
        alt.Chart(alt.Data(name="image"))
        .mark_image(aspect=False, align="left", baseline="bottom")
        .encode(
            x=alt.X("a:T", scale=x_scale, axis=_TIME_AXIS),
            x2="b:T",
            y=alt.Y("lo:Q", scale=y_scale, axis=alt.Axis(title="Price (USD)", format=pfmt, **_fixed_width())),
            y2="hi:Q",
            url="url:N",
        )
    )

    # Coarse tooltip blocks: mean over the block's columns of the notional summed over its bins.
    ci = np.array_split(np.arange(m), min(TOOLTIP_COLS, m))
    ri = np.array_split(np.arange(k), min(TOOLTIP_ROWS, k))
    c_start = np.array([c[0] for c in ci])
    r_start = np.array([r[0] for r in ri])
    by_price = np.add.reduceat(g, r_start, axis=1)  # (m, ny)
    block = np.add.reduceat(by_price, c_start, axis=0) / np.array([len(c) for c in ci])[:, None]
    # Rows carry only block indices and the value; the block's time and price bounds
    # come from four short lookup arrays in the expressions below (a third of the bytes).
    a_ms = [int(starts[c[0]]) for c in ci]
    b_ms = [int(ends[c[-1]]) for c in ci]
    lo_p = [_sig(edges[r[0]]) for r in ri]
    hi_p = [_sig(edges[r[-1] + 1]) for r in ri]
    ii, jj = np.nonzero(block > 0)
    tip_rows = [{"i": int(i), "j": int(j), "v": int(_sig(block[i, j], 3))} for i, j in zip(ii, jj)]

    def arr(xs) -> str:
        return "[" + ",".join(f"{x:g}" if isinstance(x, float) else str(x) for x in xs) + "]"

    tips = (
        alt.Chart(alt.Data(name="tips"))
        .transform_calculate(a=f"{arr(a_ms)}[datum.i]", b=f"{arr(b_ms)}[datum.i]",
                             lo=f"{arr(lo_p)}[datum.j]", hi=f"{arr(hi_p)}[datum.j]")
        .transform_calculate(
            when="utcFormat(datum.a, '%d %b %H:%M') + ' – ' + utcFormat(datum.b, '%d %b %H:%M') + ' UTC'",
            range=f"format(datum.lo, '{pfmt}') + ' – ' + format(datum.hi, '{pfmt}')",
        )
        # Nearly (not fully) transparent: invisible, but still hit by the pointer for tooltips.
        .mark_rect(fill="#ffffff", fillOpacity=0.001, strokeWidth=0)
        .encode(
            x="a:T", x2="b:T", y="lo:Q", y2="hi:Q",
            tooltip=[
                alt.Tooltip("range:N", title="Price range"),
                alt.Tooltip("v:Q", title="Est. liquidation notional (USD)", format="$,.3~s"),
                alt.Tooltip("when:N", title="Time"),
            ],
        )
    )

    stops = np.linspace(0, 1, LEGEND_STOPS)
    legend = (
        alt.Chart(alt.Data(name="legend"))
        .mark_point(opacity=0.0)
        .encode(
            color=alt.Color(
                "v:Q",
                scale=alt.Scale(type="sqrt", domain=[0, _sig(vmax) if vmax > 0 else 1.0],
                                range=[lut_hex(s) for s in stops], clamp=True),
                legend=alt.Legend(title="USD per bin", format="$,.2~s", gradientLength=200, orient="right"),
            )
        )
    )

    pm = np.asarray(price_ms, dtype=np.int64)
    pv = np.asarray(price, float)
    ok = np.isfinite(pv) & (pm >= t0) & (pm <= t1)
    line = (
        alt.Chart(alt.Data(name="price"))
        .mark_line(color="#ffffff", strokeWidth=1.4, interpolate="step-after")
        .encode(x="t:T", y="p:Q", tooltip=[alt.Tooltip("p:Q", title="Price", format=pfmt)])
    )

    datasets = {
        "image": [{"a": t0, "b": t1, "lo": p0, "hi": p1, "url": data_url(png)}],
        "tips": tip_rows,
        "legend": [{"v": 0.0}, {"v": _sig(vmax) if vmax > 0 else 1.0}],
        "price": [{"t": int(a), "p": _sig(b, 7)} for a, b in zip(pm[ok], pv[ok])],
    }
    heat = alt.layer(image, tips, legend, line)
    if not rows:
        return _finish(heat, title, height, datasets)
    charts_ = [heat.properties(height=height)]
    for n, panel in enumerate(rows):
        name = f"panel{n}"
        datasets[name] = _panel_rows(panel.values)
        charts_.append(_panel_chart(panel, name, int(starts[0]), step, x_scale, last=n == len(rows) - 1))
    # x shared: one time scale for the map and its panels; colour independent: the
    # funding bars' sign colours must not join the heatmap's legend.
    chart = alt.vconcat(*charts_, spacing=8).resolve_scale(x="shared", color="independent")
    return _finish(chart, title, height, datasets)


def _fixed_width() -> dict:
    return {"minExtent": Y_AXIS_PX, "maxExtent": Y_AXIS_PX}


def _panel_rows(values: np.ndarray) -> list[dict]:
    v = np.asarray(values, float)
    return [{"i": int(i), "v": _sig(float(v[i]), 5)} for i in np.flatnonzero(np.isfinite(v))]


def _panel_chart(panel: Panel, name: str, t_start: int, step: int, x_scale, *, last: bool):
    """One context row; column ``i`` spans [t_start + i*step, t_start + (i+1)*step)."""
    axis = _TIME_AXIS if last else alt.Axis(title=None, labels=False, ticks=False, domain=False)
    y_scale = alt.Scale(zero=False, nice=True) if panel.domain is None else alt.Scale(domain=list(panel.domain))
    y_axis = alt.Axis(title=panel.title, format=panel.fmt, tickCount=3, titleFontSize=10, **_fixed_width())
    base = alt.Chart(alt.Data(name=name)).transform_calculate(
        a=f"{t_start} + datum.i * {step}", b=f"{t_start} + (datum.i + 1) * {step}",
    ).transform_calculate(when="utcFormat(datum.b, '%d %b %H:%M') + ' UTC'")
    tooltip = [alt.Tooltip("v:Q", title=panel.title, format=panel.fmt), alt.Tooltip("when:N", title="At")]
    if panel.kind == "bar":
        mark = base.mark_bar().encode(
            x=alt.X("a:T", scale=x_scale, axis=axis), x2="b:T",
            y=alt.Y("v:Q", scale=alt.Scale(zero=True), axis=y_axis), y2=alt.datum(0),
            color=alt.condition("datum.v >= 0", alt.value("#26a69a"), alt.value("#ef5350")),
            tooltip=tooltip,
        )
    else:
        mark = base.mark_line(color="#7e57c2", strokeWidth=1.3, interpolate="step-after").encode(
            x=alt.X("b:T", scale=x_scale, axis=axis), y=alt.Y("v:Q", scale=y_scale, axis=y_axis), tooltip=tooltip,
        )
    layers = [mark]
    if panel.rules:
        rules = alt.Chart(alt.Data(values=[{"r": r} for r in panel.rules])).mark_rule(
            color="#888", strokeDash=[3, 3], strokeWidth=1).encode(y="r:Q")
        layers.append(rules)
    return alt.layer(*layers).properties(height=PANEL_HEIGHT)


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
        .mark_bar()
        .encode(
            x=alt.X("lo:Q", bin="binned", scale=x_scale, axis=alt.Axis(title="Price (USD)", format=pfmt)),
            x2="hi:Q",
            y=alt.Y("v:Q", stack="zero", axis=alt.Axis(title="Liquidation notional per bin (USD)", format="$,.2~s")),
            color=alt.Color("lev:N", scale=alt.Scale(domain=[lev_label(x) for x in levels], range=lev_range),
                            legend=alt.Legend(title="Leverage")),
            order=alt.Order("o:Q"),
            tooltip=[
                alt.Tooltip("lo:Q", title="From", format=pfmt),
                alt.Tooltip("hi:Q", title="To", format=pfmt),
                alt.Tooltip("lev:N", title="Leverage"),
                alt.Tooltip("v:Q", title="Notional (USD)", format="$,.3~s"),
            ],
        )
    )
    curves = (
        alt.Chart(alt.Data(name="curves"))
        .mark_line(strokeWidth=2)
        .encode(
            x=alt.X("p:Q", scale=x_scale),
            y=alt.Y("c:Q", axis=alt.Axis(title="Cumulative (USD)", format="$,.2~s", orient="right")),
            color=alt.Color("s:N", scale=alt.Scale(domain=["Cumulative long liquidations", "Cumulative short liquidations"],
                                                   range=["#1f77b4", "#c2185b"]),
                            legend=alt.Legend(title=None, orient="top")),
            order="p:Q",
            tooltip=[alt.Tooltip("s:N", title=" "), alt.Tooltip("p:Q", title="Price", format=pfmt),
                     alt.Tooltip("c:Q", title="Cumulative (USD)", format="$,.3~s")],
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
    return _finish(chart, title, height, datasets)


def fmt_time(ms: int | float) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
