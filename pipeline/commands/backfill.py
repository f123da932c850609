"""``liqmap backfill --since DATE``: load Binance's public daily archive (5m klines + 5m OI metrics).

Goes beyond the REST API's 30 days of open interest. Each zip is checked
against its published sha256 (``.CHECKSUM``) before use and cached under the
data directory's ``archive-cache/`` so a repeated backfill downloads nothing.

Bounded for the publish workflow's first runs: ``--since 365d`` means a year before
yesterday, and ``--max-days N`` loads at most N days per run, working backwards from the
earliest Binance day already stored (or from yesterday on an empty store), so later runs
continue where this one stopped and a long history is left alone. The rows go through
``liqmap export`` into the compacted monthly history like any other.
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


def _since(value: str) -> dt.date | int:
    """A date, or ``<N>d``: N days before yesterday (resolved against the run's clock)."""
    if value.endswith("d") and value[:-1].isdigit() and 0 < int(value[:-1]) <= 3660:
        return int(value[:-1])
    return _date(value)


def _earliest_stored(store, reg, assets) -> dt.date | None:
    """The first UTC day of Binance candles stored for the chosen assets (None when there is none)."""
    from pipeline.collect.live import select_assets

    firsts = []
    for a in select_assets(reg, assets):
        symbol = a.instruments.get("binance")
        if symbol:
            row = store.con.execute("SELECT min(ts) FROM raw_candles WHERE exchange = 'binance' AND instrument = ?",
                                    [symbol]).fetchall()[0][0]
            firsts.append(row.date() if row is not None else None)
    if not firsts or any(f is None for f in firsts):
        return None  # an asset without any: start from the newest day for all (cached days cost nothing)
    return max(firsts)


def configure(p) -> None:
    p.add_argument("--since", type=_since, required=True,
                   help="first UTC day to load (YYYY-MM-DD, or Nd: N days before yesterday, e.g. 365d)")
    p.add_argument("--max-days", type=int, default=None,
                   help="load at most this many days per run, backwards from the earliest Binance day stored "
                        "(later runs continue); without it, every day from --since to --until")
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
            since, until = _window(store, reg, args)
            if since is None:
                print(f"backfill: the history already reaches {until + dt.timedelta(days=1)}: nothing to load")
                return 0
            report = backfill(store, since, until, assets=args.assets, reg=reg, now_ms=int(_now_s() * 1000),
                              cache_dir=dp.archive_cache, progress=reporter(args.quiet))
    except (ValueError, StoreError) as exc:
        print(f"liqmap backfill: {exc}", file=sys.stderr)
        return 2
    print_report(report, args.quiet)
    return report.exit_code


def _window(store, reg, args) -> tuple[dt.date | None, dt.date]:
    """The days this run loads: [since, until], cut to ``--max-days`` backwards from the earliest stored day."""
    yesterday = dt.datetime.fromtimestamp(_now_s(), dt.UTC).date() - dt.timedelta(days=1)
    until = args.until or yesterday
    since = until - dt.timedelta(days=args.since) if isinstance(args.since, int) else args.since
    if args.max_days is not None:
        first = _earliest_stored(store, reg, args.assets)
        if first is not None:
            until = min(until, first - dt.timedelta(days=1))
        if since > until:
            return None, until
        since = max(since, until - dt.timedelta(days=max(args.max_days, 1) - 1))
    return since, until


def _now_s() -> float:
    """The run's clock (the collectors' clock, so tests can move it)."""
    from pipeline.collect import live

    return live.time.time()
