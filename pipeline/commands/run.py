"""``liqmap run``: collect, then build the site.

The build runs even when some (or every) source failed: it publishes from what
the store holds, and the pages show each source's last status. The exit status
is the build's (1 if it failed); a collection in which every source failed is
reported on stderr but does not stop the build.
"""

from __future__ import annotations

import sys

from .collect import collect_into, configure as configure_collect


def configure(p) -> None:
    configure_collect(p)


def run(args) -> int:
    report = collect_into(args)
    if report is None:
        return 2
    if report.exit_code:
        print("liqmap run: no source delivered data this time; building from what is stored", file=sys.stderr)
    from ..build import build  # imported only now: collecting must not pay for the site stack
    from ..registry import RegistryError

    try:
        built = build(data_dir=args.data_dir)
    except (RegistryError, KeyError, RuntimeError) as exc:
        print(f"build failed: {exc}", file=sys.stderr)
        return 1
    for w in getattr(built, "warnings", None) or []:
        print(f"warning: {w}", file=sys.stderr)
    summary = getattr(built, "summary", None)
    if callable(summary):
        print(summary())
    return 0
