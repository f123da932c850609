"""The store's raw history as Parquet files: the durable copy of what was collected, built for years.

The DuckDB file is a cache that can be thrown away; the history directory
(``data/history`` by default, committed to the ``data`` branch by the publish
workflow) is the record. It is append-only and compacted, in three tiers::

    history/<table>/run=<YYYYMMDDTHHMMSSffffffZ>/part.parquet    one export's new or changed rows (all markets)
    history/<table>/date=<YYYY-MM-DD>/part.parquet                one day of the current month (all markets)
    history/<table>/exchange=<exchange>/month=<YYYY-MM>/part.parquet   one closed month of one exchange
    history/raw_fx_rates/part.parquet                             (small, unpartitioned, rewritten when it changes)

Older data branches hold ``<table>/exchange=<e>/instrument=<i>/date=<day>/part.parquet`` (one file per
market and day): they are still read, and compaction folds them into the tiers above.

* **Append-only.** :func:`export` writes only the rows the history lacks or holds with other values, as
  one new ``run=`` file per table; an unchanged store writes nothing. Nothing is ever rewritten in place
  except by compaction, and no file is deleted before its rows are in the file that replaces it.
* **Compaction** (:mod:`pipeline.store.compaction`, run by every export): ``run=`` files of earlier UTC days are folded
  into day files (current month) or month files (closed months); day files of closed months into
  month files. A year of 20 assets is then a few hundred files.
* **Precedence.** A key may be in several files (a value revised by a later run): the newest tier wins
  (month < legacy day < day < run, runs by time stamp). Restore and compaction apply the same rule, so
  restore after compaction equals restore before.
* Bytes are deterministic (rows in primary-key order, fixed writer options).
* ``run_id`` and ``started_at`` place ``raw_source_runs`` rows like ``ts`` places the others.
* Exchange and instrument names are validated before they become directory names or are exported;
  restore re-validates the directory names and checks every row belongs to the file it was found in.
* A broken file (truncated, corrupt, wrong schema, NULL keys) never stops restore or export: it is moved
  aside into ``history/quarantine/`` (same relative path, a time stamp and a ``.txt`` saying why),
  reported in one line, and the rest carries on; export then writes the rows the store still holds again.

One piece: the file format, its validation and every reader and writer of it must change together.
"""

from __future__ import annotations

import datetime as dt
import io
import os
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from pipeline import paths
from pipeline.store import tables
from pipeline.store.db import TABLES, Store

# Primary keys as declared in sql/schema, read from DuckDB's catalogue (pipeline.store.tables).
KEYS: dict[str, tuple[str, ...]] = {t: tables.key(t) for t in TABLES}
# Tables stored in time partitions; the rest are one file each.
PARTITIONED = tables.PARTITIONED
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


# -- the files of a history -------------------------------------------------------------

RUN_STAMP = "%Y%m%dT%H%M%S%fZ"
_RUN = re.compile(r"^\d{8}T\d{12}Z$")
_MONTH = re.compile(r"^\d{4}-\d{2}$")
# Precedence of the tiers (higher wins on equal keys); runs add their order.
RANK = {"month": 0, "legacy": 1, "day": 2, "run": 3}


@dataclass(frozen=True)
class HistoryFile:
    """One file of the history: its tier, where its rows must belong, and its precedence."""

    table: str
    path: Path
    tier: str  # month | legacy | day | run | flat
    exchange: str | None = None
    instrument: str | None = None
    period: str | None = None  # YYYY-MM (month), YYYY-MM-DD (day, legacy) or the run stamp
    rank: int = 0


def month_path(root: Path, table: str, exchange: str, month: str) -> Path:
    if table not in PARTITIONED or not isinstance(month, str) or not _MONTH.match(month):
        raise HistoryError(f"bad month partition {table!r} {month!r}")
    return Path(root) / table / f"exchange={_safe_exchange(exchange)}" / f"month={month}" / PART_FILE


def day_path(root: Path, table: str, date: str) -> Path:
    if table not in PARTITIONED or not isinstance(date, str) or not _DATE.match(date):
        raise HistoryError(f"bad day partition {table!r} {date!r}")
    return Path(root) / table / f"date={date}" / PART_FILE


def run_path(root: Path, table: str, stamp: str) -> Path:
    if table not in PARTITIONED or not _RUN.match(stamp):
        raise HistoryError(f"bad run partition {table!r} {stamp!r}")
    return Path(root) / table / f"run={stamp}" / PART_FILE


def _parse_file(root: Path, table: str, f: Path) -> HistoryFile:
    rel = f.relative_to(Path(root) / table).parts
    if table not in PARTITIONED:
        if rel != (PART_FILE,):
            raise HistoryError(f"unexpected history file {f}")
        return HistoryFile(table, f, "flat")
    if rel[-1] != PART_FILE or len(rel) not in (2, 3, 4):
        raise HistoryError(f"unexpected history file {f}")
    parts = {}
    for part in rel[:-1]:
        key, sep, value = part.partition("=")
        if not sep or key not in ("exchange", "instrument", "date", "month", "run") or key in parts:
            raise HistoryError(f"unexpected history folder {part!r} in {f}")
        parts[key] = value
    shape = tuple(parts)
    if shape == ("run",) and _RUN.match(parts["run"]):
        return HistoryFile(table, f, "run", period=parts["run"])
    if shape == ("date",) and _DATE.match(parts["date"]):
        return HistoryFile(table, f, "day", period=parts["date"], rank=RANK["day"])
    if shape == ("exchange", "month") and _MONTH.match(parts["month"]):
        return HistoryFile(table, f, "month", _safe_exchange(parts["exchange"]), period=parts["month"])
    if shape == ("exchange", "instrument", "date"):
        if not _DATE.match(parts["date"]):
            raise HistoryError(f"bad partition date in {f}")
        return HistoryFile(table, f, "legacy", _safe_exchange(parts["exchange"]), safe_instrument(parts["instrument"]),
                           parts["date"], RANK["legacy"])
    raise HistoryError(f"unexpected history file {f}")


def history_files(src: Path) -> dict[str, list[HistoryFile]]:
    """The files under ``src`` per table, in precedence order (months, legacy days, days, runs by stamp)."""
    out = {}
    for table in TABLES:
        base = Path(src) / table
        found = [_parse_file(src, table, f) for f in sorted(base.rglob(PART_FILE))] if base.is_dir() else []
        found.sort(key=lambda h: (RANK.get(h.tier, 0), h.period or "", str(h.path)))
        runs = [h for h in found if h.tier == "run"]
        found = [h for h in found if h.tier != "run"] + [
            HistoryFile(h.table, h.path, h.tier, period=h.period, rank=RANK["run"] + i) for i, h in enumerate(runs)]
        out[table] = found
    return out


_when_column = tables.when_column


def _period_bounds(h: HistoryFile) -> tuple[dt.datetime, dt.datetime]:
    """[start, end) of a month or day file's period (naive UTC, as the store's timestamps)."""
    if h.tier == "month":
        y, m = map(int, h.period.split("-"))
        return dt.datetime(y, m, 1), dt.datetime(y + m // 12, m % 12 + 1, 1)
    day = dt.datetime.strptime(h.period, "%Y-%m-%d")
    return day, day + dt.timedelta(days=1)


def _check_rows(table: str, h: HistoryFile, tbl: pa.Table) -> None:
    """Every row of a file must belong to it (a hand-edited file could smuggle rows elsewhere)."""
    if h.tier in ("run", "flat") or tbl.num_rows == 0:
        return
    # Bounds and distinct names, not a per-row string format: restore reads a year of rows through here.
    lo, hi = _period_bounds(h)
    when = tbl.column(_when_column(table))
    mm = pc.min_max(when.cast(pa.timestamp("us")) if when.type.tz is None else when.cast(pa.timestamp("us", "UTC")))
    first, last = mm["min"].as_py(), mm["max"].as_py()
    first, last = (t.replace(tzinfo=None) if t is not None else None for t in (first, last))
    ok = first is not None and lo <= first and last < hi
    for col, want in (("exchange", h.exchange), ("instrument", h.instrument)):
        if ok and want is not None:
            ok = pc.unique(tbl.column(col)).to_pylist() == [want]
    if not ok:
        raise HistoryError(f"{h.path}: holds rows of another exchange, instrument or day")


def _check_keys(table: str, tbl: pa.Table) -> None:
    for k in KEYS[table]:
        if tbl.column(k).null_count:
            raise HistoryError(f"NULL in key column {k!r}")


def _check_names(tbl: pa.Table) -> None:
    for col, check in (("exchange", _safe_exchange), ("instrument", safe_instrument)):
        if col in tbl.column_names:
            for name in pc.unique(tbl.column(col)).to_pylist():
                check(name)


def _load_file(h: HistoryFile, schema: pa.Schema) -> pa.Table:
    """A validated file's rows with ``schema``; HistoryError says why it cannot be used."""
    tbl = _align(h.table, _read_partition(h.path), schema)
    _check_keys(h.table, tbl)
    return tbl


def _dedupe(table: str, tbl: pa.Table) -> pa.Table:
    """One row per key, the one with the highest ``_rank``; sorted by key, ``_rank`` dropped."""
    keys = KEYS[table]
    t = tbl.take(pc.sort_indices(tbl, [(k, "ascending") for k in keys] + [("_rank", "descending")]))
    n = t.num_rows
    keep = np.ones(n, dtype=bool)
    if n > 1:
        same = None
        for k in keys:
            col = t.column(k).combine_chunks()
            eq = pc.equal(col.slice(1), col.slice(0, n - 1))
            same = eq if same is None else pc.and_(same, eq)
        keep[1:] = ~same.to_numpy(zero_copy_only=False)
    return t.filter(pa.array(keep)).drop_columns(["_rank"])


def _ranked(tbl: pa.Table, rank: int) -> pa.Table:
    return tbl.append_column("_rank", pa.array(np.full(tbl.num_rows, rank, dtype=np.int64)))


# -- export ----------------------------------------------------------------------------


@dataclass
class ExportReport:
    root: Path
    changed: list[Path] = field(default_factory=list)  # files written (new runs, compacted files)
    unchanged: int = 0  # tables with nothing new
    rows: dict[str, int] = field(default_factory=dict)  # rows in the store per table
    new_rows: dict[str, int] = field(default_factory=dict)  # rows appended per table
    removed: list[Path] = field(default_factory=list)  # files folded away by compaction
    errors: list[str] = field(default_factory=list)  # rows skipped (unsafe names)
    repaired: list[str] = field(default_factory=list)  # broken files moved aside (their rows written again)


def _write_flat(table: str, path: Path, new: pa.Table, report: ExportReport) -> None:
    """The small unpartitioned table: merged with what is there (never dropping rows), rewritten if it changed."""
    data = parquet_bytes(new)
    if path.exists():
        current = path.read_bytes()
        if current == data:
            report.unchanged += 1
            return
        try:
            old = _align(table, _read_partition(path), new.schema)
        except HistoryError as exc:
            dest = quarantine_file(report.root, path, str(exc))
            _atomic_write(path, data)
            report.changed.append(path)
            report.repaired.append(f"{path}: {exc}; moved to {dest} and written again from the store's "
                                   f"{new.num_rows} rows (rows only in the old file are in the moved copy)")
            return
        merged = _merge(table, new, old)
        if merged.equals(old) and pq.read_schema(io.BytesIO(current)).names == new.schema.names:
            report.unchanged += 1
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


def _store_columns(store: Store, table: str) -> list[str]:
    rows = store.con.execute("SELECT column_name FROM duckdb_columns() WHERE table_name = ? ORDER BY column_index",
                             [table]).fetchall()
    return [r[0] for r in rows]


def _usable(files: list[HistoryFile], schema: pa.Schema, report: ExportReport) -> list[HistoryFile]:
    """The files whose footer reads and whose columns fit; the others are moved aside (their rows,
    where the store still holds them, are then written again as new rows)."""
    ok = []
    for h in files:
        try:
            got = pq.read_schema(h.path)
            for f in schema:
                if f.name in got.names and not _castable(got.field(f.name).type, f.type):
                    raise HistoryError(f"{h.table}: existing partition has an incompatible schema: "
                                       f"{f.name} is {got.field(f.name).type}, not {f.type}")
        except (pa.ArrowException, OSError, ValueError) as exc:
            why = str(exc) if isinstance(exc, HistoryError) else f"unreadable Parquet ({_why(exc)})"
            dest = quarantine_file(report.root, h.path, why)
            report.repaired.append(f"{h.path}: {why}; moved to {dest}; the store's rows it held are written again "
                                   "(rows only in the old file are in the moved copy)")
            continue
        ok.append(h)
    return ok


def _castable(a: pa.DataType, b: pa.DataType) -> bool:
    if a == b:
        return True
    num = lambda t: pa.types.is_integer(t) or pa.types.is_floating(t)  # noqa: E731
    return (num(a) and num(b)) or (pa.types.is_timestamp(a) and pa.types.is_timestamp(b)) or \
        (pa.types.is_string(a) or pa.types.is_large_string(a)) and (pa.types.is_string(b) or pa.types.is_large_string(b))


def _new_rows(store: Store, table: str, files: list[HistoryFile]) -> pa.Table:
    """The store's rows of ``table`` that the history (``files``) lacks or holds with other values."""
    cols = _store_columns(store, table)
    if not files:
        return store.con.sql(f'SELECT {", ".join(map(tables.ident, cols))} FROM "{table}"').to_arrow_table()
    names = [str(h.path) for h in files]
    ranks = pa.table({"filename": names, "rank": [h.rank for h in files]})
    have = {r[0] for r in store.con.execute("DESCRIBE SELECT * FROM read_parquet($files, union_by_name = true)",
                                            {"files": names}).fetchall()}
    hist_cols = [tables.ident(c) if c in have else f"NULL AS {tables.ident(c)}" for c in cols]
    text = tables.statement("new_rows", table, columns=", ".join(map(tables.ident, cols)), hist_columns=", ".join(hist_cols))
    store.con.register("history_ranks", ranks)
    try:
        return store.con.sql(text, params={"files": names}).to_arrow_table()
    finally:
        store.con.unregister("history_ranks")


def _safe_rows(table: str, tbl: pa.Table, report: ExportReport) -> pa.Table:
    """Leave out (and report) rows whose exchange or instrument name could not become a path."""
    if tbl.num_rows == 0:
        return tbl
    bad_ex = [e for e in pc.unique(tbl.column("exchange")).to_pylist() if not _is_safe(_safe_exchange, e)]
    bad_in = [i for i in pc.unique(tbl.column("instrument")).to_pylist() if not _is_safe(safe_instrument, i)]
    if not bad_ex and not bad_in:
        return tbl
    drop = pc.or_(pc.is_in(tbl.column("exchange"), pa.array(bad_ex, pa.string())),
                  pc.is_in(tbl.column("instrument"), pa.array(bad_in, pa.string())))
    for name in bad_ex + bad_in:
        n = pc.sum(pc.or_(pc.equal(tbl.column("exchange"), name), pc.equal(tbl.column("instrument"), name))).as_py()
        report.errors.append(f"{table}: unsafe exchange or instrument name for a path component: {name!r}; "
                             f"{n} rows not exported")
    return tbl.filter(pc.invert(drop))


def _is_safe(check, name) -> bool:
    try:
        check(name)
        return True
    except HistoryError:
        return False


def export(store: Store, dest: Path | None = None, *, now: dt.datetime | None = None) -> ExportReport:
    """Append the store's new or changed rows to the history under ``dest`` (one ``run=`` file per
    table). Writes nothing when the history already holds every row. ``liqmap export`` then compacts."""
    dest = Path(dest) if dest is not None else paths.DataPaths(store.path.parent).history
    now = _now(now)
    report = ExportReport(root=dest)
    stamp = now.strftime(RUN_STAMP)
    listing = history_files(dest) if dest.is_dir() else {t: [] for t in TABLES}
    for table in TABLES:
        schema = _store_schema(store, table)
        if table not in PARTITIONED:
            tbl = _without_sample(store.con.sql(tables.statement("rows_in_key_order", table)).to_arrow_table())
            report.rows[table] = tbl.num_rows
            if tbl.num_rows:
                _write_flat(table, partition_path(dest, table), tbl, report)
            continue
        report.rows[table] = _without_sample(store.con.sql(f'SELECT exchange, instrument FROM "{table}"')
                                             .to_arrow_table()).num_rows
        files = _usable(listing[table], schema, report)
        try:
            new = _new_rows(store, table, files)
        except duckdb.Error:
            # A file whose footer reads but whose pages do not: find it the slow way, move it aside, go on.
            files = _readable(files, schema, report)
            new = _new_rows(store, table, files)
        new = _safe_rows(table, _without_sample(new), report)
        report.new_rows[table] = new.num_rows
        if new.num_rows == 0:
            report.unchanged += 1
            continue
        path = run_path(dest, table, stamp)
        _atomic_write(path, parquet_bytes(_sorted(table, new.cast(schema))))
        report.changed.append(path)
    return report


def _readable(files: list[HistoryFile], schema: pa.Schema, report: ExportReport) -> list[HistoryFile]:
    ok = []
    for h in files:
        try:
            _load_file(h, schema)
        except HistoryError as exc:
            dest = quarantine_file(report.root, h.path, str(exc))
            report.repaired.append(f"{h.path}: {exc}; moved to {dest}; the store's rows it held are written again "
                                   "(rows only in the old file are in the moved copy)")
            continue
        ok.append(h)
    return ok


def _now(now: dt.datetime | None) -> dt.datetime:
    now = now or dt.datetime.now(dt.UTC)
    return now.replace(tzinfo=dt.UTC) if now.tzinfo is None else now.astimezone(dt.UTC)


# -- restore ---------------------------------------------------------------------------


@dataclass
class RestoreReport:
    root: Path
    files: int = 0
    rows: dict[str, int] = field(default_factory=dict)  # rows read per table
    inserted: dict[str, int] = field(default_factory=dict)  # rows whose key was new to the store
    quarantined: list[str] = field(default_factory=list)  # one line per broken file moved aside


def _store_schema(store: Store, table: str) -> pa.Schema:
    # Identifiers come from TABLES, never from input.
    return store.con.sql(f'SELECT * FROM "{table}" LIMIT 0').to_arrow_table().schema


def restore(store: Store, src: Path | None = None) -> RestoreReport:
    """Load every file under ``src`` into ``store``, idempotently: the history's value of a key wins.

    Files are validated (names, readability, schema, keys, row placement) before
    anything is loaded from them; a file that fails is moved aside
    (:func:`quarantine_file`) and reported, and the rest is restored. Then each table is
    loaded in one statement (``sql/templates/restore_rows.sql``): DuckDB reads the
    validated files itself and keeps one row per key, the higher tier winning, so a
    revised value ends up as in the history. No per-batch key counting: a year of 20
    assets restores in seconds.
    """
    src = Path(src) if src is not None else paths.DataPaths(store.path.parent).history
    report = RestoreReport(root=src)
    for table, files in history_files(src).items():
        report.rows[table] = 0
        report.inserted[table] = 0
        schema = _store_schema(store, table)
        good: list[HistoryFile] = []
        for h in files:
            try:
                tbl = _load_file(h, schema)
            except HistoryError as exc:
                why = str(exc)
                dest = quarantine_file(src, h.path, why)
                report.quarantined.append(
                    f"{h.path}: {why}; moved to {dest}; the rest was restored. `liqmap export` writes its rows "
                    "again from a store that holds them; rows only in the moved file can be recovered from the "
                    "data branch's history")
                continue
            _check_rows(table, h, tbl)  # rows placed in another partition: a hand edit, not damage; stop
            report.files += 1
            report.rows[table] += tbl.num_rows
            good.append(h)
        if good:
            report.inserted[table] = _load_files(store, table, good)
    return report


def _load_files(store: Store, table: str, files: list[HistoryFile]) -> int:
    """Load validated ``files`` into ``table`` in one transaction; returns the rows whose key was new."""
    cols = _store_columns(store, table)
    names = [str(h.path) for h in files]
    have = {r[0] for r in store.con.execute("DESCRIBE SELECT * FROM read_parquet($files, union_by_name = true, "
                                            "hive_partitioning = false)", {"files": names}).fetchall()}
    hist_cols = [tables.ident(c) if c in have else f"NULL AS {tables.ident(c)}" for c in cols]
    text = tables.statement("restore_rows", table, hist_columns=", ".join(hist_cols))
    ranks = pa.table({"filename": names, "rank": [h.rank for h in files]})
    before = store.count(table)
    with store._staged("history_ranks", ranks):
        store.con.execute(text, {"files": names}).fetchall()
    return store.count(table) - before
