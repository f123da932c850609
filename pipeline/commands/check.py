"""``liqmap check``: validate the registry (and report the store's row counts) without building."""

from __future__ import annotations

import sys
from pathlib import Path

from pipeline import paths
from pipeline.commands import load_registry


def configure(p) -> None:
    p.add_argument("--assets", type=Path, default=paths.ASSETS_YAML, help="registry file (default: assets.yaml)")


def run(args) -> int:
    reg = load_registry(args.assets)
    if reg is None:
        return 2
    print(f"{args.assets.name}: {len(reg.assets)} assets OK: {', '.join(a.id for a in reg.assets)}")
    db = paths.data_paths(args.data_dir).db
    if db.exists():
        from pipeline.store.db import Store, StoreError

        try:
            with Store(db, read_only=True) as s:
                for row in s.query("table_counts").to_pylist():
                    print(f"  {row['table_name']}: {row['n']} rows")
        except StoreError as exc:
            print(f"liqmap check: {exc}", file=sys.stderr)
            return 2
    return 0
