"""Compaction of the history (:mod:`pipeline.store.history`): fewer, better-compressed files, nothing lost.

``run=`` files of earlier UTC days fold into ``date=`` files (current month) or per-exchange ``month=`` files
(closed months); day files (and old per-market day files) of closed months fold into month files. Targets are
written, merged with what they held (the higher tier winning on equal keys), before any source is removed, so
an interrupted compaction leaves duplicates, never a gap.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from pipeline.store.history import (
    PARTITIONED,
    HistoryError,
    HistoryFile,
    _atomic_write,
    _check_rows,
    _dedupe,
    _load_file,
    _now,
    _ranked,
    _when_column,
    day_path,
    history_files,
    month_path,
    parquet_bytes,
    quarantine_file,
)


@dataclass
class CompactReport:
    root: Path
    written: list[Path] = field(default_factory=list)
    removed: list[Path] = field(default_factory=list)
    rows: int = 0  # rows moved
    quarantined: list[str] = field(default_factory=list)


def _schema_of(files: list[HistoryFile]) -> pa.Schema | None:
    for h in reversed(files):  # the newest file has the newest columns
        try:
            return pq.read_schema(h.path).remove_metadata()
        except (pa.ArrowException, OSError):
            continue
    return None


def compact(root: Path, *, now: dt.datetime | None = None, schemas: dict[str, pa.Schema] | None = None) -> CompactReport:
    """Fold ``run=`` files of earlier days into day files (current month) or month files (closed months), and
    day files of closed months into month files. Loses nothing: the target files are written (merged with
    what they held, the higher tier winning on equal keys) before any source file is removed."""
    root = Path(root)
    now = _now(now)
    today, this_month = now.strftime("%Y-%m-%d"), now.strftime("%Y-%m")
    report = CompactReport(root)
    if not root.is_dir():
        return report
    for table, files in history_files(root).items():
        if table not in PARTITIONED:
            continue

        def movable(h: HistoryFile) -> bool:
            if h.tier == "run":
                return f"{h.period[:4]}-{h.period[4:6]}-{h.period[6:8]}" < today
            if h.tier in ("day", "legacy"):
                return h.tier == "legacy" or h.period[:7] < this_month
            return False

        moving = [h for h in files if movable(h)]
        if not moving:
            continue
        schema = (schemas or {}).get(table) or _schema_of(files)
        parts, sources = [], []
        for h in moving:
            try:
                tbl = _load_file(h, schema)
                _check_rows(table, h, tbl)
            except HistoryError as exc:
                dest = quarantine_file(root, h.path, str(exc))
                report.quarantined.append(f"{h.path}: {exc}; moved to {dest}; compaction went on without it")
                continue
            parts.append(_ranked(tbl, h.rank))
            sources.append(h)
        if not sources:
            continue
        rows = pa.concat_tables(parts)
        when = rows.column(_when_column(table))
        month = pc.strftime(when, format="%Y-%m")
        day = pc.strftime(when, format="%Y-%m-%d")
        closed = pc.less(month, this_month)
        # Targets: (tier, key) -> file; months per exchange, days per date.
        targets: dict[tuple[str, str, str], Path] = {}
        row_target = []
        for ex, mo, d, c in zip(rows.column("exchange").to_pylist(), month.to_pylist(), day.to_pylist(),
                                closed.to_pylist()):
            key = ("month", ex, mo) if c else ("day", "", d)
            row_target.append(key)
            if key not in targets:
                targets[key] = month_path(root, table, ex, mo) if c else day_path(root, table, d)
        by_path = {h.path: h for h in files}
        moved = {h.path for h in sources}
        tkeys = np.array([f"{k[0]}|{k[1]}|{k[2]}" for k in row_target], dtype=object)
        for key, path in sorted(targets.items(), key=lambda kv: str(kv[1])):
            mine = rows.filter(pa.array(tkeys == f"{key[0]}|{key[1]}|{key[2]}"))
            existing = by_path.get(path)
            if existing is not None and path not in moved:
                try:
                    mine = pa.concat_tables([_ranked(_load_file(existing, schema), existing.rank), mine])
                except HistoryError as exc:
                    dest = quarantine_file(root, path, str(exc))
                    report.quarantined.append(f"{path}: {exc}; moved to {dest}; written again from the moved rows")
            merged = _dedupe(table, mine)
            data = parquet_bytes(merged)
            if not (path.exists() and path.read_bytes() == data):
                _atomic_write(path, data)
                report.written.append(path)
            report.rows += merged.num_rows
        for h in sources:
            if h.path not in targets.values():
                h.path.unlink()
                report.removed.append(h.path)
                _prune(h.path.parent, root)
    return report


def _prune(folder: Path, root: Path) -> None:
    """Remove folders left empty by compaction, up to (not including) the table folder."""
    while folder != root and folder.parent != root and folder.is_dir() and not any(folder.iterdir()):
        folder.rmdir()
        folder = folder.parent


