"""``build()``: run the build's steps in order (store -> views, backtests -> charts -> snapshots -> pages -> MkDocs).

Each step is a module of :mod:`pipeline.steps`; this module only orders them,
splits the work into shards and merges shards, and times each step.

Scaling out: ``shard=(i, n)`` builds only every n-th registry asset (pages,
charts, snapshots, backtest) into ``docs`` and stops before MkDocs; ``merge``
(the shards' docs dirs) assembles their asset pages with the site-wide pages and
runs MkDocs once.
"""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path

from pipeline import paths, registry
from pipeline.render import contexts
from pipeline.render.format import environment
from pipeline.steps import compute, pages, snapshots
from pipeline.steps import docs as docs_step
from pipeline.steps.report import BuildReport


def parse_shard(text: str) -> tuple[int, int]:
    """``"I/N"`` -> (I, N) with 1 <= I <= N."""
    try:
        i, n = (int(x) for x in text.split("/"))
    except ValueError:
        raise ValueError(f"--shard {text!r}: expected I/N, e.g. 1/3") from None
    if not 1 <= i <= n:
        raise ValueError(f"--shard {text!r}: need 1 <= I <= N")
    return i, n


def build(
    data_dir=None,
    *,
    assets: list[str] | None = None,
    out: Path | str | None = None,
    strict: bool = True,
    docs: Path | str | None = None,
    shard: tuple[int, int] | None = None,
    merge: list[Path] | None = None,
) -> BuildReport:
    """Build the site. ``assets`` limits the asset pages (ids); ``out`` is the site dir
    (default ``paths.SITE_OUT``), ``docs`` the generated Markdown dir (default
    ``paths.DOCS_OUT``). ``strict``: MkDocs ``--strict`` and asset failures raise
    instead of becoming warnings.
    """
    if shard and merge:
        raise ValueError("shard and merge are separate steps")
    t_all = time.perf_counter()
    # Resolved here: MkDocs runs from the checkout and reads relative paths against its config file.
    site = (Path(out) if out is not None else paths.SITE_OUT).resolve()
    docs_dir = (Path(docs) if docs is not None else paths.DOCS_OUT).resolve()
    report = BuildReport(docs_dir=docs_dir, site_dir=site)
    reg = registry.load()
    chosen = reg.assets if not assets else [reg.get(a) for a in assets]
    if shard:
        chosen = [a for k, a in enumerate(chosen) if k % shard[1] == shard[0] - 1]
    dp = paths.data_paths(data_dir).ensure()

    if merge:
        docs_step.prepare(docs_dir)
        summaries = docs_step.copy_shards([a.id for a in chosen], [Path(m) for m in merge], docs_dir)
        results = {d["id"]: d["accuracy"] for d in summaries if d.get("accuracy")}
        views = [contexts.merged_view(reg, d) for d in summaries]
    else:
        docs_step.prepare(docs_dir)
        results = compute.run(reg, chosen, dp, strict, report, heatmaps_dir=docs_dir / "heatmaps")
        snapshots.run(chosen, reg, dp, report)
        views = list(report.assets.values())

    tick = time.perf_counter()
    env = environment()
    now = dt.datetime.now(dt.UTC)
    shared = pages.common(views, now)
    written = [] if merge else pages.asset_pages(env, views, results, docs_dir, now, shared)
    if shard:
        report.pages += written
        report.timings["pages"] = time.perf_counter() - tick
        report.timings["total"] = time.perf_counter() - t_all
        return report
    report.pages += pages.accuracy_page(env, list(results.values()), docs_dir)
    report.pages += written + pages.site_pages(env, reg, docs_dir, shared)
    archive_nav = pages.archive_pages(dp.snapshots, docs_dir, reg)
    report.timings["pages"] = time.perf_counter() - tick

    tick = time.perf_counter()
    # MkDocs writes a sibling folder; the site is swapped in only when nothing was held back, so a
    # held-back build leaves the previous site untouched (its candidate is kept beside it to inspect).
    staging = site.with_name(site.name + ".new")
    docs_step.mkdocs(docs_dir, staging, strict, report.warnings, pages.nav(views, archive_nav))
    if report.held:
        report.held_site = docs_step.replace_dir(staging, site.with_name(site.name + ".held"))
    else:
        docs_step.replace_dir(staging, site)
    report.timings["mkdocs"] = time.perf_counter() - tick
    report.timings["total"] = time.perf_counter() - t_all
    return report
