"""The DuckDB store: schema, transactional idempotent loads, named queries.

All SQL lives in ``sql/``: ``schema/`` (one object per file, applied in order),
``templates/`` (statements every table shares, filled by :mod:`pipeline.store.tables`
from its one table list) and ``queries/<name>.sql`` (parameterised with ``$name``
placeholders). Table and query names are checked against that list and the files
that exist, so no caller-supplied string reaches SQL text.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa

from pipeline import paths
from pipeline.store import tables

TABLES = tables.RAW
DERIVED = tables.DERIVED


@lru_cache(maxsize=None)
def sql(kind: str, name: str) -> str:
    """The text of ``sql/<kind>/<name>.sql``; only existing files, never a built string."""
    folder = paths.SQL_DIR / kind
    allowed = {p.stem: p for p in folder.glob("*.sql")}
    if name not in allowed:
        raise KeyError(f"no SQL file {kind}/{name}.sql")
    return allowed[name].read_text(encoding="utf-8")


class StoreError(RuntimeError):
    """The database file cannot be used (locked, corrupt, unwritable); one line saying what to do."""


def _open_error(path: Path, exc: Exception) -> StoreError:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    low = text.lower()
    if "could not set lock" in low or "conflicting lock" in low:
        return StoreError(f"{path}: the store is in use by another liqmap process ({text}); "
                          "wait for it to finish (or stop it), then run this again")
    if isinstance(exc, PermissionError) or "permission denied" in low or "read-only" in low:
        return StoreError(f"{path.parent}: the data directory is not writable ({text}); "
                          "make it writable or choose another with --data-dir")
    return StoreError(f"{path}: not a usable DuckDB database ({text}); the file is only a cache: move it aside "
                      "and run `liqmap restore` to rebuild it from the history")


@dataclass(frozen=True)
class LoadResult:
    table: str
    received: int
    inserted: int  # rows whose key was new
    changed: int  # rows whose key existed (replaced by the new values)


class Store:
    """One DuckDB database file. Use as a context manager."""

    def __init__(self, db_path: Path, read_only: bool = False):
        self.path = Path(db_path)
        self.read_only = read_only
        try:
            if not read_only:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            self.con = duckdb.connect(str(self.path), read_only=read_only)
        except (duckdb.Error, OSError) as exc:
            raise _open_error(self.path, exc) from None
        try:
            self.con.execute("SET TimeZone = 'UTC'").fetchall()
            if not read_only:
                self.ensure_schema()
            self._prep_views()
        except (duckdb.Error, OSError) as exc:
            self.con.close()
            raise _open_error(self.path, exc) from None

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self.con.close()

    def ensure_schema(self) -> None:
        for f in tables.schema_files():
            self.con.execute(f.read_text(encoding="utf-8")).fetchall()

    def _prep_views(self) -> None:
        self.con.execute(sql("prep", "views")).fetchall()

    # -- writes -----------------------------------------------------------
    def upsert(self, table: str, rows: pa.Table | dict) -> LoadResult:
        """Load ``rows`` into ``table`` in one transaction; re-loading the same rows changes nothing.

        Rows violating the schema (NULL keys, CHECK constraints) abort the whole
        batch: nothing half-written reaches the store.
        """
        if table not in TABLES:
            raise KeyError(f"unknown table {table!r}")
        if isinstance(rows, dict):
            rows = pa.table(rows)
        if rows.num_rows == 0:
            return LoadResult(table, 0, 0, 0)
        keys = tables.key(table)
        self.con.begin()
        try:
            self.con.register("staging", rows)
            # Count key matches before writing so the result says what changed.
            existing = self._count_existing(table, keys)
            before = self.count(table)
            self.con.execute(tables.statement("upsert", table)).fetchall()
            after = self.count(table)
            self.con.unregister("staging")
            self.con.commit()
        except Exception:
            self.con.rollback()
            try:
                self.con.unregister("staging")
            except Exception:  # pragma: no cover - already unregistered
                pass
            raise
        return LoadResult(table, rows.num_rows, after - before, existing)

    def replace(self, table: str, rows: pa.Table | dict) -> None:
        """Replace the whole content of a derived table with ``rows`` in one transaction."""
        if table not in DERIVED:
            raise KeyError(f"unknown derived table {table!r}")
        if isinstance(rows, dict):
            rows = pa.table(rows)
        with self._staged("staging", rows):
            self.con.execute(tables.statement("replace_all", table)).fetchall()

    @contextmanager
    def _staged(self, name: str, rows: pa.Table):
        """One transaction with ``rows`` visible to SQL as ``name``; rolled back on any error."""
        self.con.begin()
        self.con.register(name, rows)
        try:
            yield
            self.con.commit()
        except Exception:
            self.con.rollback()
            raise
        finally:
            self.con.unregister(name)

    def refresh_quarantine(self, *, oi_factor: float, candle_factor: float,
                           asset_instruments: dict[str, dict[str, str]] | None = None) -> int:
        """Recompute ``raw_quarantine`` (sql/quality/quarantine.sql); returns the rows quarantined.

        ``asset_instruments`` (asset -> exchange -> instrument) lets a candle be compared
        with the same time on the asset's other venues; without it, only with its neighbours.
        """
        pairs = [(a, ex, inst) for a, m in (asset_instruments or {}).items() for ex, inst in m.items()]
        venues = pa.table({"asset": [p[0] for p in pairs], "exchange": [p[1] for p in pairs],
                           "instrument": [p[2] for p in pairs]},
                          schema=pa.schema([("asset", pa.string()), ("exchange", pa.string()), ("instrument", pa.string())]))
        with self._staged("asset_venues", venues):
            self.con.execute("DELETE FROM raw_quarantine").fetchall()
            self.con.execute(sql("quality", "quarantine"), {"oi_factor": oi_factor, "candle_factor": candle_factor}).fetchall()
        return self.con.execute("SELECT count(*) FROM raw_quarantine").fetchall()[0][0]

    def _key_columns(self, table: str) -> list[str]:
        """The primary key as this database declares it (tests compare it with :func:`tables.key`)."""
        cols = self.con.execute(
            "SELECT constraint_column_names FROM duckdb_constraints() "
            "WHERE table_name = ? AND constraint_type = 'PRIMARY KEY'",
            [table],
        ).fetchall()[0]
        return list(cols[0])

    def _count_existing(self, table: str, keys) -> int:
        # Identifiers come from the table list and DuckDB's own catalogue, never from input.
        on = " AND ".join(f"s.{tables.ident(k)} = t.{tables.ident(k)}" for k in keys)
        return self.con.execute(f"SELECT count(*) FROM staging s JOIN {tables.ident(table)} t ON {on}").fetchall()[0][0]

    def count(self, table: str) -> int:
        if table not in TABLES + DERIVED:
            raise KeyError(f"unknown table {table!r}")
        return self.con.execute(f'SELECT count(*) FROM "{table}"').fetchall()[0][0]

    # -- reads ------------------------------------------------------------
    def query(self, name: str, **params) -> pa.Table:
        """Run ``sql/queries/<name>.sql`` with named parameters; return an Arrow table."""
        return self.con.sql(sql("queries", name), params=params or None).to_arrow_table()

    def mart(self, name: str, **params) -> list[dict]:
        """Rows of ``sql/marts/<name>.sql`` (an ``out_*`` query of the derived layer) with named parameters."""
        return self.con.sql(sql("marts", name), params=params or None).to_arrow_table().to_pylist()

    def arrays(self, name: str, **params) -> dict[str, np.ndarray]:
        """Like :meth:`query`, as a dict of numpy arrays (NULL -> NaN for numbers)."""
        tbl = self.query(name, **params)
        out = {}
        for col in tbl.column_names:
            arr = tbl.column(col)
            if pa.types.is_floating(arr.type) or pa.types.is_integer(arr.type):
                if arr.null_count and not pa.types.is_floating(arr.type):
                    arr = arr.cast(pa.float64())
                out[col] = arr.to_numpy(zero_copy_only=False)
                if arr.null_count:
                    out[col] = np.where(np.asarray(arr.is_null()), np.nan, out[col].astype(float))
            else:
                out[col] = np.asarray(arr.to_pylist(), dtype=object)
        return out

    def is_empty(self) -> bool:
        return all(self.count(t) == 0 for t in ("raw_candles", "raw_open_interest"))


def open_store(data_dir=None, read_only: bool = False) -> Store:
    return Store(paths.data_paths(data_dir).db, read_only=read_only)
