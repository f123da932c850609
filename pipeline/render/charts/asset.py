"""Every chart spec of one asset page (pure): heatmaps per window and market, and the liquidation map."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import numpy as np

from pipeline import paths
from pipeline.model import indicators
from pipeline.model.views import LEVERAGE_BANDS, AssetView, MapView, liquidation_map_range
from pipeline.render.charts import colour, heatmap, liqmap

LIQ_MAP_BINS = 120
LIQ_MAP_MAX_PCT = 0.35  # the liquidation map never spans more than +-35 % around the price
LIQ_MAP_FILE = "liquidation-map.json"
PREVIEW_FILE = "og.png"  # the page's og:image: the first window's aggregate map
MARKED_CLUSTERS = 3  # key levels per side drawn as labelled lines on the map


def _bar(ms: int) -> str:
    """A bar length as traders write it: 1m, 45m, 2h, 1d."""
    minutes = ms // 60_000
    if minutes % 1440 == 0:
        return f"{minutes // 1440}d"
    return f"{minutes // 60}h" if minutes % 60 == 0 else f"{minutes}m"


def context_panels(mv: MapView) -> list[heatmap.Panel]:
    """Open interest, funding and RSI(14) rows beneath a heatmap."""
    return [
        heatmap.Panel(mv.oi_title, mv.oi, "money", note=mv.oi_note),
        heatmap.Panel("Funding (8 h)", mv.funding, ".3~%", kind="bar", rules=(0.0,)),
        heatmap.Panel(f"RSI(14), {_bar(mv.step_ms)} closes", indicators.rsi(mv.price_close), ".0f",
                      rules=(30.0, 70.0), domain=(0, 100)),
    ]


def asset_specs(view: AssetView) -> Iterator[tuple[str, dict | bytes]]:
    """(file name, spec) of each of the asset's charts, one at a time, and (``PREVIEW_FILE``, PNG bytes)
    of the social preview. Sets each map's ``spec_file`` and the view's
    ``liq_map_file``, and drops each map's grid once its spec holds what the page needs
    (per-market grids add up across assets)."""
    name = view.asset.name
    for tv in view.timeframes:
        for mv in tv.maps:
            ok = np.isfinite(mv.price_close)
            whose = "" if mv.key == "all" else f" ({mv.label})"
            bands = {key: (label, mv.bands[key]) for key, label, _lo, _hi in LEVERAGE_BANDS if key in mv.bands}
            # The key levels are the aggregate book's: marked on the aggregate map only.
            marked = ([dataclasses.asdict(c) for c in tv.clusters if c.rank <= MARKED_CLUSTERS] if mv.key == "all" else None)
            spec = heatmap.heatmap_spec(
                mv.grid, tv.col_end_ms, tv.price_edges, tv.col_end_ms[ok], mv.price_close[ok],
                title=f"{name}{whose}: estimated liquidation levels, {tv.label}", panels=context_panels(mv),
                ohlc=mv.ohlc, bands=bands, clusters=marked, realized=mv.realized,
            )
            # The aggregate keeps the plain name, so links to heatmap-<window>.json stay valid.
            mv.spec_file = (f"heatmap-{tv.slug}.json" if mv.key == "all"
                            else f"heatmap-{tv.slug}-{paths.safe_name(mv.key)}.json")
            yield mv.spec_file, spec
            if mv.key == "all" and tv is view.timeframes[0]:
                yield PREVIEW_FILE, colour.preview_png(mv.grid, tv.price_edges, mv.price_close)
            mv.grid = None
            mv.bands = {}
    lo, hi = liquidation_map_range(view.book, view.price, LIQ_MAP_MAX_PCT)
    view.liq_map_file = LIQ_MAP_FILE
    yield LIQ_MAP_FILE, liqmap.liquidation_map_spec(
        view.book, view.price, lo, hi, bins=LIQ_MAP_BINS, title=f"{name}: liquidation map (current level book)"
    )
