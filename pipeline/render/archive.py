"""The archive pages: one page per asset listing its snapshots, how key levels moved in 24 h, downloads.

Reads the snapshot folders (:mod:`pipeline.snapshots.files`), renders
``archive_index.md.j2`` and ``archive_asset.md.j2`` and writes the downloadable
files of the recent snapshots into the docs dir (rendered from snapshot.json, or
copied from a FORMAT 1 folder: :func:`pipeline.snapshots.files.downloads`).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pyarrow as pa

from pipeline import paths
from pipeline.render import format as fmt
from pipeline.snapshots.files import (
    DOWNLOAD_FORMATS,
    LEVEL_TABLES,
    MANIFEST_FILE,
    META_FILE,
    SnapshotError,
    downloads,
    list_snapshots,
    load_manifest,
    parse_stamp,
    read_table,
)
from pipeline.timeutil import to_ms


def _when(t) -> str:
    return fmt.fmt_time(to_ms(t)) if t else fmt.DASH


def _levels(folder: Path) -> list[dict[str, Any]]:
    names = set(load_manifest(folder).get("tables", {}))
    for name in LEVEL_TABLES:
        if name in names:
            try:
                return read_table(folder, name).to_pylist()
            except (OSError, pa.ArrowInvalid, SnapshotError):
                return []
    return []


def _level_moves(now: Path, then: Path | None) -> list[dict[str, Any]]:
    """Key levels of ``now`` matched by (timeframe, side, rank) with those of ``then``."""
    def key(r):
        return (str(r.get("timeframe", "")), str(r.get("side")), r.get("rank") or 0)

    old = {key(r): r for r in _levels(then)} if then is not None else {}
    rows = _levels(now)
    # Windows in the order the build wrote them (12h, 24h, 3d...), not alphabetically.
    order = {tf: i for i, tf in reversed(list(enumerate(str(r.get("timeframe", "")) for r in rows)))}
    out = []
    for r in sorted(rows, key=lambda r: (order[key(r)[0]], *key(r)[1:])):
        if r.get("price_low") is None or r.get("price_high") is None:
            continue
        mid = (r["price_low"] + r["price_high"]) / 2
        o = old.get(key(r))
        omid = (o["price_low"] + o["price_high"]) / 2 if o and o.get("price_low") is not None else None
        out.append({
            "timeframe": r.get("timeframe"), "side": r.get("side"), "rank": r.get("rank"),
            "price_low": r["price_low"], "price_high": r["price_high"],
            "notional_usd": r.get("notional_usd"), "distance_pct": r.get("distance_pct"),
            "then_mid": omid, "then_notional": o.get("notional_usd") if o else None,
            "move_pct": (mid / omid - 1) * 100 if omid else None,
            "notional_change_pct": ((r["notional_usd"] / o["notional_usd"] - 1) * 100
                                    if o and o.get("notional_usd") and r.get("notional_usd") is not None else None),
        })
    return out


def _day_earlier(snaps: list[Path], now: Path, window_h: tuple[float, float] = (12.0, 36.0)) -> Path | None:
    """The snapshot closest to 24 h before ``now`` (within 12-36 h), if any."""
    t = parse_stamp(now.name)
    best, best_err = None, None
    for p in snaps:
        age = (t - parse_stamp(p.name)).total_seconds() / 3600
        if window_h[0] <= age <= window_h[1] and (best_err is None or abs(age - 24) < best_err):
            best, best_err = p, abs(age - 24)
    return best


def _download_set(snaps: list[Path], days: float | None) -> set[Path]:
    """Snapshots whose files the site carries: the newest, and the last of each UTC day within
    ``days`` of it (all of them with ``days=None``). A run every two hours would otherwise put
    twelve copies a day into the Pages artifact; the rest stay in the ``data`` branch."""
    if days is None or not snaps:
        return set(snaps)
    newest = parse_stamp(snaps[-1].name)
    last_of_day: dict[dt.date, Path] = {}
    for p in snaps:  # oldest first, so each day ends with its last snapshot
        taken = parse_stamp(p.name)
        if (newest - taken).total_seconds() <= days * 86400:
            last_of_day[taken.date()] = p
    return {snaps[-1], *last_of_day.values()}


def render_archive(snapshots_root: Path, docs_out: Path, registry, *, download_days: float | None = 7.0,
                   section: str = "Archive") -> list:
    """Write ``archive/index.md`` and ``archive/<asset>.md`` into ``docs_out`` and copy downloads.

    CSV/JSON (and meta/manifest) of each snapshot are written to
    ``docs_out/snapshots/<asset>/<stamp>/``; with ``download_days`` only the
    newest and the last of each day that recent are copied and linked, which
    bounds the size of the deployed site (the others are listed with their place
    in the ``data`` branch; ``None`` copies all). Returns MkDocs nav entries,
    e.g. ``[{"Archive": [{"Overview": "archive/index.md"}, {"Bitcoin": "archive/btc.md"}]}]``.
    """
    docs_out = Path(docs_out)
    out_dir = docs_out / "archive"
    out_dir.mkdir(parents=True, exist_ok=True)
    env = fmt.environment()
    assets_rows = []
    nav_assets = []
    for asset in registry.assets:
        aid = paths.safe_name(asset.id)
        snaps = list_snapshots(snapshots_root, aid)
        newest = parse_stamp(snaps[-1].name) if snaps else None
        with_downloads = _download_set(snaps, download_days)
        rows = []
        for p in reversed(snaps):
            taken = parse_stamp(p.name)
            manifest = load_manifest(p)
            linked = p in with_downloads
            links = []
            if linked:
                dest = docs_out / "snapshots" / aid / p.name
                dest.mkdir(parents=True, exist_ok=True)
                offered = downloads(p)
                for name, data in offered.items():
                    if not (dest / name).exists() or (dest / name).read_bytes() != data:
                        (dest / name).write_bytes(data)
                tables = sorted(manifest.get("tables", {}))
                links = [{"table": t, "rows": manifest["tables"][t]["rows"],
                          "formats": [(ext, f"../snapshots/{aid}/{p.name}/{t}.{ext}") for ext in DOWNLOAD_FORMATS]}
                         for t in tables if f"{t}.{DOWNLOAD_FORMATS[0]}" in offered]
            rows.append({
                "stamp": p.name, "taken": _when(taken), "price": manifest.get("price"),
                "data_from": _when(manifest.get("data_from")), "data_to": _when(manifest.get("data_to")),
                "links": links,
                "meta": f"../snapshots/{aid}/{p.name}/{META_FILE}" if linked else None,
                "manifest": f"../snapshots/{aid}/{p.name}/{MANIFEST_FILE}" if linked else None,
            })
        latest = snaps[-1] if snaps else None
        earlier = _day_earlier(snaps, latest) if latest else None
        page = env.get_template("archive_asset.md.j2").render(
            asset=asset, snapshots=rows, latest=_when(newest) if newest else None,
            earlier=_when(parse_stamp(earlier.name)) if earlier else None,
            moves=_level_moves(latest, earlier) if latest else [],
        )
        (out_dir / f"{aid}.md").write_text(page, encoding="utf-8")
        assets_rows.append({"asset": asset, "page": f"{aid}.md", "count": len(snaps),
                            "latest": _when(newest) if newest else None})
        nav_assets.append({fmt.nav_title(asset.name): f"archive/{aid}.md"})
    (out_dir / "index.md").write_text(env.get_template("archive_index.md.j2").render(assets=assets_rows),
                                      encoding="utf-8")
    return [{section: [{"Overview": "archive/index.md"}, *nav_assets]}]
