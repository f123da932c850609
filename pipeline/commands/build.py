"""``liqmap build``: build the static site from the store (the bundled sample if the store is empty)."""

from __future__ import annotations

import sys
from pathlib import Path

from pipeline import paths


def configure(p) -> None:
    p.add_argument("--out", type=Path, default=None, help=f"site directory (default: {paths.SITE_OUT})")
    p.add_argument("--asset", action="append", dest="assets", metavar="ID", help="build only this asset (repeatable)")
    p.add_argument("--shard", metavar="I/N", help="build only every N-th asset starting at the I-th (pages, snapshots; no MkDocs)")
    p.add_argument("--docs", type=Path, default=None, help=f"generated Markdown dir (default: {paths.DOCS_OUT})")
    p.add_argument("--merge", type=Path, nargs="+", metavar="SHARD_DOCS", help="assemble shard outputs and run MkDocs once")
    p.add_argument("--no-strict", action="store_true", help="do not pass --strict to MkDocs; asset failures become warnings")


def run(args) -> int:
    from pipeline.build import build, parse_shard
    from pipeline.registry import RegistryError

    try:
        shard = parse_shard(args.shard) if args.shard else None
        report = build(args.data_dir, assets=args.assets, out=args.out, strict=not args.no_strict,
                       docs=args.docs, shard=shard, merge=args.merge)
    except (RegistryError, KeyError, RuntimeError, ValueError) as exc:
        print(f"build failed: {exc}", file=sys.stderr)
        return 1
    for w in report.warnings:
        print(f"warning: {w}", file=sys.stderr)
    print(report.summary())
    if report.held:
        print("snapshot held back by the sanity gate; not publishing:", file=sys.stderr)
        for problem in report.held:
            print(f"  - {problem}", file=sys.stderr)
        if report.held_site:
            print(f"the published site was left as it was; this build's site is in {report.held_site}",
                  file=sys.stderr)
        return 3
    return 0
