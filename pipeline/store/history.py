"""The store's raw history as Parquet partitions: the durable copy of what was collected.

The DuckDB file is a cache that can be thrown away; the history directory
(``data/history`` by default, committed to the ``data`` branch by the publish
workflow) is the record. Layout, one file per partition::

    history/<table>/exchange=<exchange>/instrument=<instrument>/date=<YYYY-MM-DD>/part.parquet
    history/raw_fx_rates/part.parquet            (small, unpartitioned)

``raw_source_runs`` is partitioned by the day the run started.

Design choices, each for a reason:

* Bytes are deterministic (rows in primary-key order, fixed writer options), so
  re-exporting an unchanged day produces the same file and git sees no change.
* A partition is rewritten only when its *content* changed: identical bytes are
  skipped without parsing; differing bytes with equal rows (e.g. after a
  pyarrow upgrade changed the ``created_by`` string) are left alone too.
* Export never deletes history: rows already in a partition that the store
  does not hold (a fresh cache, a shortened collection window) are kept and
  merged with the store's rows, the store winning on equal primary keys.
* Exchange and instrument names are validated before they become directory
  names; restore re-validates the directory names and checks every row
  belongs to the partition it was found in.
* A broken partition (truncated, corrupt, wrong schema, NULL keys) never stops restore or export: it is moved aside into
  ``history/quarantine/`` (same relative path, a time stamp and a ``.txt``
  saying why), reported in one line, and the rest carries on; export then
  writes the partition again from the store's rows.
"""

from __future__ import annotations

import io
import os
import re
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from pipeline import paths
from pipeline.store.db import TABLES, Store, sql

# Primary keys as declared in sql/schema (tests check they match the database).
KEYS: dict[str, tuple[str, ...]] = {
    "raw_candles": ("exchange", "instrument", "interval_s", "ts"),
    "raw_open_interest": ("exchange", "instrument", "ts"),
    "raw_funding": ("exchange", "instrument", "ts"),
    "raw_liquidations": ("exchange", "instrument", "ts", "side", "price", "size_base"),
    "raw_source_runs": ("run_id", "exchange", "instrument", "dataset"),
    "raw_fx_rates": ("quote",),
}
# Tables stored per (exchange, instrument, day); the rest are one file each.
PARTITIONED = ("raw_candles", "raw_open_interest", "raw_funding", "raw_liquidations", "raw_source_runs")
PART_FILE = "part.parquet"
QUARANTINE_DIR = "quarantine"  # under the history root; never read back by restore

# Fixed writer options: the same rows always give the same bytes (for one pyarrow
# version; a version change is absorbed by the content comparison).
_WRITER = dict(
    compression="zstd",
    compression_level=9,
    use_dictionary=True,
    write_statistics=True,
    version="2.6",
    data_page_version="1.0",
    data_page_size=1 << 20,
    row_group_size=1 << 20,
    store_schema=True,
)

# Instruments keep exchange spelling (BTC-USDT-SWAP, FX_BTC_JPY): same rule as the registry.
_INSTRUMENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_\-]{0,39}$")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


class HistoryError(ValueError):
    """History that cannot be written or read safely (bad names, misplaced rows, schema drift)."""


def safe_instrument(name: str) -> str:
    """Return ``name`` if it is safe as a directory name for an instrument, else raise."""
    if not isinstance(name, str) or not _INSTRUMENT.match(name):
        raise HistoryError(f"unsafe instrument name for a path component: {name!r}")
    return name


def _safe_exchange(name: str) -> str:
    try:
        return paths.safe_name(name)
    except (ValueError, TypeError):
        raise HistoryError(f"unsafe exchange name for a path component: {name!r}") from None


def partition_path(root: Path, table: str, exchange: str | None = None, instrument: str | None = None,
                   date: str | None = None) -> Path:
    """The file of one partition; every component validated before it touches the filesystem."""
    if table not in TABLES:
        raise HistoryError(f"unknown table {table!r}")
    base = Path(root) / table
    if table not in PARTITIONED:
        return base / PART_FILE
    if not isinstance(date, str) or not _DATE.match(date):
        raise HistoryError(f"bad partition date {date!r}")
    return (base / f"exchange={_safe_exchange(exchange)}" / f"instrument={safe_instrument(instrument)}"
            / f"date={date}" / PART_FILE)


def parquet_bytes(table: pa.Table) -> bytes:
    """Serialise ``table`` with the fixed writer options (deterministic bytes)."""
    buf = io.BytesIO()
    pq.write_table(table, buf, **_WRITER)
    return buf.getvalue()


def _atomic_write(path: Path, data: bytes) -> None:
    # Write-then-rename: an interrupted export never leaves a truncated partition.
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".part-", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _sorted(table: str, tbl: pa.Table) -> pa.Table:
    return tbl.sort_by([(k, "ascending") for k in KEYS[table]])


def _key_tuples(table: str, tbl: pa.Table) -> list[tuple]:
    cols = [tbl.column(k).to_pylist() for k in KEYS[table]]
    return list(zip(*cols))


def _align(table: str, old: pa.Table, schema: pa.Schema) -> pa.Table:
    """``old`` with ``schema``'s columns and types (a column added since is filled with NULLs)."""
    try:
        cols = [old.column(f.name).cast(f.type) if f.name in old.column_names else pa.nulls(old.num_rows, f.type)
                for f in schema]
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise HistoryError(f"{table}: existing partition has an incompatible schema: {exc}") from None
    return pa.Table.from_arrays(cols, schema=schema)


def _merge(table: str, new: pa.Table, old: pa.Table) -> pa.Table:
    """Union of ``old`` and ``new`` by primary key, ``new`` winning; sorted by key. ``old`` is aligned."""
    fresh = set(_key_tuples(table, new))
    keep = np.array([k not in fresh for k in _key_tuples(table, old)], dtype=bool)
    merged = pa.concat_tables([new, old.filter(pa.array(keep))]) if keep.any() else new
    return _sorted(table, merged)


def quarantine_file(root: Path, path: Path, why: str) -> Path:
    """Move an unusable history file to ``root/quarantine/<same relative path>.<stamp>`` with a note; return it."""
    import datetime as dt

    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S%fZ")
    dest = Path(root) / QUARANTINE_DIR / path.relative_to(root)
    dest = dest.with_name(f"{dest.name}.{stamp}")
    dest.parent.mkdir(parents=True, exist_ok=True)
    os.replace(path, dest)
    dest.with_name(dest.name + ".txt").write_text(f"{path.relative_to(root)}: {why}\n", encoding="utf-8")
    return dest


def _why(exc: Exception) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _read_partition(path: Path) -> pa.Table:
    """Read one partition; any failure is a HistoryError naming the file."""
    try:
        return pq.read_table(path)
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise HistoryError(f"unreadable Parquet ({_why(exc)})") from None


@dataclass
class ExportReport:
    root: Path
    changed: list[Path] = field(default_factory=list)  # written (new or different content)
    unchanged: int = 0
    rows: dict[str, int] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)  # partitions skipped (unsafe names)
    repaired: list[str] = field(default_factory=list)  # broken partitions moved aside and written again


def _partitions(tbl: pa.Table) -> Iterable[tuple[str, str, str, int, int]]:
    """(exchange, instrument, date, start, stop) runs of a table sorted by those three columns."""
    n = tbl.num_rows
    if n == 0:
        return
    ex = tbl.column("exchange").to_numpy(zero_copy_only=False).astype(object)
    ins = tbl.column("instrument").to_numpy(zero_copy_only=False).astype(object)
    day = tbl.column("_date").to_numpy(zero_copy_only=False).astype(object)
    change = np.ones(n, dtype=bool)
    change[1:] = (ex[1:] != ex[:-1]) | (ins[1:] != ins[:-1]) | (day[1:] != day[:-1])
    starts = np.flatnonzero(change).tolist() + [n]
    for a, b in zip(starts, starts[1:]):
        yield ex[a], ins[a], day[a], a, b


def _write_if_changed(table: str, path: Path, new: pa.Table, report: ExportReport) -> None:
    data = parquet_bytes(new)
    if path.exists():
        current = path.read_bytes()
        if current == data:  # the common case: an unchanged day, no parsing needed
            report.unchanged += 1
            return
        try:
            old = _align(table, _read_partition(path), new.schema)
        except HistoryError as exc:
            # The committed file is broken: keep it aside, write the partition again from the store.
            dest = quarantine_file(report.root, path, str(exc))
            _atomic_write(path, data)
            report.changed.append(path)
            report.repaired.append(f"{path}: {exc}; moved to {dest} and written again from the store's "
                                   f"{new.num_rows} rows (rows only in the old file are in the moved copy)")
            return
        merged = _merge(table, new, old)
        if merged.equals(old) and pq.read_schema(io.BytesIO(current)).names == new.schema.names:
            report.unchanged += 1  # same rows, other writer version: keep the committed bytes
            return
        data = parquet_bytes(merged)
    _atomic_write(path, data)
    report.changed.append(path)


def _without_sample(tbl: pa.Table) -> pa.Table:
    """Drop the bundled sample's series: they ship with the code (sample/), and history is
    what the exchanges told this deployment. A store that fell back to the sample then
    never leaks it into the ``data`` branch."""
    from pipeline.markets import SAMPLE_MARKET

    if not {"exchange", "instrument"} <= set(tbl.column_names):
        return tbl
    keep = None
    for ex, inst in {SAMPLE_MARKET.candles, SAMPLE_MARKET.oi}:
        m = pc.invert(pc.and_(pc.equal(tbl["exchange"], ex), pc.equal(tbl["instrument"], inst)))
        keep = m if keep is None else pc.and_(keep, m)
    return tbl.filter(keep)


def export(store: Store, dest: Path | None = None) -> ExportReport:
    """Write every raw table as Parquet partitions under ``dest``; rewrite only changed partitions."""
    # Default: the history folder beside the store's database (the same data directory).
    dest = Path(dest) if dest is not None else paths.DataPaths(store.path.parent).history
    report = ExportReport(root=dest)
    seen_lower: dict[str, str] = {}
    for table in TABLES:
        tbl = _without_sample(store.con.sql(sql("history", f"export_{table}")).to_arrow_table())
        report.rows[table] = tbl.num_rows
        if table not in PARTITIONED:
            if tbl.num_rows:
                _write_if_changed(table, partition_path(dest, table), tbl, report)
            continue
        for exchange, instrument, day, a, b in _partitions(tbl):
            try:
                path = partition_path(dest, table, exchange, instrument, day)
            except HistoryError as exc:
                report.errors.append(f"{table}: {exc}; {b - a} rows not exported")
                continue
            # Two instruments differing only in case would share a folder on
            # macOS/Windows checkouts of the data branch.
            low = str(path.relative_to(dest)).lower()
            if seen_lower.setdefault(low, str(path)) != str(path):
                report.errors.append(f"{table}: {path} collides with {seen_lower[low]} on case-insensitive filesystems")
                continue
            part = tbl.slice(a, b - a).drop_columns(["_date"])
            _write_if_changed(table, path, part, report)
    return report


@dataclass
class RestoreReport:
    root: Path
    files: int = 0
    rows: dict[str, int] = field(default_factory=dict)  # rows read per table
    inserted: dict[str, int] = field(default_factory=dict)  # rows whose key was new to the store
    quarantined: list[str] = field(default_factory=list)  # one line per broken partition moved aside


def _parse_partition(root: Path, table: str, f: Path) -> tuple[str, str, str] | None:
    rel = f.relative_to(root / table).parts
    if table not in PARTITIONED:
        if rel != (PART_FILE,):
            raise HistoryError(f"unexpected history file {f}")
        return None
    if len(rel) != 4 or rel[-1] != PART_FILE:
        raise HistoryError(f"unexpected history file {f}")
    got = {}
    for part, key in zip(rel[:3], ("exchange", "instrument", "date")):
        prefix = f"{key}="
        if not part.startswith(prefix):
            raise HistoryError(f"unexpected history folder {part!r} in {f}")
        got[key] = part[len(prefix):]
    _safe_exchange(got["exchange"])
    safe_instrument(got["instrument"])
    if not _DATE.match(got["date"]):
        raise HistoryError(f"bad partition date in {f}")
    return got["exchange"], got["instrument"], got["date"]


def _check_rows(table: str, f: Path, tbl: pa.Table, where: tuple[str, str, str]) -> None:
    """Every row of a partition must belong to it (a hand-edited file could smuggle rows elsewhere)."""
    exchange, instrument, day = where
    when = "started_at" if table == "raw_source_runs" else "ts"
    days = pc.strftime(tbl.column(when), format="%Y-%m-%d")
    ok = pc.and_(pc.and_(pc.equal(tbl.column("exchange"), exchange), pc.equal(tbl.column("instrument"), instrument)),
                 pc.equal(days, day))
    if not pc.all(ok).as_py():
        raise HistoryError(f"{f}: holds rows of another exchange, instrument or day")


def history_files(src: Path) -> dict[str, list[Path]]:
    """The partition files under ``src`` per table, in path order (deterministic restores)."""
    out = {}
    for table in TABLES:
        base = Path(src) / table
        out[table] = sorted(base.rglob(PART_FILE)) if base.is_dir() else []
    return out


def _store_schema(store: Store, table: str) -> pa.Schema:
    # Identifiers come from TABLES, never from input.
    return store.con.sql(f'SELECT * FROM "{table}" LIMIT 0').to_arrow_table().schema


def _check_keys(table: str, tbl: pa.Table) -> None:
    for k in KEYS[table]:
        if tbl.column(k).null_count:
            raise HistoryError(f"NULL in key column {k!r}")


def restore(store: Store, src: Path | None = None, batch_rows: int = 500_000) -> RestoreReport:
    """Load every partition under ``src`` into ``store`` via ``Store.upsert`` (idempotent).

    Files are validated (names, readability, schema, keys, row placement) before
    anything is loaded from them; a file that fails is moved aside
    (:func:`quarantine_file`) and reported, and the rest is restored. Loads are
    batched so a year of minute candles does not sit in memory.
    """
    src = Path(src) if src is not None else paths.DataPaths(store.path.parent).history
    report = RestoreReport(root=src)
    for table, files in history_files(src).items():
        batch: list[pa.Table] = []
        pending = 0
        report.rows[table] = 0
        report.inserted[table] = 0

        def flush() -> None:
            nonlocal batch, pending
            if batch:
                res = store.upsert(table, pa.concat_tables(batch, promote_options="default"))
                report.inserted[table] += res.inserted
            batch, pending = [], 0

        schema = _store_schema(store, table)
        for f in files:
            where = _parse_partition(src, table, f)
            try:
                tbl = _align(table, _read_partition(f), schema)
                _check_keys(table, tbl)
            except HistoryError as exc:
                why = str(exc)
                dest = quarantine_file(src, f, why)
                report.quarantined.append(
                    f"{f}: {why}; moved to {dest}; the rest was restored. `liqmap export` writes this partition "
                    "again from the store; rows only in the moved file can be recovered from the data branch's history")
                continue
            if where is not None:  # rows placed in another partition: a hand edit, not damage; stop
                _check_rows(table, f, tbl, where)
            report.files += 1
            report.rows[table] += tbl.num_rows
            batch.append(tbl)
            pending += tbl.num_rows
            if pending >= batch_rows:
                flush()
        flush()
    return report
