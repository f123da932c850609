"""``liqmap build``: build the static site from the store (the bundled sample if the store is empty)."""

from __future__ import annotations

import sys
from pathlib import Path

from .. import paths


def configure(p) -> None:
    p.add_argument("--out", type=Path, default=None, help=f"site directory (default: {paths.SITE_OUT})")
    p.add_argument("--asset", action="append", dest="assets", metavar="ID", help="build only this asset (repeatable)")
    p.add_argument("--no-strict", action="store_true", help="do not pass --strict to MkDocs; asset failures become warnings")


def run(args) -> int:
    from ..build import build
    from ..registry import RegistryError

    try:
        report = build(args.data_dir, assets=args.assets, out=args.out, strict=not args.no_strict)
    except (RegistryError, KeyError, RuntimeError) as exc:
        print(f"build failed: {exc}", file=sys.stderr)
        return 1
    for w in report.warnings:
        print(f"warning: {w}", file=sys.stderr)
    print(report.summary())
    if report.held:
        print("snapshot held back by the sanity gate; not publishing:", file=sys.stderr)
        for problem in report.held:
            print(f"  - {problem}", file=sys.stderr)
        return 3
    return 0
