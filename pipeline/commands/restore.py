"""``liqmap restore``: rebuild the DuckDB cache from the Parquet history partitions.

Idempotent (each table is loaded in one INSERT OR REPLACE, the history's value of a key winning), so it is
safe to run on a store that already holds some or all of the history.
"""

from __future__ import annotations

import sys
from pathlib import Path


def load_registry_quietly():
    """The registry for the quarantine thresholds; the defaults when it is broken (restore must still run)."""
    from pipeline import registry

    try:
        return registry.load()
    except registry.RegistryError:
        return None


def configure(p) -> None:
    p.add_argument("--from", dest="src", type=Path, default=None,
                   help="history directory (default: <data dir>/history)")


def run(args) -> int:
    from pipeline import paths
    from pipeline.collect.live import refresh_quarantine
    from pipeline.store import history
    from pipeline.store.db import Store, StoreError

    dp = paths.data_paths(args.data_dir)
    src = args.src if args.src is not None else dp.history
    if not src.is_dir():
        # A first run has no history yet: not an error, the workflow continues with an empty store.
        print(f"no history at {src}: nothing to restore")
        return 0
    try:
        with Store(dp.db) as store:
            report = history.restore(store, src)
            refresh_quarantine(store, load_registry_quietly())
    except (history.HistoryError, StoreError) as exc:
        print(f"restore failed: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"restore failed: {exc.filename or src}: {exc.strerror or exc}; make the data directory writable "
              "and run restore again", file=sys.stderr)
        return 2
    for line in report.quarantined:
        print(f"warning: {line}", file=sys.stderr)
    rows = ", ".join(f"{t} {n} ({report.inserted[t]} new)" for t, n in report.rows.items() if n)
    print(f"restored {report.files} partitions from {src} into {dp.db}: {rows or 'no rows'}")
    return 0
