"""Reading a user's own candle and open-interest files, and writing model output, for ``liqmap compute``.

Inputs are CSV or Parquet (chosen by extension). Every problem raises
:class:`InputError` with a message that names the file, the column and the row or
line, because the reader of that message is someone fixing their own export.

Input schema
------------
Candles: ``time, open, high, low, close, volume`` and optionally ``taker_buy_volume``
(empty cells allowed there only). OI: ``time`` and either ``open_interest_usd`` (USD)
or ``open_interest`` (base units, converted to USD with the close of the candle
whose time is the last at or before the OI time; OI before the first candle uses the
first candle's close). If both are present, ``open_interest_usd`` wins.
``time`` is ISO-8601 (``2026-09-21T00:05:00Z``; without an offset it is taken as UTC)
or integer epoch **milliseconds**. Column names are matched case-insensitively.
Candles and OI may have different intervals (e.g. 1-minute candles, 5-minute OI).
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

CANDLE_COLUMNS = ("time", "open", "high", "low", "close", "volume")
OPTIONAL_CANDLE_COLUMNS = ("taker_buy_volume",)
OUTPUT_FORMATS = (".csv", ".parquet", ".json")
INPUT_FORMATS = (".csv", ".parquet", ".pq")
# Epoch values below this (1973-03-03 in ms) are almost certainly seconds.
_MIN_EPOCH_MS = 100_000_000_000


class InputError(ValueError):
    """A problem with a user's file, phrased for that user (file, column, row)."""


@dataclass(frozen=True)
class Candles:
    path: Path
    time_ms: np.ndarray
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray
    taker_buy_volume: np.ndarray | None

    @property
    def interval_ms(self) -> int:
        """Typical candle spacing (median difference; 60 000 for a single candle)."""
        if self.time_ms.size < 2:
            return 60_000
        return int(np.median(np.diff(self.time_ms)))


@dataclass(frozen=True)
class OpenInterest:
    path: Path
    time_ms: np.ndarray
    oi_usd: np.ndarray
    source_column: str
    oi_base: np.ndarray | None = None  # the file's coins when it gives base units (exact for the model)


class _Table:
    """A read table plus how to name a row in messages (CSV: file line; Parquet: row number)."""

    def __init__(self, path: Path, table, is_csv: bool):
        self.path = path
        self.table = table
        self.is_csv = is_csv
        self.names = {name.strip().lower(): name for name in table.column_names}

    def where(self, i: int) -> str:
        return f"line {i + 2}" if self.is_csv else f"row {i + 1}"

    def err(self, col: str, i: int | None, msg: str) -> InputError:
        at = f", {self.where(i)}" if i is not None else ""
        return InputError(f"{self.path}: column '{col}'{at}: {msg}")

    def has(self, col: str) -> bool:
        return col in self.names

    def require(self, cols) -> None:
        missing = [c for c in cols if c not in self.names]
        if missing:
            found = ", ".join(self.table.column_names) or "(none)"
            raise InputError(
                f"{self.path}: missing column(s) {', '.join(repr(c) for c in missing)} (found: {found})"
            )

    def column(self, col: str):
        return self.table.column(self.names[col]).combine_chunks()


def _read(path: Path) -> _Table:
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    path = Path(path)
    ext = path.suffix.lower()
    if ext not in INPUT_FORMATS:
        raise InputError(f"{path}: unsupported file type {ext or '(none)'!r}; use .csv or .parquet")
    if not path.is_file():
        raise InputError(f"{path}: file not found")
    try:
        if ext == ".csv":
            with open(path, newline="", encoding="utf-8-sig") as fh:
                header = next(csv.reader(fh), None)
            if not header:
                raise InputError(f"{path}: empty file (expected a header line)")
            # Read every column as text: we convert and report bad cells ourselves,
            # with the line number, instead of pyarrow guessing types per block.
            opts = pacsv.ConvertOptions(column_types={name: pa.string() for name in header})
            table = pacsv.read_csv(path, read_options=pacsv.ReadOptions(encoding="utf8"), convert_options=opts)
            return _Table(path, table, is_csv=True)
        return _Table(path, pq.read_table(path), is_csv=False)
    except InputError:
        raise
    except (pa.ArrowException, OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot read as {ext[1:]}: {exc}") from None


def _numbers(t: _Table, col: str, *, allow_empty: bool = False) -> np.ndarray:
    import pyarrow as pa
    import pyarrow.compute as pc

    arr = t.column(col)
    typ = arr.type
    if pa.types.is_string(typ) or pa.types.is_large_string(typ):
        if allow_empty:
            arr = pc.if_else(pc.equal(pc.utf8_trim_whitespace(arr), ""), pa.scalar(None, typ), arr)
        try:
            arr = pc.cast(pc.utf8_trim_whitespace(arr), pa.float64())
        except pa.ArrowInvalid:
            for i, v in enumerate(arr.to_pylist()):
                if v is None:
                    continue
                try:
                    float(v)
                except ValueError:
                    shown = "an empty value" if not v.strip() else f"{v!r} is not a number"
                    raise t.err(col, i, shown) from None
            raise t.err(col, None, "contains values that are not numbers") from None
    elif pa.types.is_integer(typ) or pa.types.is_floating(typ) or pa.types.is_decimal(typ):
        arr = pc.cast(arr, pa.float64())
    else:
        raise t.err(col, None, f"has type {typ}, expected numbers")
    if arr.null_count and not allow_empty:
        i = int(np.flatnonzero(np.asarray(arr.is_null()))[0])
        raise t.err(col, i, "an empty value")
    values = np.asarray(arr.to_numpy(zero_copy_only=False), dtype=float)
    bad = ~np.isfinite(values) & ~(np.asarray(arr.is_null()) if allow_empty else False)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise t.err(col, i, f"{values[i]} is not a finite number")
    return values


def _parse_iso(text: str) -> int:
    dt = datetime.fromisoformat(text.strip().replace("z", "Z"))
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)  # documented: no offset = UTC
    return int(round(dt.timestamp() * 1000))


def _times(t: _Table) -> np.ndarray:
    import pyarrow as pa
    import pyarrow.compute as pc

    col = "time"
    arr = t.column(col)
    typ = arr.type
    if arr.null_count:
        raise t.err(col, int(np.flatnonzero(np.asarray(arr.is_null()))[0]), "an empty time")
    if pa.types.is_timestamp(typ):
        ms = np.asarray(pc.cast(arr, pa.timestamp("ms", tz=typ.tz), safe=False).cast(pa.int64()).to_numpy())
    elif pa.types.is_date(typ):
        ms = np.asarray(pc.cast(pc.cast(arr, pa.timestamp("ms")), pa.int64()).to_numpy())
    elif pa.types.is_integer(typ) or pa.types.is_floating(typ):
        vals = np.asarray(arr.to_numpy(zero_copy_only=False), dtype=float)
        bad = ~np.isfinite(vals) | (vals != np.round(vals))
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise t.err(col, i, f"{vals[i]} is not whole epoch milliseconds")
        ms = vals.astype(np.int64)
        _check_epoch_ms(t, ms)
    elif pa.types.is_string(typ) or pa.types.is_large_string(typ):
        arr = pc.utf8_trim_whitespace(arr)
        if pc.all(pc.match_substring_regex(arr, r"^-?\d+$")).as_py():
            ms = np.asarray(pc.cast(arr, pa.int64()).to_numpy())
            _check_epoch_ms(t, ms)
        else:
            try:
                ms = np.asarray(pc.cast(pc.cast(arr, pa.timestamp("ms", tz="UTC")), pa.int64()).to_numpy())
            except pa.ArrowInvalid:
                # Slow path (no offset, odd precision, or a bad cell): parse row by row.
                out = np.empty(len(arr), dtype=np.int64)
                for i, v in enumerate(arr.to_pylist()):
                    try:
                        out[i] = _parse_iso(v)
                    except ValueError:
                        raise t.err(col, i, f"{v!r} is not an ISO-8601 time or epoch milliseconds") from None
                ms = out
    else:
        raise t.err(col, None, f"has type {typ}, expected ISO-8601 text, a timestamp or epoch milliseconds")
    return ms.astype(np.int64)


def _check_epoch_ms(t: _Table, ms: np.ndarray) -> None:
    small = np.abs(ms) < _MIN_EPOCH_MS
    if small.any():
        i = int(np.flatnonzero(small)[0])
        raise t.err("time", i, f"{ms[i]} looks like epoch seconds; give epoch milliseconds or ISO-8601")


def _check_order(t: _Table, ms: np.ndarray) -> None:
    if ms.size == 0:
        raise InputError(f"{t.path}: no data rows")
    d = np.diff(ms)
    bad = np.flatnonzero(d <= 0)
    if bad.size:
        i = int(bad[0]) + 1
        what = "duplicated time" if d[i - 1] == 0 else "time earlier than the previous row (rows must be sorted by time)"
        raise t.err("time", i, f"{what}: {_iso(ms[i])}")


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(int(ms) / 1000, tz=timezone.utc).isoformat().replace("+00:00", "Z")


def read_candles(path) -> Candles:
    """Read and validate a candle file; raise InputError naming file, column and row."""
    t = _read(Path(path))
    t.require(CANDLE_COLUMNS)
    ms = _times(t)
    _check_order(t, ms)
    vals = {c: _numbers(t, c) for c in CANDLE_COLUMNS[1:]}
    for c in ("open", "high", "low", "close"):
        bad = np.flatnonzero(vals[c] <= 0)
        if bad.size:
            raise t.err(c, int(bad[0]), f"price {vals[c][bad[0]]} is not positive")
    bad = np.flatnonzero(vals["high"] < vals["low"])
    if bad.size:
        raise t.err("high", int(bad[0]), f"high {vals['high'][bad[0]]} is below low {vals['low'][bad[0]]}")
    bad = np.flatnonzero(vals["volume"] < 0)
    if bad.size:
        raise t.err("volume", int(bad[0]), "negative volume")
    taker = None
    if t.has("taker_buy_volume"):
        taker = _numbers(t, "taker_buy_volume", allow_empty=True)
        bad = np.flatnonzero(taker < 0)
        if bad.size:
            raise t.err("taker_buy_volume", int(bad[0]), "negative volume")
    return Candles(t.path, ms, vals["open"], vals["high"], vals["low"], vals["close"], vals["volume"], taker)


def read_open_interest(path, candles: Candles) -> OpenInterest:
    """Read and validate an OI file; base-unit OI is converted to USD with the as-of candle close."""
    t = _read(Path(path))
    t.require(("time",))
    if t.has("open_interest_usd"):
        col = "open_interest_usd"
    elif t.has("open_interest"):
        col = "open_interest"
    else:
        found = ", ".join(t.table.column_names) or "(none)"
        raise InputError(f"{t.path}: missing column 'open_interest_usd' or 'open_interest' (found: {found})")
    ms = _times(t)
    _check_order(t, ms)
    oi = _numbers(t, col)
    bad = np.flatnonzero(oi < 0)
    if bad.size:
        raise t.err(col, int(bad[0]), f"negative open interest {oi[bad[0]]}")
    if ms[-1] < candles.time_ms[0] or ms[0] > candles.time_ms[-1]:
        raise InputError(
            f"{t.path}: open interest covers {_iso(ms[0])} .. {_iso(ms[-1])}, which does not overlap "
            f"the candles in {candles.path} ({_iso(candles.time_ms[0])} .. {_iso(candles.time_ms[-1])})"
        )
    if col == "open_interest":
        idx = np.clip(np.searchsorted(candles.time_ms, ms, side="right") - 1, 0, None)
        return OpenInterest(t.path, ms, oi * candles.close[idx], col, oi_base=oi)
    return OpenInterest(t.path, ms, oi, col)


def iso_times(ms: np.ndarray) -> list[str]:
    """ISO-8601 UTC strings with a ``Z`` suffix (seconds, or milliseconds when needed)."""
    ms = np.asarray(ms, dtype=np.int64)
    unit = "s" if (ms % 1000 == 0).all() else "ms"
    return [s + "Z" for s in np.datetime_as_string(ms.astype("datetime64[ms]"), unit=unit).tolist()]


def check_output_path(path) -> Path:
    path = Path(path)
    if path.suffix.lower() not in OUTPUT_FORMATS:
        raise InputError(f"{path}: unsupported output type {path.suffix or '(none)'!r}; use .csv, .parquet or .json")
    return path


def write_rows(path, columns: dict[str, np.ndarray | list], *, time_column: str | None = None) -> int:
    """Write equally long columns to ``path`` by extension (.csv/.parquet/.json); return the row count.

    ``time_column`` (epoch ms) is written as ISO-8601 text in CSV/JSON and as
    ``timestamp[ms, UTC]`` in Parquet.
    """
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    path = check_output_path(path)
    ext = path.suffix.lower()
    cols = dict(columns)
    n = len(next(iter(cols.values()))) if cols else 0
    if time_column is not None:
        ms = np.asarray(cols[time_column], dtype=np.int64)
        if ext == ".parquet":
            cols[time_column] = pa.array(ms, type=pa.int64()).cast(pa.timestamp("ms", tz="UTC"))
        else:
            cols[time_column] = iso_times(ms)
    path.parent.mkdir(parents=True, exist_ok=True)
    if ext == ".json":
        names = list(cols)
        lists = [c.tolist() if isinstance(c, np.ndarray) else list(c) for c in cols.values()]
        rows = [dict(zip(names, vals)) for vals in zip(*lists)]
        for row in rows:  # JSON has no NaN; a missing value is null
            for k, v in row.items():
                if isinstance(v, float) and not math.isfinite(v):
                    row[k] = None
        with open(path, "w", encoding="utf-8") as fh:
            json.dump(rows, fh, separators=(",", ":"))
            fh.write("\n")
        return n
    table = pa.table({k: (v if isinstance(v, pa.Array) else pa.array(v)) for k, v in cols.items()})
    if ext == ".parquet":
        pq.write_table(table, path)
    else:
        # Our values never contain commas or quotes, so plain unquoted CSV is safe and friendlier.
        pacsv.write_csv(table, path, pacsv.WriteOptions(quoting_style="none", quoting_header="none"))
    return n
