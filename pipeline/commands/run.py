"""``liqmap run``: collect, then build the site.

The build runs even when some (or every) source failed: it publishes from what
the store holds, and the pages show each source's last status. The exit status
is the build's (1 failed, 3 a snapshot held back by the sanity gate); a
collection in which every source failed is reported on stderr but does not
stop the build. ``--assets`` and ``--exchanges`` limit what is collected; the
site is always built for every asset.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pipeline import paths
from pipeline.commands import build as build_cmd
from pipeline.commands.collect import collect_into
from pipeline.commands.collect import configure as configure_collect


def configure(p) -> None:
    configure_collect(p)
    p.add_argument("--out", type=Path, default=None, help=f"site directory (default: {paths.SITE_OUT})")
    p.add_argument("--docs", type=Path, default=None, help=f"generated Markdown dir (default: {paths.DOCS_OUT})")
    p.add_argument("--no-strict", action="store_true", help="do not pass --strict to MkDocs")


def run(args) -> int:
    report = collect_into(args)
    if report is None:
        return 2
    if report.exit_code:
        print("liqmap run: no source delivered data this time; building from what is stored", file=sys.stderr)
    return build_cmd.run(argparse.Namespace(
        data_dir=args.data_dir, assets=None, out=args.out, docs=args.docs, no_strict=args.no_strict,
        shard=None, merge=None,
    ))
