"""A small Arrow table as plain JSON and back, exactly: how a snapshot keeps its key levels inside ``snapshot.json``.

``encode`` gives ``{"schema": [[name, type], ...], "rows": [[value, ...], ...]}`` with the Arrow type spelled as
Arrow prints it (``double``, ``int64``, ``string``, ``bool``, ``timestamp[us]``, ``timestamp[ms, tz=UTC]``,
``date32[day]``); values are JSON scalars, NULL is ``null``, non-finite floats are the strings ``"NaN"``,
``"Infinity"`` and ``"-Infinity"`` (so NaN and NULL stay apart), times are integers in the type's unit. ``decode``
rebuilds the same table, so the CSV, JSON and Parquet bytes rendered from it are the ones first written (the
snapshot writer checks that before it writes, and ``verify`` checks it against the recorded sha256).
"""

from __future__ import annotations

import math
import re
from typing import Any

import pyarrow as pa

_SIMPLE = {str(t): t for t in (pa.null(), pa.bool_(), pa.int8(), pa.int16(), pa.int32(), pa.int64(), pa.uint8(),
                               pa.uint16(), pa.uint32(), pa.uint64(), pa.float32(), pa.float64(), pa.string(),
                               pa.large_string(), pa.date32())}
_TIMESTAMP = re.compile(r"^timestamp\[(s|ms|us|ns)(?:, tz=([A-Za-z0-9_/+:-]{1,40}))?\]$")
_NONFINITE = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


class TableJsonError(ValueError):
    """A table that cannot be kept as JSON, or a JSON document that is not one."""


def parse_type(name: str) -> pa.DataType:
    if name in _SIMPLE:
        return _SIMPLE[name]
    m = _TIMESTAMP.match(name) if isinstance(name, str) else None
    if m:
        return pa.timestamp(m.group(1), tz=m.group(2))
    raise TableJsonError(f"column type {name!r} cannot be kept as JSON")


def _float_out(v):
    if v is None or math.isfinite(v):
        return v
    return "NaN" if math.isnan(v) else ("Infinity" if v > 0 else "-Infinity")


def _column_out(col: pa.ChunkedArray) -> list[Any]:
    t = col.type
    parse_type(str(t))  # refuses a type decode could not rebuild
    if pa.types.is_timestamp(t):
        return col.cast(pa.int64()).to_pylist()
    if pa.types.is_date32(t):
        return col.cast(pa.int32()).to_pylist()
    if pa.types.is_floating(t):
        return [_float_out(v) for v in col.to_pylist()]
    return col.to_pylist()


def encode(table: pa.Table) -> dict[str, Any]:
    """``table`` as a JSON-able dict (see the module docstring)."""
    cols = [_column_out(table.column(i)) for i in range(table.num_columns)]
    return {"schema": [[f.name, str(f.type)] for f in table.schema],
            "rows": [list(r) for r in zip(*cols)] if cols else []}


def _column_in(values: list[Any], t: pa.DataType) -> pa.Array:
    if pa.types.is_timestamp(t):
        return pa.array(values, pa.int64()).cast(t)
    if pa.types.is_date32(t):
        return pa.array(values, pa.int32()).cast(t)
    if pa.types.is_floating(t):
        values = [_NONFINITE[v] if isinstance(v, str) and v in _NONFINITE else v for v in values]
    return pa.array(values, t)


def decode(doc: Any) -> pa.Table:
    """The table ``encode`` was given; TableJsonError says what is wrong with a malformed document."""
    try:
        schema = [(str(n), parse_type(t)) for n, t in doc["schema"]]
        rows = doc["rows"]
        if not isinstance(rows, list) or any(not isinstance(r, list) or len(r) != len(schema) for r in rows):
            raise TableJsonError("rows do not match the schema")
        arrays = [_column_in([r[i] for r in rows], t) for i, (_, t) in enumerate(schema)]
        return pa.Table.from_arrays(arrays, schema=pa.schema(schema))
    except TableJsonError:
        raise
    except (KeyError, TypeError, ValueError, pa.ArrowException) as exc:
        raise TableJsonError(f"not a table document ({type(exc).__name__}: {exc})") from None
