"""``liqmap snapshot show|verify ASSET/STAMP``: a snapshot, with what it does not store rebuilt from the history.

Snapshots keep the metadata, the key levels and the sha256 of every output; grids, the
level book and the windows are regenerated from the store (rebuilt from the immutable
history by ``liqmap restore``) up to each market's recorded watermark. ``verify`` checks
the stored files and the regenerated ones against the manifest (exit 1 on any difference);
``show`` prints the snapshot and, with ``--out DIR``, writes every output there.
``thin`` keeps one snapshot per UTC day (its last) for snapshots older than a week.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

_ID = re.compile(r"^([a-z0-9][a-z0-9_-]{0,31})/(\d{4}-\d{2}-\d{2}T\d{4}Z)$")


def configure(p) -> None:
    p.add_argument("action", choices=("show", "verify", "thin"),
                   help="show a snapshot, verify it against its sha256, or thin every asset's snapshots older than "
                        "a week to one per day")
    p.add_argument("id", metavar="ASSET/STAMP", nargs="?", help="e.g. btc/2026-09-21T1640Z (the folder under snapshots/)")
    p.add_argument("--out", type=Path, default=None, help="show: write every output (stored and regenerated) here")


def run(args) -> int:
    from pipeline import paths
    from pipeline.commands import load_registry
    from pipeline.snapshots import files
    from pipeline.steps import snapshots
    from pipeline.store.db import Store, StoreError

    if args.action == "thin":
        return _thin(args)
    m = _ID.match(args.id or "")
    if not m:
        print(f"liqmap snapshot: {args.id!r} is not ASSET/YYYY-MM-DDTHHMMZ", file=sys.stderr)
        return 2
    dp = paths.data_paths(args.data_dir)
    folder = dp.snapshots / m.group(1) / m.group(2)
    if not files.is_snapshot(folder):
        print(f"liqmap snapshot: no snapshot at {folder}", file=sys.stderr)
        return 2
    reg = load_registry()
    if reg is None:
        return 2
    if not dp.db.exists():
        print(f"liqmap snapshot: no store at {dp.db}; run `liqmap restore` first", file=sys.stderr)
        return 2
    try:
        with Store(dp.db, read_only=True) as store:
            outputs = snapshots.regenerate(folder, reg, store)
    except (ValueError, StoreError) as exc:
        print(f"liqmap snapshot: {exc}", file=sys.stderr)
        return 2
    problems = files.verify(folder) + files.check_outputs(folder, outputs)
    manifest = files.load_manifest(folder)
    if args.action == "show":
        meta = files.load_meta(folder)
        print(f"{args.id}: {manifest.get('asset')} taken {manifest.get('taken_at')}, price {manifest.get('price')}, "
              f"data {manifest.get('data_from')} .. {manifest.get('data_to')}, liqmap {meta.get('liqmap_version')}")
        for key, w in sorted((meta.get("watermarks") or {}).items()):
            print(f"  market {key}: candles to {w.get('candles_ms')} ms, open interest to {w.get('oi_ms')} ms")
        for name in sorted(manifest.get("tables", {})):
            st = manifest["tables"][name]
            kept = "regenerated" if f"{name}.parquet" in manifest.get("recomputed", {}) else "stored"
            print(f"  {name}: {st['rows']} rows ({kept})")
        if args.out is not None:
            args.out.mkdir(parents=True, exist_ok=True)
            for name, data in files.stored_files(folder).items():
                (args.out / name).write_bytes(data)
            for name, data in outputs.items():
                (args.out / name).write_bytes(data)
            print(f"wrote {len(outputs)} outputs to {args.out}")
    for line in problems:
        print(f"problem: {line}", file=sys.stderr)
    if args.action == "verify" and not problems:
        print(f"{args.id}: intact; {len(manifest.get('recomputed', {}))} outputs regenerated from the history "
              "match their sha256")
    return 1 if problems else 0


def _thin(args) -> int:
    import datetime as dt

    from pipeline import paths
    from pipeline.snapshots import files

    dp = paths.data_paths(args.data_dir)
    root = dp.snapshots
    assets = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")) if root.is_dir() else []
    removed = 0
    for a in assets:
        try:
            removed += len(files.thin(root, a, dt.datetime.now(dt.UTC)))
        except ValueError as exc:  # a folder name that is not an asset id: leave it alone, say so
            print(f"liqmap snapshot thin: {exc}", file=sys.stderr)
    print(f"thinned {removed} intra-day snapshot(s) older than a week ({len(assets)} assets)")
    return 0
