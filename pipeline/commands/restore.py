"""``liqmap restore``: rebuild the DuckDB cache from the Parquet history partitions.

Idempotent (every row goes through ``Store.upsert``), so it is safe to run on a
store that already holds some or all of the history.
"""

from __future__ import annotations

import sys
from pathlib import Path


def configure(p) -> None:
    p.add_argument("--from", dest="src", type=Path, default=None,
                   help="history directory (default: <data dir>/history)")


def run(args) -> int:
    from pipeline import paths
    from pipeline.store import history
    from pipeline.store.db import Store

    dp = paths.data_paths(args.data_dir)
    src = args.src if args.src is not None else dp.history
    if not src.is_dir():
        # A first run has no history yet: not an error, the workflow continues with an empty store.
        print(f"no history at {src}: nothing to restore")
        return 0
    try:
        with Store(dp.ensure().db) as store:
            report = history.restore(store, src)
    except history.HistoryError as exc:
        print(f"restore failed: {exc}", file=sys.stderr)
        return 2
    rows = ", ".join(f"{t} {n} ({report.inserted[t]} new)" for t, n in report.rows.items() if n)
    print(f"restored {report.files} partitions from {src} into {dp.db}: {rows or 'no rows'}")
    return 0
