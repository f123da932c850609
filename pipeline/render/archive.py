"""The archive pages: one page per asset listing its snapshots, how key levels moved in 24 h, downloads.

Reads the snapshot folders (:mod:`pipeline.snapshots.files`), renders
``archive_index.md.j2`` and ``archive_asset.md.j2`` and writes the downloadable
files of the recent snapshots into the docs dir (rendered from snapshot.json, or
copied from a FORMAT 1 folder: :func:`pipeline.snapshots.files.downloads`).
"""

from __future__ import annotations

import bisect
import datetime as dt
import math
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
    load_meta,
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
    rows = [r for r in rows if r.get("price_low") is not None and r.get("price_high") is not None]
    # Each window's levels by price, highest first: shorts above, longs below, as on the asset page.
    for r in sorted(rows, key=lambda r: (order[key(r)[0]], -(r["price_low"] + r["price_high"]))):
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


def _day_earlier(snaps: list[Path], now: Path, window_h: tuple[float, float] = (12.0, 36.0),
                 times: list[dt.datetime] | None = None) -> Path | None:
    """The snapshot closest to 24 h before ``now`` (within 12-36 h), if any (``times``: the parsed stamps)."""
    t = parse_stamp(now.name)
    times = times if times is not None else [parse_stamp(p.name) for p in snaps]
    best, best_err = None, None
    # Oldest first: only the snapshots between 36 h and 12 h before can match.
    lo = bisect.bisect_left(times, t - dt.timedelta(hours=window_h[1]))
    hi = bisect.bisect_right(times, t - dt.timedelta(hours=window_h[0]))
    for p, taken in zip(snaps[lo:hi], times[lo:hi]):
        err = abs((t - taken).total_seconds() / 3600 - 24)
        if best_err is None or err < best_err:
            best, best_err = p, err
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


def _plain(v: Any) -> str:
    """A metadata value as text: lists comma-separated, pairs in parentheses, no JSON punctuation."""
    if v is None:
        return "none"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return f"{v:.10g}" if math.isfinite(v) else fmt.DASH
    if isinstance(v, list):
        return ", ".join(f"({_plain(x)})" if isinstance(x, list) else _plain(x) for x in v)
    if isinstance(v, dict):
        return "; ".join(f"{k}: {_plain(x)}" for k, x in sorted(v.items()))
    return str(v)


def _kb(n: Any) -> str:
    return f"{n / 1000:.1f} kB" if isinstance(n, int) else fmt.DASH


def _meta_rows(meta: dict, manifest: dict) -> list[tuple[str, str]]:
    """A snapshot's metadata as (field, value) rows, in the order a reader asks for them."""
    rows = [("Asset", _plain(meta.get("asset"))), ("Taken", _when(meta.get("taken_at"))),
            ("Price", fmt.usd(manifest.get("price"))),
            ("Input data", f"{_when(manifest.get('data_from'))} – {_when(manifest.get('data_to'))}"),
            ("Sample data", _plain(bool(meta.get("sample", meta.get("is_sample", False))))),
            ("Markets", _plain(meta.get("markets", []))), ("Windows", _plain(meta.get("timeframes", [])))]
    for key, w in sorted((meta.get("watermarks") or {}).items()):
        if isinstance(w, dict):
            rows.append((f"History of {key}", f"candles {_when(w.get('first_ms'))} – {_when(w.get('candles_ms'))}, "
                                              f"open interest to {_when(w.get('oi_ms'))}"))
    rows += [(f"Model: {k.replace('_', ' ')}", _plain(v)) for k, v in sorted((meta.get("model") or {}).items())]
    listed = manifest.get("files", {})
    rows += [("liqmap version", _plain(meta.get("liqmap_version"))),
             ("Snapshot format", _plain(meta.get("format"))),
             ("Stored files", f"{len(listed)} + manifest, "
                              f"{_kb(sum(e.get('bytes', 0) for e in listed.values()))}"),
             ("Rebuilt from the history on demand", _plain(sorted(manifest.get("recomputed", {}))) or "none")]
    return rows


def _map(meta: dict, manifest: dict, folder: Path) -> dict | None:
    """What the snapshot's map image covers (``meta["map"]``), if it has one."""
    m = meta.get("map")
    if not isinstance(m, dict) or m.get("file") not in manifest.get("files", {}) or not (folder / m["file"]).is_file():
        return None
    return {"file": m["file"], "window": _plain(m.get("label") or m.get("window")), "partial": bool(m.get("partial")),
            "from": _when(m.get("t0_ms")), "to": _when(m.get("t1_ms")), "top": fmt.usd(m.get("price_high")),
            "bottom": fmt.usd(m.get("price_low")), "width": m.get("width"), "height": m.get("height"),
            "bytes": _kb(manifest["files"][m["file"]].get("bytes"))}


def _write(dest: Path, data: bytes) -> None:
    """Write ``data`` unless ``dest`` already holds it (rebuilds leave unchanged files alone)."""
    if not dest.exists() or dest.read_bytes() != data:
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(data)


def _snapshot(p: Path, aid: str, linked: bool, docs_out: Path) -> dict[str, Any]:
    """One snapshot as the pages show it; copies its image (always) and downloads (``linked``) into the docs.
    Paths are relative to the docs root (the templates prefix them with the page's way back up)."""
    manifest = load_manifest(p)
    meta = load_meta(p)
    where = f"snapshots/{aid}/{p.name}"
    image = _map(meta, manifest, p)
    if image:
        _write(docs_out / where / image["file"], (p / image["file"]).read_bytes())
        image["path"] = f"{where}/{image['file']}"
    links = []
    if linked:
        offered = downloads(p)  # format 2 renders them from snapshot.json, format 1 reads the stored files
        for name, data in offered.items():
            _write(docs_out / where / name, data)
        links = [{"table": t, "rows": manifest["tables"][t]["rows"],
                  "formats": [(ext, f"{where}/{t}.{ext}") for ext in DOWNLOAD_FORMATS]}
                 for t in sorted(manifest.get("tables", {})) if f"{t}.{DOWNLOAD_FORMATS[0]}" in offered]
    taken = parse_stamp(p.name)
    return {
        "stamp": p.name, "taken": _when(taken), "price": manifest.get("price"),
        "data_from": _when(manifest.get("data_from")), "data_to": _when(manifest.get("data_to")),
        "page": f"archive/{aid}/{p.name}.md", "image": image, "links": links, "where": where,
        "meta": f"{where}/{META_FILE}" if linked else None, "manifest": f"{where}/{MANIFEST_FILE}" if linked else None,
        "meta_rows": _meta_rows(meta, manifest),
    }


def render_archive(snapshots_root: Path, docs_out: Path, registry, *, download_days: float | None = 7.0,
                   section: str = "Archive") -> list:
    """Write ``archive/index.md``, ``archive/<asset>.md`` and one page per snapshot,
    ``archive/<asset>/<stamp>.md``, into ``docs_out``; copy images and downloads.

    Each snapshot's map image is copied to ``docs_out/snapshots/<asset>/<stamp>/``; so are
    its CSV/JSON (and meta/manifest), but with ``download_days`` only for the newest and the
    last of each day that recent, which bounds the size of the deployed site (the others are
    listed with their place in the ``data`` branch; ``None`` copies all). Snapshot pages are
    left out of the navigation and the search (each links to its neighbours). Returns MkDocs
    nav entries, e.g. ``[{"Archive": [{"Overview": "archive/index.md"}, {"Bitcoin": "archive/btc.md"}]}]``.
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
        times = [parse_stamp(p.name) for p in snaps]
        with_downloads = _download_set(snaps, download_days)
        records = [_snapshot(p, aid, p in with_downloads, docs_out) for p in snaps]  # oldest first
        for i, (p, rec) in enumerate(zip(snaps, records)):
            earlier = _day_earlier(snaps, p, times=times)
            rec["earlier"] = _when(parse_stamp(earlier.name)) if earlier else None
            rec["moves"] = _level_moves(p, earlier)
            page = env.get_template("archive_snapshot.md.j2").render(
                asset=asset, s=rec, prev=records[i - 1] if i else None,
                next=records[i + 1] if i + 1 < len(records) else None, base="../../")
            (out_dir / aid).mkdir(exist_ok=True)
            (out_dir / aid / f"{p.name}.md").write_text(page, encoding="utf-8")
        latest = records[-1] if records else None
        page = env.get_template("archive_asset.md.j2").render(
            asset=asset, snapshots=list(reversed(records)), s=latest, latest=latest["taken"] if latest else None,
            prev=records[-2] if len(records) > 1 else None, next=None, base="../")
        (out_dir / f"{aid}.md").write_text(page, encoding="utf-8")
        assets_rows.append({"asset": asset, "page": f"{aid}.md", "count": len(snaps),
                            "latest": latest["taken"] if latest else None})
        nav_assets.append({fmt.nav_title(asset.name): f"archive/{aid}.md"})
    (out_dir / "index.md").write_text(env.get_template("archive_index.md.j2").render(assets=assets_rows),
                                      encoding="utf-8")
    return [{section: [{"Overview": "archive/index.md"}, *nav_assets]}]
