"""The store's tables in one list, and everything derived from it: keys, columns, Arrow schemas, SQL statements.

:data:`RAW` (collected, exported to the history, loaded by upsert) and :data:`DERIVED` (rebuilt after each run,
never exported) name the tables; their columns, types and primary keys are written once, in ``sql/schema``,
and read back from DuckDB's own catalogue (an in-memory database with that schema): :func:`key`,
:func:`columns`, :func:`arrow_schema`. The collectors' Arrow schemas and row keys, the history's keys and the
store's loads all come from here.

Statements shared by every table are templates in ``sql/templates/`` (:func:`statement`): identifiers come
from this list and the catalogue and are checked before they are put in; values stay parameters.
"""

from __future__ import annotations

import re
from functools import lru_cache

import duckdb
import pyarrow as pa

from pipeline import paths

# The raw tables, in load and export order.
RAW = ("raw_candles", "raw_open_interest", "raw_funding", "raw_liquidations", "raw_source_runs", "raw_fx_rates")
# Tables derived from the raw ones (rebuilt, never exported): open gaps and quarantined prints.
DERIVED = ("raw_gaps", "raw_quarantine")
# Raw tables stored in time partitions in the history (the rest are one small file each), and the time column
# that places their rows.
PARTITIONED = ("raw_candles", "raw_open_interest", "raw_funding", "raw_liquidations", "raw_source_runs")
_WHEN = {"raw_source_runs": "started_at"}
# Columns that identify a market inside a key (a collector's batch is one market).
MARKET = ("exchange", "instrument")

_IDENT = re.compile(r"^[a-z_][a-z0-9_]*$")


def schema_files() -> list:
    """``sql/schema/*.sql`` in the order they are applied."""
    return sorted((paths.SQL_DIR / "schema").glob("*.sql"))


@lru_cache(maxsize=1)
def _catalogue() -> dict[str, tuple[tuple[str, ...], tuple[str, ...], pa.Schema]]:
    con = duckdb.connect(":memory:")
    try:
        for f in schema_files():
            con.execute(f.read_text(encoding="utf-8")).fetchall()
        out = {}
        for t in RAW + DERIVED:
            keys = con.execute("SELECT constraint_column_names FROM duckdb_constraints() "
                               "WHERE table_name = ? AND constraint_type = 'PRIMARY KEY'", [t]).fetchall()
            schema = con.sql(f"SELECT * FROM {ident(t)} LIMIT 0").to_arrow_table().schema
            out[t] = (tuple(schema.names), tuple(keys[0][0]) if keys else (), schema)
        return out
    finally:
        con.close()


def _table(table: str) -> tuple[tuple[str, ...], tuple[str, ...], pa.Schema]:
    if table not in RAW + DERIVED:
        raise KeyError(f"unknown table {table!r}")
    return _catalogue()[table]


def columns(table: str) -> tuple[str, ...]:
    return _table(table)[0]


def key(table: str) -> tuple[str, ...]:
    """The primary key of ``table`` as declared in sql/schema."""
    return _table(table)[1]


def market_key(table: str) -> tuple[str, ...]:
    """The key of a row within one market (the primary key without exchange and instrument)."""
    return tuple(k for k in key(table) if k not in MARKET)


def arrow_schema(table: str) -> pa.Schema:
    """The Arrow schema of ``table``'s rows (what DuckDB gives and takes: VARCHAR string, TIMESTAMP timestamp[us])."""
    return _table(table)[2]


def when_column(table: str) -> str:
    return _WHEN.get(table, "ts")


def ident(name: str) -> str:
    """``name`` as a quoted SQL identifier, if it is a plain lower-case name (catalogue names always are)."""
    if not isinstance(name, str) or not _IDENT.match(name):
        raise ValueError(f"unexpected identifier {name!r}")
    return f'"{name}"'


@lru_cache(maxsize=None)
def _template(name: str) -> str:
    allowed = {p.stem: p for p in (paths.SQL_DIR / "templates").glob("*.sql")}
    if name not in allowed:
        raise KeyError(f"no SQL template templates/{name}.sql")
    return allowed[name].read_text(encoding="utf-8")


def statement(template: str, table: str, **identifiers: str) -> str:
    """``sql/templates/<template>.sql`` for ``table``: ``{table}``, ``{columns}`` and ``{keys}`` are filled from
    the catalogue; ``identifiers`` (quoted by :func:`ident`, comma-separated lists of them, or ``NULL AS "x"``)
    fill further fields or override ``columns`` (a store of an older schema)."""
    _table(table)
    for v in identifiers.values():
        for part in v.split(", "):
            name = part.rsplit(" AS ", 1)[-1] if part.startswith("NULL AS ") else part
            if not re.fullmatch(r'"[a-z_][a-z0-9_]*"', name):
                raise ValueError(f"unexpected SQL fragment {part!r}")
    fill = {"table": ident(table), "columns": ", ".join(map(ident, columns(table))),
            "keys": ", ".join(map(ident, key(table))), **identifiers}
    return _template(template).format(**fill)
