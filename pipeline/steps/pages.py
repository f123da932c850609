"""Step: Markdown pages from the Jinja templates (asset pages, home, methodology, FAQ, accuracy, archive)."""

from __future__ import annotations

import datetime as dt
import math
import re
from pathlib import Path

from pipeline.markets import JPY_PER_USD
from pipeline.model import levels
from pipeline.model.views import AssetView
from pipeline.render import archive, contexts
from pipeline.render import format as fmt
from pipeline.render.charts import accuracy as accuracy_charts
from pipeline.steps.docs import write_json, write_pages

# The scheduled update (.github/workflows/publish.yml: cron '17 */2 * * *'; tests check they agree).
SCHEDULE = "every 2 h"
SCHEDULE_CRON_HOURS = 2
FRESH_HOURS = 6  # a source whose last success is older than this is not fresh
LEVELS_JSON = "heatmaps/{asset}/levels.json"  # the stable URL of an asset's latest key levels (README)
OG_IMAGE = "heatmaps/{asset}/og.png"  # written by steps/charts.py
_PLAIN = re.compile(r"[^A-Za-z0-9 .,;$%:+()/-]")


def _utc(ms) -> dt.datetime:
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC)


def _short_time(ms, now: dt.datetime) -> str:
    t = _utc(ms)
    return t.strftime("%H:%M UTC") if t.date() == now.date() else t.strftime("%d %b %Y %H:%M UTC")


def _stamp(value) -> dt.datetime | None:
    if isinstance(value, dt.datetime):
        return value if value.tzinfo else value.replace(tzinfo=dt.UTC)
    try:
        return dt.datetime.fromisoformat(str(value)).replace(tzinfo=dt.UTC) if value else None
    except ValueError:
        return None


def page_facts(v: AssetView, now: dt.datetime, docs_dir: Path | None = None) -> dict:
    """The one line before the chart, the sources summary, and the sharing metadata of an asset page."""
    by_source: dict[tuple, bool] = {}
    for s in v.sources:
        ok = s.get("last_status") == "ok"
        last = _stamp(s.get("last_success"))
        fresh = ok and last is not None and (now - last).total_seconds() <= FRESH_HOURS * 3600
        key = (s.get("exchange"), s.get("instrument"))
        by_source[key] = by_source.get(key, True) and fresh
    n_fresh, n_all = sum(by_source.values()), len(by_source)
    stale = sorted(f"{ex} {inst}" for (ex, inst), fresh in by_source.items() if not fresh)
    sources = f"{n_fresh} of {n_all} source{'s' if n_all != 1 else ''} fresh" if n_all else "no source runs recorded"
    facts = {"schedule": f"updated {SCHEDULE}", "sources_line": sources + (f" (not fresh: {', '.join(stale)})" if stale else ""),
             "levels_json_rel": "../" + LEVELS_JSON.format(asset=v.asset.id), "og_image": "", "line": "",
             "description": _PLAIN.sub("", f"Estimated liquidation heatmap of {v.asset.name} ({v.asset.symbol})")}
    if not v.has_data:
        return facts
    parts = [f"Updated {_short_time(v.price_time_ms, now)}, {SCHEDULE}; {sources}",
             f"price {fmt.usd(v.price)}"]
    if math.isfinite(v.oi_usd):
        parts.append(f"open interest {fmt.money(v.oi_usd)}"
                     + (f" ({fmt.pct_ratio(v.oi_change_24h)} in 24 h)" if math.isfinite(v.oi_change_24h) else ""))
    if math.isfinite(v.funding_8h):
        parts.append(f"funding {fmt.rate(v.funding_8h)} per 8 h")
    facts["line"] = " · ".join(parts) + ("." if not v.sample else " (bundled sample, not live data).")
    ref = v.timeframes[0]
    near = {side: levels.nearest(ref.clusters, side) for side in ("short", "long")}
    desc = f"{v.asset.name} ({v.asset.symbol}) at {fmt.usd(v.price)}"
    if near["short"]:
        desc += f"; nearest short cluster {fmt.usd(near['short'].price_low, v.price)} ({fmt.money(near['short'].notional_usd)})"
    if near["long"]:
        desc += f"; nearest long cluster {fmt.usd(near['long'].price_high, v.price)} ({fmt.money(near['long'].notional_usd)})"
    facts["description"] = _PLAIN.sub("", desc + f" ({ref.name}, estimated).")
    if docs_dir is None or (docs_dir / OG_IMAGE.format(asset=v.asset.id)).exists():
        facts["og_image"] = OG_IMAGE.format(asset=v.asset.id)
    return facts


def levels_document(v: AssetView, now: dt.datetime) -> dict:
    """The static JSON of an asset's latest key levels (``LEVELS_JSON``; documented in the README)."""
    return {
        "asset": v.asset.id, "symbol": v.asset.symbol, "built_at": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "price": v.price if math.isfinite(v.price) else None,
        "price_time": _utc(v.price_time_ms).strftime("%Y-%m-%dT%H:%M:%SZ") if v.has_data else None,
        "sample": v.sample is not None, "estimated": True,
        "windows": [{
            "window": tv.name, "partial": tv.partial,
            "levels": [{"side": c.side, "rank": c.rank, "price_low": c.price_low, "price_high": c.price_high,
                        "notional_usd": c.notional_usd, "distance_pct": c.distance_pct,
                        "confluence": int(c.confluence)}
                       for c in sorted(tv.clusters, key=lambda c: -c.price_low)],
        } for tv in v.timeframes],
    }


def common(views: list, now: dt.datetime) -> dict:
    """Variables every page template gets."""
    return {"built_at": now.strftime("%Y-%m-%d %H:%M UTC"), "views": views, "schedule": SCHEDULE}


def asset_pages(env, views: list[AssetView], results: dict[str, dict], docs_dir: Path, now: dt.datetime,
                shared: dict) -> list[Path]:
    """Each asset's page, and its ``view.json`` summary (what a merge of shards needs)."""
    accuracy = {r["asset"]: contexts.asset_context(r) for r in results.values()}
    tpl = env.get_template("asset.md.j2")
    pages = {}
    heatmaps = docs_dir / "heatmaps"
    for v in views:
        pages[heatmaps / f"{v.asset.id}.md"] = tpl.render(**shared, v=v, now_ms=now.timestamp() * 1000,
                                                           accuracy=accuracy, facts=page_facts(v, now, docs_dir))
        heatmaps.mkdir(parents=True, exist_ok=True)
        levels_json = docs_dir / LEVELS_JSON.format(asset=v.asset.id)
        levels_json.parent.mkdir(parents=True, exist_ok=True)
        write_json(levels_json, levels_document(v, now))
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
        {"Heatmaps": [{fmt.nav_title(v.asset.name): f"heatmaps/{v.asset.id}.md"} for v in views]},
        {"Accuracy": "accuracy.md"},
        {"Methodology": "methodology.md"},
        {"FAQ": "faq.md"},
        *archive_nav,
    ]
