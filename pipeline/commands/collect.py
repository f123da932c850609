"""``liqmap collect``: fetch public exchange data (candles, open interest, funding, liquidations) into the store.

Incremental without permanent holes: each source is fetched from its last stored
row (minus a small overlap) or from the earliest hole or failed range in its recent
past (``pipeline.collect``); the first run looks back ``--days``. One failing or geo-blocked
exchange never stops the others; every outcome lands in ``raw_source_runs``.
Exit status 0 if at least one source delivered, 1 if every attempted source failed.
"""

from __future__ import annotations

import sys

from pipeline import paths
from pipeline.commands import load_registry
from pipeline.venues import EXCHANGES


def _csv(value: str) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()]


def configure(p) -> None:
    p.add_argument("--assets", type=_csv, default=None, help="comma-separated asset ids (default: all in assets.yaml)")
    p.add_argument("--exchanges", type=_csv, default=None,
                   help=f"comma-separated exchanges (default: all: {','.join(EXCHANGES)})")
    p.add_argument("--days", type=float, default=7.0, help="look-back of a first run with nothing stored (default: 7)")
    p.add_argument("--quiet", action="store_true", help="no per-source progress lines")


def reporter(quiet: bool = False):
    """Progress on a terminal: one stderr line per finished source; otherwise nothing until the table."""
    from pipeline.collect.report import progress_line

    if quiet or not sys.stderr.isatty():
        return None
    return lambda o: print(progress_line(o), file=sys.stderr, flush=True)


def print_report(report, quiet: bool = False) -> None:
    if sys.stderr.isatty():
        print(report.summary(), file=sys.stderr)
    elif not quiet:
        print(report.table(), file=sys.stderr)
    else:
        print(report.summary(), file=sys.stderr)


def collect_into(args):
    """Shared by ``collect`` and ``run``: returns the RunReport (or None after a usage error)."""
    from pipeline.collect.live import collect
    from pipeline.store.db import Store, StoreError

    reg = load_registry()
    if reg is None:
        return None
    try:
        with Store(paths.data_paths(args.data_dir).db) as store:
            report = collect(store, assets=args.assets, exchanges=args.exchanges, reg=reg,
                             lookback_days=args.days, progress=reporter(args.quiet))
    except (ValueError, StoreError) as exc:
        print(f"liqmap collect: {exc}", file=sys.stderr)
        return None
    print_report(report, args.quiet)
    return report


def run(args) -> int:
    report = collect_into(args)
    if report is None:
        return 2
    return report.exit_code
