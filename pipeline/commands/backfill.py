"""``liqmap backfill --since DATE``: load Binance's public daily archive (5m klines + 5m OI metrics).

Goes beyond the REST API's 30 days of open interest. Each zip is checked
against its published sha256 (``.CHECKSUM``) before use and cached under the
data directory's ``archive-cache/`` so a repeated backfill downloads nothing.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys

from pipeline import paths
from pipeline.commands import load_registry
from pipeline.commands.collect import _csv, print_report, reporter


def _date(value: str) -> dt.date:
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD): {value!r}") from None


def configure(p) -> None:
    p.add_argument("--since", type=_date, required=True, help="first UTC day to load (YYYY-MM-DD)")
    p.add_argument("--until", type=_date, default=None, help="last UTC day (default: yesterday)")
    p.add_argument("--assets", type=_csv, default=None, help="comma-separated asset ids (default: all)")
    p.add_argument("--quiet", action="store_true", help="no per-source progress lines")


def run(args) -> int:
    from pipeline.collect.backfill import backfill
    from pipeline.store.db import Store, StoreError

    reg = load_registry()
    if reg is None:
        return 2
    dp = paths.data_paths(args.data_dir)
    try:
        with Store(dp.db) as store:
            report = backfill(store, args.since, args.until, assets=args.assets, reg=reg,
                              cache_dir=dp.archive_cache, progress=reporter(args.quiet))
    except (ValueError, StoreError) as exc:
        print(f"liqmap backfill: {exc}", file=sys.stderr)
        return 2
    print_report(report, args.quiet)
    return report.exit_code
