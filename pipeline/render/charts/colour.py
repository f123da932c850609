"""The heatmap's colour scale and image (pure numpy): colour table, PNG palette images, previews.

``t = sqrt(min(v / vmax, 1))`` where ``vmax`` is the 99.5th percentile of the
non-empty cells (one extreme bin must not wash the rest out); square root rather
than linear because notional per bin is heavy-tailed, rather than log because log
makes dust as bright as real clusters. ``t`` indexes a 256-entry colour table
interpolated through the anchors in ``ANCHORS`` (dark indigo -> blue-violet ->
teal -> yellow -> orange -> red) in OKLab, re-spaced so consecutive entries are
equally far apart perceptually. The legend (:mod:`.heatmap`) uses a Vega ``sqrt``
scale over the same stops, so it matches.
"""

from __future__ import annotations

import base64
import struct
import zlib

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
LEGEND_STOPS = 11


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
                height: int = 630, colours: int = 255) -> bytes:
    """A preview PNG of a map (the og:image, a snapshot's map): the grid resampled to ``width`` x
    ``height`` (nearest cell), the closes drawn in white. Palette PNG: ``colours`` steps of the
    scale (at most 255) plus white."""
    g = np.nan_to_num(np.asarray(grid, float), nan=0.0)
    m, k = g.shape
    idx = (colour_index(g, colour_scale_vmax(g)).astype(np.uint16) * (colours - 1) // 255).astype(np.uint8)  # (m, k)
    cols = np.minimum((np.arange(width) * m) // width, m - 1)
    rows = np.minimum(((height - 1 - np.arange(height)) * k) // height, k - 1)  # top row = highest price
    img = idx[cols][:, rows].T.copy()  # (height, width)
    edges = np.asarray(price_edges, float)
    c = np.asarray(close, float)[cols]
    ok = np.isfinite(c)
    y = np.clip(((edges[-1] - c[ok]) / (edges[-1] - edges[0]) * height).astype(int), 0, height - 1)
    x = np.flatnonzero(ok)
    for dy in (-1, 0, 1) if height > 300 else (0, 1):  # a 3 px line on a big preview, 2 px on a small one
        img[np.clip(y + dy, 0, height - 1), x] = colours
    palette = np.vstack([LUT[np.round(np.linspace(0, 255, colours)).astype(int)], [[255, 255, 255]]])
    return encode_png_indexed(img, palette)


# A snapshot's map image (:func:`budget_png`): its size in pixels, and the most bytes it may take.
# Every scheduled run stores one per asset in the data branch, whose growth issue 12 caps.
SNAPSHOT_MAP_SIZE = (240, 200)
SNAPSHOT_MAP_BUDGET = 30_000


def budget_png(grid: np.ndarray, price_edges: np.ndarray, close: np.ndarray,
               size: tuple[int, int] = SNAPSHOT_MAP_SIZE, budget: int = SNAPSHOT_MAP_BUDGET) -> bytes:
    """:func:`preview_png` at ``size`` in at most ``budget`` bytes: the full scale if it fits, else
    fewer colour steps (a smooth map compresses well; only a noisy one needs coarser steps). At
    240 x 200 even 8 steps of pure noise fit 30 KB, so the budget always holds there."""
    for colours in (255, 64, 16, 8, 4):
        png = preview_png(grid, price_edges, close, width=size[0], height=size[1], colours=colours)
        if len(png) <= budget:
            return png
    raise ValueError(f"a {size[0]} x {size[1]} map image does not fit {budget} bytes even with 4 colours")


def data_url(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")
