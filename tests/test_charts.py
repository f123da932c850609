"""Chart specs: the heatmap PNG, the colour scale and the size of the specs."""

from __future__ import annotations

import base64
import json

import numpy as np
import pytest

from pipeline.render.charts import colour, liqmap
from pipeline.render.charts import heatmap as charts

T0 = 1_790_000_000_000


def _grid(m=300, k=120):
    g = np.zeros((m, k))
    g[:, 10] = 1.0  # a weak band
    g[100:, 90] = 100.0  # a strong band appearing later
    return g


def _heatmap(g):
    m, k = g.shape
    ends = T0 + 60_000 * np.arange(1, m + 1)
    edges = np.linspace(90_000, 110_000, k + 1)
    return charts.heatmap_spec(g, ends, edges, ends, np.full(m, 100_000.0), title="t")


def test_lut_is_perceptually_even_and_runs_dark_to_red():
    lab = colour.to_oklab(colour.LUT / 255.0)
    steps = np.linalg.norm(np.diff(lab, axis=0), axis=1)
    # Equal perceptual steps (within rounding to 8-bit).
    assert steps.max() < 2.0 * np.median(steps)
    first, last = colour.LUT[0], colour.LUT[-1]
    assert first.max() < 80 and first[2] > first[1]  # dark, bluish
    assert last[0] > 180 and last[1] < 80 and last[2] < 80  # red
    assert lab[:, 0].argmax() not in (0, 255)  # brightest (yellow) in the middle, red hottest


def test_colour_index_monotone_sqrt_and_clipped():
    v = np.linspace(0, 2, 1001)
    idx = colour.colour_index(v, vmax=1.0)
    assert np.all(np.diff(idx.astype(int)) >= 0)
    assert idx[0] == 0 and idx[-1] == 255 and idx[500] == 255
    assert idx[250] == round(np.sqrt(0.5) * 255)  # v = 0.5 * vmax
    assert colour.colour_index(np.array([np.nan, -1.0]), 1.0).tolist() == [0, 0]
    assert colour.colour_index(v, 0.0).max() == 0


def test_png_roundtrip_size_and_orientation():
    g = _grid()
    png, vmax = colour.heatmap_png(g)
    idx, pal = colour.decode_png_indexed(png)
    assert idx.shape == (120, 300)  # height = price bins, width = time columns
    assert (pal == colour.LUT).all()
    # Highest price bin is the top row: bin 90 (strong) is above bin 10 (weak).
    assert idx[120 - 1 - 90, 200] == 255 and idx[120 - 1 - 90, 50] == 0
    assert 0 < idx[120 - 1 - 10, 0] < 255
    assert (idx[120 - 1 - 50] == 0).all()
    assert vmax == pytest.approx(100.0)


def test_png_encoder_handles_wraparound_filter():
    idx = np.tile(np.array([0, 255, 1, 254, 128], np.uint8), (3, 20))
    png = colour.encode_png_indexed(idx, colour.LUT)
    back, _ = colour.decode_png_indexed(png)
    assert (back == idx).all()


def test_heatmap_spec_is_an_image_not_rows():
    g = np.random.default_rng(1).gamma(0.5, 1e5, (1000, 400))
    spec = _heatmap(g)
    text = json.dumps(spec)
    kinds = [layer["mark"]["type"] for layer in spec["layer"]]
    assert kinds[0] == "image" and "line" in kinds
    url = spec["datasets"]["image"][0]["url"]
    assert url.startswith("data:image/png;base64,")
    idx, _ = colour.decode_png_indexed(base64.b64decode(url.split(",", 1)[1]))
    assert idx.shape == (400, 1000)
    # No per-cell rows: the cell values travel as one compact blob for the crosshair.
    rows = sum(len(v) for k, v in spec["datasets"].items() if k != "image")
    assert rows < 4000
    # Worst case (noise compresses badly) still well under 1 MB.
    assert len(text) < 1_000_000


def test_heatmap_legend_matches_colour_scale():
    spec = _heatmap(_grid())
    legend = next(layer for layer in spec["layer"] if layer["data"]["name"] == "legend")
    scale = legend["encoding"]["color"]["scale"]
    assert scale["type"] == "sqrt" and scale["domain"][0] == 0
    assert scale["range"][0] == colour.lut_hex(0) and scale["range"][-1] == colour.lut_hex(1)
    assert spec["width"] == "container" and spec["title"]["text"] == "t"


def test_heatmap_shape_mismatch_rejected():
    with pytest.raises(ValueError):
        charts.heatmap_spec(np.zeros((3, 4)), np.arange(3), np.arange(4), [], [])


def test_liquidation_map_bins_stack_and_cumulate():
    book = {
        "price": np.array([95.0, 95.2, 90.0, 105.0, 110.0]),
        "side": np.array([1, 1, 1, -1, -1]),
        "leverage": np.array([10.0, 25.0, 10.0, 25.0, 10.0]),
        "notional_usd": np.array([100.0, 50.0, 30.0, 70.0, 20.0]),
    }
    spec = liqmap.liquidation_map_spec(book, 100.0, 80.0, 120.0, bins=40)
    bars = spec["datasets"]["bars"]
    assert sum(r["v"] for r in bars) == 270
    assert {r["lev"] for r in bars} == {"10x", "25x"}
    curves = spec["datasets"]["curves"]
    longs = [r for r in curves if "long" in r["s"]]
    shorts = [r for r in curves if "short" in r["s"]]
    assert max(r["c"] for r in longs) == 180 and max(r["c"] for r in shorts) == 90
    # Long cumulative grows as price falls; short cumulative grows as price rises.
    lp = sorted(longs, key=lambda r: -r["p"])
    assert all(a["c"] <= b["c"] for a, b in zip(lp, lp[1:]))
    sp = sorted(shorts, key=lambda r: r["p"])
    assert all(a["c"] <= b["c"] for a, b in zip(sp, sp[1:]))
    assert spec["datasets"]["price"][0]["p"] == 100.0


def test_liquidation_map_empty_book():
    spec = liqmap.liquidation_map_spec({}, 100.0, 80.0, 120.0)
    assert spec["datasets"]["bars"] == []


def test_crosshair_values_are_the_drawn_cells():
    """The value blob decodes to every cell's own value (not a block sum) within 0.5 %,
    cells under a millionth of the largest reading as 0."""
    g = _grid()
    g[150:, 50] = 3e-7 * 100  # dust
    g[200, 60] = 12_345.0
    spec = _heatmap(g)
    meta = spec["usermeta"]["liqmap"]
    back = charts.decode_values(meta["values"]["all"], meta["m"], meta["k"])
    assert back.shape == g.shape
    big = g >= g.max() * charts.VALUE_FLOOR
    assert np.allclose(back[big], g[big], rtol=0.005)
    assert (back[~big] == 0).all()
    assert back[200, 60] == pytest.approx(12_345.0, rel=0.005)


def test_money_labels_say_billions_not_giga():
    assert "'B'" in charts.MONEY_LABELS and "~s" not in json.dumps(_heatmap(_grid()))
