"""Step: Markdown pages from the Jinja templates (asset pages, home, methodology, FAQ, accuracy, archive)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from pipeline.markets import JPY_PER_USD
from pipeline.model.views import AssetView
from pipeline.render import archive, contexts
from pipeline.render.charts import accuracy as accuracy_charts
from pipeline.render.format import nav_title
from pipeline.steps.docs import write_json, write_pages


def common(views: list, now: dt.datetime) -> dict:
    """Variables every page template gets."""
    return {"built_at": now.strftime("%Y-%m-%d %H:%M UTC"), "views": views}


def asset_pages(env, views: list[AssetView], results: dict[str, dict], docs_dir: Path, now: dt.datetime,
                shared: dict) -> list[Path]:
    """Each asset's page, and its ``view.json`` summary (what a merge of shards needs)."""
    accuracy = {r["asset"]: contexts.asset_context(r) for r in results.values()}
    tpl = env.get_template("asset.md.j2")
    pages = {}
    heatmaps = docs_dir / "heatmaps"
    for v in views:
        pages[heatmaps / f"{v.asset.id}.md"] = tpl.render(**shared, v=v, now_ms=now.timestamp() * 1000,
                                                           accuracy=accuracy)
        heatmaps.mkdir(parents=True, exist_ok=True)
        write_json(heatmaps / f"{v.asset.id}.view.json", contexts.view_summary(v, results.get(v.asset.id)))
    return write_pages(pages)


def accuracy_page(env, results: list[dict], docs_dir: Path) -> list[Path]:
    """``accuracy.md`` and its chart specs (``accuracy/<asset>-<market>.json``; placeholders resolve
    against the Markdown file's folder, as the heatmap specs do)."""
    folder = docs_dir / "accuracy"
    folder.mkdir(parents=True, exist_ok=True)
    for name, spec in accuracy_charts.chart_specs(results).items():
        write_json(folder / name, spec)
    return write_pages({docs_dir / "accuracy.md": env.get_template("accuracy.md.j2").render(
        acc=contexts.accuracy_context(results))})


def site_pages(env, reg, docs_dir: Path, shared: dict) -> list[Path]:
    return write_pages({
        docs_dir / "index.md": env.get_template("home.md.j2").render(**shared),
        docs_dir / "methodology.md": env.get_template("methodology.md.j2").render(
            **shared, **contexts.methodology_context(reg)),
        docs_dir / "faq.md": env.get_template("faq.md.j2").render(**shared, jpy_per_usd=JPY_PER_USD),
    })


def archive_pages(snapshots_root: Path, docs_dir: Path, reg) -> list:
    """The archive pages; returns their navigation entries."""
    return list(archive.render_archive(snapshots_root, docs_dir, reg) or [])


def nav(views: list, archive_nav: list) -> list:
    return [
        {"Home": "index.md"},
        {"Heatmaps": [{nav_title(v.asset.name): f"heatmaps/{v.asset.id}.md"} for v in views]},
        {"Accuracy": "accuracy.md"},
        {"Methodology": "methodology.md"},
        {"FAQ": "faq.md"},
        *archive_nav,
    ]
