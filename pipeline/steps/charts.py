"""Step: every asset's chart specs (:mod:`pipeline.render.charts.asset`) written as JSON beside its page,
with the page's social-preview PNG (og:image)."""

from __future__ import annotations

from pathlib import Path

from pipeline.model.views import AssetView
from pipeline.render.charts.asset import asset_specs
from pipeline.steps.docs import write_json


def run(views: list[AssetView], heatmaps_dir: Path) -> None:
    for v in views:
        write_asset(v, heatmaps_dir)


def write_asset(v: AssetView, heatmaps_dir: Path) -> None:
    """One asset's charts into ``heatmaps_dir/<asset id>/`` (drops the view's map grids, see ``asset_specs``)."""
    if not v.has_data:
        return
    folder = heatmaps_dir / v.asset.id
    folder.mkdir(parents=True, exist_ok=True)
    for name, spec in asset_specs(v):
        if isinstance(spec, bytes):  # the social-preview PNG
            (folder / name).write_bytes(spec)
        else:
            write_json(folder / name, spec)
