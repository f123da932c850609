"""``liqmap export``: write the store's raw tables as Parquet history partitions.

The history is append-only: only rows it lacks are written, as one new small
file per table, and then compacted (daily, then monthly files; see
:mod:`pipeline.store.history`). Written and compacted files are listed, so the
publish workflow commits to the ``data`` branch only when something new was collected.
"""

from __future__ import annotations

import sys
from pathlib import Path


def configure(p) -> None:
    p.add_argument("--to", type=Path, default=None,
                   help="history directory (default: <data dir>/history)")


def run(args) -> int:
    from pipeline import paths
    from pipeline.store import compaction, history
    from pipeline.store.db import Store, StoreError

    dp = paths.data_paths(args.data_dir)
    dest = args.to if args.to is not None else dp.history
    if not dp.db.exists():
        print(f"no store at {dp.db}: nothing to export", file=sys.stderr)
        return 1
    try:
        with Store(dp.db, read_only=True) as store:
            report = history.export(store, dest)
            done = compaction.compact(dest, schemas={t: history._store_schema(store, t) for t in history.PARTITIONED})
        report.changed += [p for p in done.written if p not in report.changed]
        report.removed += done.removed
        report.repaired += done.quarantined
    except StoreError as exc:
        print(f"export failed: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"export failed: cannot write {exc.filename or dest}: {exc.strerror or exc}; make the history "
              "directory writable (or pass --to) and run export again; nothing in the store was changed",
              file=sys.stderr)
        return 2
    for line in report.repaired:
        print(f"warning: {line}", file=sys.stderr)
    for path in report.changed:
        print(f"changed {path.relative_to(report.root)}")
    for path in report.removed:
        print(f"compacted {path.relative_to(report.root)}")
    new = ", ".join(f"{t} {n}" for t, n in report.new_rows.items() if n)
    rows = ", ".join(f"{t} {n}" for t, n in report.rows.items())
    print(f"history {report.root}: {len(report.changed)} partitions written, {len(report.removed)} compacted away, "
          f"{report.unchanged} tables unchanged (new rows: {new or 'none'}; store: {rows} rows)")
    for err in report.errors:
        print(f"error: {err}", file=sys.stderr)
    return 1 if report.errors else 0
