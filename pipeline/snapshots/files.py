"""Dated, immutable snapshots of what the site published, a gate against bad ones, and the archive.

A snapshot is one folder per asset and time::

    snapshots/<asset>/<YYYY-MM-DDTHHMMZ>/
        <table>.csv  <table>.json  <table>.parquet     (one trio per table)
        meta.json       model parameters, liqmap version, input data range, timeframes, ...
        manifest.json   sha256, size and row count of every other file + per-table statistics

Files are written deterministically (fixed number formatting, key order, Parquet
writer options), so writing the same content twice is a no-op; writing different
content into an existing folder is refused (:class:`SnapshotExistsError`).
:func:`verify` recomputes the hashes, so one changed byte is reported.

The gate compares a candidate with the previous published snapshot of the same
asset and holds back anomalies (missing asset, collapsed row counts, time gaps,
prices an order of magnitude off, empty grids, non-finite numbers) while
accepting normal drift. It works on manifests, so the previous snapshot's data
files need not be read. Recommended use by the build (see :func:`publish`)::

    result = snapshot.publish(paths.snapshots, asset_id, taken_at, tables, meta)
    if result.problems: ...hold back: do not deploy, report result.problems...

Meta keys the gate understands (all optional): ``price`` (current USD price),
``data_from`` / ``data_to`` (ISO time or epoch ms of the input data),
``is_sample`` or ``sample`` (frozen sample data: the staleness check is skipped).
Key levels are read from a table named ``key_levels`` or ``levels`` (columns
side, rank, price_low, price_high, notional_usd, distance_pct; optional
``timeframe``); grids are tables named ``grid*``.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import hashlib
import io
import json
import math
import os
import re
import shutil
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from pipeline import paths

FORMAT = 1
STAMP_FORMAT = "%Y-%m-%dT%H%MZ"
_STAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{4}Z$")
# Table names become file names; timeframes like 1M need capitals.
_TABLE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
_RESERVED = {"meta", "manifest"}
META_FILE = "meta.json"
MANIFEST_FILE = "manifest.json"
FORMATS = ("csv", "json", "parquet")
# Heatmap grids (tables named grid*) are stored as Parquet only: as CSV/JSON one
# window's cells would be megabytes per snapshot, in every snapshot of every run.
GRID_PREFIX = "grid"
# Only these are copied into the site; Parquet stays in the data branch (it is the bulky one).
DOWNLOAD_FORMATS = ("csv", "json")

_PARQUET_WRITER = dict(
    compression="zstd", compression_level=9, use_dictionary=True, write_statistics=True,
    version="2.6", data_page_version="1.0", row_group_size=1 << 20, store_schema=True,
)
LEVEL_TABLES = ("key_levels", "levels")  # the build calls it levels; the contract key_levels
# Integer columns with these names hold epoch milliseconds.
_TIME_MS_NAMES = {"time", "time_ms", "ts_ms", "col_end_ms", "t_ms", "t1_ms"}


class SnapshotError(Exception):
    """A snapshot that cannot be written or read."""


class SnapshotExistsError(SnapshotError):
    """The snapshot folder exists with different content; snapshots are immutable."""


# -- time helpers ---------------------------------------------------------------

def _utc(t: dt.datetime | int | float | str) -> dt.datetime:
    """A timezone-aware UTC datetime from a datetime (naive = UTC), epoch ms or ISO text."""
    if isinstance(t, dt.datetime):
        return t.replace(tzinfo=dt.UTC) if t.tzinfo is None else t.astimezone(dt.UTC)
    if isinstance(t, (int, float, np.integer, np.floating)) and not isinstance(t, bool):
        return dt.datetime.fromtimestamp(float(t) / 1000.0, tz=dt.UTC)
    if isinstance(t, str):
        return _utc(dt.datetime.fromisoformat(t.replace("Z", "+00:00")))
    raise TypeError(f"not a time: {t!r}")


def _ms(t) -> int | None:
    try:
        return int(round(_utc(t).timestamp() * 1000))
    except (TypeError, ValueError):
        return None


def _iso(t: dt.datetime) -> str:
    t = _utc(t)
    return t.strftime("%Y-%m-%dT%H:%M:%S") + (f".{t.microsecond:06d}" if t.microsecond else "") + "Z"


def stamp(taken_at) -> str:
    """The folder name of a snapshot taken at ``taken_at`` (minute resolution, UTC)."""
    return _utc(taken_at).strftime(STAMP_FORMAT)


def parse_stamp(name: str) -> dt.datetime:
    if not _STAMP.match(name):
        raise ValueError(f"not a snapshot folder name: {name!r}")
    return dt.datetime.strptime(name, STAMP_FORMAT).replace(tzinfo=dt.UTC)


# -- serialisation ----------------------------------------------------------------

def _cell(v: Any) -> Any:
    """One value as JSON-able Python: finite floats, ISO times, None for missing."""
    if v is None:
        return None
    if isinstance(v, bool):
        return v
    if isinstance(v, float):
        return v if math.isfinite(v) else None
    if isinstance(v, dt.datetime):
        return _iso(v)
    if isinstance(v, dt.date):
        return v.isoformat()
    if isinstance(v, (bytes, bytearray)):
        return v.hex()
    return v


def _rows(table: pa.Table) -> list[list[Any]]:
    cols = [[_cell(v) for v in table.column(c).to_pylist()] for c in table.column_names]
    return [list(r) for r in zip(*cols)] if cols else []


def _csv_bytes(table: pa.Table) -> bytes:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(table.column_names)
    for row in _rows(table):
        # repr(float) is the shortest round-trip form: exact and stable across runs.
        w.writerow(["" if v is None else ("true" if v is True else "false" if v is False else
                                          repr(v) if isinstance(v, float) else v) for v in row])
    return buf.getvalue().encode("utf-8")


def _json_bytes(table: pa.Table) -> bytes:
    names = table.column_names
    # One record per line: readable, and a diff of two snapshots lines up.
    lines = [json.dumps(dict(zip(names, r)), ensure_ascii=False, allow_nan=False, separators=(",", ":"))
             for r in _rows(table)]
    return ("[\n" + ",\n".join(lines) + "\n]\n").encode("utf-8") if lines else b"[]\n"


def _parquet_bytes(table: pa.Table) -> bytes:
    buf = io.BytesIO()
    pq.write_table(table, buf, **_PARQUET_WRITER)
    return buf.getvalue()


def _jsonable(o: Any) -> Any:
    if dataclasses.is_dataclass(o) and not isinstance(o, type):
        return {f.name: _jsonable(getattr(o, f.name)) for f in dataclasses.fields(o)}
    if hasattr(o, "model_dump"):  # pydantic models (registry settings)
        return _jsonable(o.model_dump())
    if isinstance(o, Mapping):
        return {str(k): _jsonable(v) for k, v in o.items()}
    if isinstance(o, (list, tuple, set, frozenset)):
        items = [_jsonable(v) for v in o]
        return sorted(items, key=repr) if isinstance(o, (set, frozenset)) else items
    if isinstance(o, np.ndarray):
        return [_jsonable(v) for v in o.tolist()]
    if isinstance(o, np.generic):
        return _jsonable(o.item())
    if isinstance(o, (dt.datetime, dt.date, Path)) or isinstance(o, float):
        return _cell(o) if not isinstance(o, Path) else str(o)
    if o is None or isinstance(o, (str, int, bool)):
        return o
    raise TypeError(f"meta value of type {type(o).__name__} is not JSON-serialisable")


def _dump_json(obj: Any) -> bytes:
    return (json.dumps(_jsonable(obj), indent=2, sort_keys=True, ensure_ascii=False, allow_nan=False) + "\n").encode()


def _liqmap_version() -> str:
    try:
        from importlib.metadata import version

        return version("liqmap")
    except Exception:  # pragma: no cover - not installed as a package
        return "unknown"


# -- statistics (what the gate compares) ------------------------------------------

def _numeric(col: pa.ChunkedArray) -> np.ndarray | None:
    if pa.types.is_floating(col.type) or pa.types.is_integer(col.type):
        return col.cast(pa.float64()).fill_null(np.nan).to_numpy()
    return None


def _times_ms(table: pa.Table) -> np.ndarray | None:
    """Epoch ms of the table's time column (timestamp-typed, or an integer column named like one)."""
    for name in table.column_names:
        col = table.column(name)
        if pa.types.is_timestamp(col.type):
            unit = {"s": 1000.0, "ms": 1.0, "us": 1e-3, "ns": 1e-6}[col.type.unit]
            raw = col.cast(pa.int64()).drop_null().to_numpy()
            return raw.astype(float) * unit
        if name in _TIME_MS_NAMES and pa.types.is_integer(col.type):
            return col.drop_null().to_numpy().astype(float)
    return None


def table_stats(table: pa.Table) -> dict[str, Any]:
    """Row count and the few statistics the gate needs, for one table."""
    out: dict[str, Any] = {"rows": table.num_rows, "columns": list(table.column_names)}
    nonfinite = 0
    for name in table.column_names:
        arr = _numeric(table.column(name))
        if arr is not None and pa.types.is_floating(table.column(name).type):
            nonfinite += int(np.isinf(arr).sum() + (np.isnan(arr).sum() - table.column(name).null_count))
    out["nonfinite"] = nonfinite
    prices = [a for n in ("price", "price_low", "price_high", "close")
              if n in table.column_names and (a := _numeric(table.column(n))) is not None]
    if prices:
        p = np.concatenate(prices)
        p = p[np.isfinite(p)]
        if p.size:
            out.update(price_min=float(p.min()), price_max=float(p.max()), price_median=float(np.median(p)))
    if "notional_usd" in table.column_names:
        n = _numeric(table.column("notional_usd"))
        if n is not None:
            out["notional_usd_sum"] = float(np.nansum(n))
    t = _times_ms(table)
    if t is not None and t.size:
        u = np.unique(t)
        out.update(time_min_ms=int(u[0]), time_max_ms=int(u[-1]))
        if u.size >= 3:
            steps = np.diff(u)
            i = int(np.argmax(steps))
            out.update(median_step_ms=int(np.median(steps)), max_gap_ms=int(steps[i]),
                       max_gap_from_ms=int(u[i]), max_gap_to_ms=int(u[i + 1]))
    return out


def _reference_price(tables: Mapping[str, pa.Table], meta: Mapping[str, Any]) -> float | None:
    """The asset's price at snapshot time: meta['price'], else implied by key levels, else the book."""
    p = meta.get("price")
    if isinstance(p, (int, float)) and not isinstance(p, bool):
        return float(p)
    kl = next((tables[n] for n in LEVEL_TABLES if n in tables), None)
    if kl is not None and kl.num_rows and {"price_low", "price_high", "distance_pct"} <= set(kl.column_names):
        lo, hi, d = (_numeric(kl.column(c)) for c in ("price_low", "price_high", "distance_pct"))
        # distance_pct = (mid - price) / price * 100  =>  price = mid / (1 + d/100)
        implied = ((lo + hi) / 2.0) / (1.0 + d / 100.0)
        implied = implied[np.isfinite(implied) & (implied > 0)]
        if implied.size:
            return float(np.median(implied))
    for name in ("book", *sorted(n for n in tables if n.startswith("grid"))):
        st = table_stats(tables[name]) if name in tables else {}
        if "price_median" in st:
            return st["price_median"]
    return None


def summarize(tables: Mapping[str, pa.Table], meta: Mapping[str, Any], *, asset_id: str | None = None,
              taken_at=None) -> dict[str, Any]:
    """The manifest-shaped summary of a candidate snapshot (what :func:`gate` reads)."""
    return {
        "format": FORMAT,
        "asset": asset_id,
        "taken_at": _iso(taken_at) if taken_at is not None else None,
        "price": _reference_price(tables, meta),
        "data_from": _iso(_utc(meta["data_from"])) if meta.get("data_from") is not None else None,
        "data_to": _iso(_utc(meta["data_to"])) if meta.get("data_to") is not None else None,
        "is_sample": bool(meta.get("is_sample", meta.get("sample", False))),
        "tables": {name: table_stats(t) for name, t in sorted(tables.items())},
    }


# -- writing and reading ------------------------------------------------------------

def _check_tables(tables: Mapping[str, pa.Table]) -> None:
    lower: dict[str, str] = {}
    for name, t in tables.items():
        if not isinstance(name, str) or not _TABLE.match(name) or name in _RESERVED:
            raise SnapshotError(f"unsafe or reserved table name: {name!r}")
        if lower.setdefault(name.lower(), name) != name:
            raise SnapshotError(f"table names {name!r} and {lower[name.lower()]!r} differ only in case")
        if not isinstance(t, pa.Table):
            raise SnapshotError(f"table {name!r} must be a pyarrow.Table, got {type(t).__name__}")


def snapshot_files(asset_id: str, taken_at, tables: Mapping[str, pa.Table], meta: Mapping[str, Any]) -> dict[str, bytes]:
    """Every file of a snapshot, name -> bytes (pure: nothing touches the disk)."""
    paths.safe_name(asset_id)
    _check_tables(tables)
    when = _utc(taken_at).replace(second=0, microsecond=0)
    files: dict[str, bytes] = {}
    rows: dict[str, int] = {}
    for name in sorted(tables):
        t = tables[name]
        if not name.startswith(GRID_PREFIX):
            files[f"{name}.csv"] = _csv_bytes(t)
            files[f"{name}.json"] = _json_bytes(t)
        files[f"{name}.parquet"] = _parquet_bytes(t)
        for ext in FORMATS:
            if f"{name}.{ext}" in files:
                rows[f"{name}.{ext}"] = t.num_rows
    full_meta = {
        **_jsonable(dict(meta)),
        "format": FORMAT,
        "asset": asset_id,
        "taken_at": _iso(when),
        "liqmap_version": meta.get("liqmap_version", _liqmap_version()),
        "tables": {name: tables[name].num_rows for name in sorted(tables)},
    }
    files[META_FILE] = _dump_json(full_meta)
    summary = summarize(tables, meta, asset_id=asset_id, taken_at=when)
    manifest = {
        **summary,
        "files": {n: {"sha256": hashlib.sha256(b).hexdigest(), "bytes": len(b), "rows": rows.get(n)}
                  for n, b in sorted(files.items())},
    }
    files[MANIFEST_FILE] = _dump_json(manifest)
    return files


def write_snapshot(snapshots_root: Path, asset_id: str, taken_at, tables: Mapping[str, pa.Table],
                   meta: Mapping[str, Any]) -> Path:
    """Write ``snapshots_root/<asset>/<YYYY-MM-DDTHHMMZ>/`` and return the folder.

    Rewriting identical content is a no-op; different content for an existing
    folder raises :class:`SnapshotExistsError`. The folder appears atomically
    (written under a temporary name, then renamed), and files are read-only.
    """
    files = snapshot_files(asset_id, taken_at, tables, meta)
    folder = Path(snapshots_root) / paths.safe_name(asset_id) / stamp(taken_at)
    if folder.exists():
        existing = {p.name for p in folder.iterdir()}
        same = existing == set(files) and all((folder / n).read_bytes() == b for n, b in files.items())
        if same:
            return folder
        raise SnapshotExistsError(f"{folder} exists with different content; snapshots are immutable")
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=folder.parent))
    try:
        for name, data in files.items():
            (tmp / name).write_bytes(data)
            os.chmod(tmp / name, 0o444)
        os.chmod(tmp, 0o755)
        os.rename(tmp, folder)  # fails if a concurrent writer got there first: never overwrites
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return folder


def list_snapshots(snapshots_root: Path, asset_id: str) -> list[Path]:
    """Complete snapshot folders of ``asset_id``, oldest first."""
    base = Path(snapshots_root) / paths.safe_name(asset_id)
    if not base.is_dir():
        return []
    return sorted(p for p in base.iterdir() if p.is_dir() and _STAMP.match(p.name) and (p / MANIFEST_FILE).is_file())


def latest_snapshot(snapshots_root: Path, asset_id: str, before=None) -> Path | None:
    """The newest snapshot of ``asset_id`` (strictly older than ``before`` if given)."""
    snaps = list_snapshots(snapshots_root, asset_id)
    if before is not None:
        cut = stamp(before)
        snaps = [p for p in snaps if p.name < cut]
    return snaps[-1] if snaps else None


def load_manifest(folder: Path) -> dict[str, Any]:
    return json.loads((Path(folder) / MANIFEST_FILE).read_text(encoding="utf-8"))


def load_meta(folder: Path) -> dict[str, Any]:
    return json.loads((Path(folder) / META_FILE).read_text(encoding="utf-8"))


def read_table(folder: Path, name: str) -> pa.Table:
    """One table of a snapshot (from its Parquet file)."""
    if not _TABLE.match(name) or name in _RESERVED:
        raise SnapshotError(f"unsafe table name: {name!r}")
    return pq.read_table(Path(folder) / f"{name}.parquet")


def verify(folder: Path) -> list[str]:
    """Problems with a snapshot folder: missing, extra or changed files (empty list = intact)."""
    folder = Path(folder)
    try:
        manifest = load_manifest(folder)
        listed = manifest["files"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return [f"{folder}: manifest unreadable: {exc}"]
    problems = []
    present = {p.name for p in folder.iterdir() if p.is_file()}
    for name in sorted(present - set(listed) - {MANIFEST_FILE}):
        problems.append(f"{folder.name}/{name}: not in the manifest")
    for name, entry in sorted(listed.items()):
        p = folder / name
        if name not in present:
            problems.append(f"{folder.name}/{name}: missing")
            continue
        data = p.read_bytes()
        if len(data) != entry.get("bytes") or hashlib.sha256(data).hexdigest() != entry.get("sha256"):
            problems.append(f"{folder.name}/{name}: content differs from the manifest (sha256)")
        elif name.endswith(".parquet") and entry.get("rows") is not None:
            n = pq.ParquetFile(io.BytesIO(data)).metadata.num_rows
            if n != entry["rows"]:
                problems.append(f"{folder.name}/{name}: {n} rows, manifest says {entry['rows']}")
    return problems


# -- the gate ---------------------------------------------------------------------

@dataclass(frozen=True)
class GateLimits:
    """Where normal drift ends. Every limit is deliberately loose: the gate catches breakage, not markets."""

    min_rows_ratio: float = 0.5  # current rows below this share of the previous: collapsed
    min_rows_for_ratio: int = 10  # tables smaller than this are too noisy to compare
    price_ratio: float = 5.0  # price moved more than this factor: wrong units/instrument, not a market
    gap_factor: float = 6.0  # a time step this many times the usual one ...
    min_gap_ms: int = 30 * 60_000  # ... and at least this long is a gap
    max_staleness_ms: int = 12 * 3_600_000  # data_to this far before taken_at: stale (skipped for the sample)
    backwards_tolerance_ms: int = 0  # data may not end earlier than in the previous snapshot


def _as_summary(x: Path | str | Mapping | None) -> dict | None:
    if x is None:
        return None
    if isinstance(x, (str, Path)):
        return load_manifest(Path(x))
    return dict(x)


def _fmt_ms(ms: int | float) -> str:
    return _utc(int(ms)).strftime("%Y-%m-%d %H:%M UTC")


def _fmt_dur(ms: float) -> str:
    h = ms / 3_600_000
    return f"{h:.1f} h" if h >= 1 else f"{ms / 60_000:.0f} min"


def gate(previous: Path | Mapping | None, current: Path | Mapping | None, *,
         limits: GateLimits = GateLimits(), asset_id: str | None = None) -> list[str]:
    """Problems that should hold ``current`` back (empty list = publish).

    ``previous`` and ``current`` are snapshot folders, manifests or
    :func:`summarize` results; ``previous`` is None for an asset's first
    snapshot, ``current`` is None when the build produced nothing for an asset
    that was published before.
    """
    prev, cur = _as_summary(previous), _as_summary(current)
    who = asset_id or (cur or prev or {}).get("asset") or "asset"
    if cur is None:
        if prev is not None:
            return [f"{who}: missing from this build (last published {prev.get('taken_at')})"]
        return []
    problems: list[str] = []
    tables: dict[str, dict] = cur.get("tables", {})
    if not tables:
        problems.append(f"{who}: snapshot has no tables")

    # Current-only checks.
    for name, st in sorted(tables.items()):
        if (name.startswith("grid") or name == "book") and (st["rows"] == 0 or st.get("notional_usd_sum", 1.0) <= 0):
            problems.append(f"{who}: {name} is empty")
        if st.get("nonfinite"):
            problems.append(f"{who}: {name} has {st['nonfinite']} NaN/infinite values")
        if "price_min" in st and st["price_min"] <= 0:
            problems.append(f"{who}: {name} has non-positive prices")
        gap, step = st.get("max_gap_ms"), st.get("median_step_ms")
        if gap and step and gap > limits.gap_factor * step and gap >= limits.min_gap_ms:
            problems.append(f"{who}: {name} has a time gap of {_fmt_dur(gap)} from {_fmt_ms(st['max_gap_from_ms'])} "
                            f"to {_fmt_ms(st['max_gap_to_ms'])} (usual step {_fmt_dur(step)})")
    price = cur.get("price")
    if price is not None and not (isinstance(price, (int, float)) and math.isfinite(price) and price > 0):
        problems.append(f"{who}: price {price!r} is not a positive number")
        price = None
    if price:
        for name, st in sorted(tables.items()):
            med = st.get("price_median")
            if med and not (1 / limits.price_ratio <= med / price <= limits.price_ratio):
                problems.append(f"{who}: {name} prices (median {med:,.6g}) are {med / price:.3g}x the price {price:,.6g}")
    if cur.get("data_to") and cur.get("taken_at") and not cur.get("is_sample"):
        lag = _ms(cur["taken_at"]) - _ms(cur["data_to"])
        if lag > limits.max_staleness_ms:
            problems.append(f"{who}: data ends {_fmt_dur(lag)} before the snapshot time (stale)")

    if prev is None:
        return problems

    # Comparisons with the previous published snapshot.
    ptables: dict[str, dict] = prev.get("tables", {})
    for name, pst in sorted(ptables.items()):
        st = tables.get(name)
        if st is None:
            problems.append(f"{who}: table {name} missing (had {pst['rows']} rows)")
            continue
        if pst["rows"] >= limits.min_rows_for_ratio and st["rows"] < limits.min_rows_ratio * pst["rows"]:
            problems.append(f"{who}: {name} collapsed from {pst['rows']} to {st['rows']} rows")
        pm, cm = pst.get("price_median"), st.get("price_median")
        if pm and cm and pm > 0 and cm > 0 and not (1 / limits.price_ratio <= cm / pm <= limits.price_ratio):
            problems.append(f"{who}: {name} prices moved {cm / pm:.3g}x (median {pm:,.6g} -> {cm:,.6g})")
        pt, ct = pst.get("time_max_ms"), st.get("time_max_ms")
        if pt is not None and ct is not None and ct < pt - limits.backwards_tolerance_ms:
            problems.append(f"{who}: {name} ends {_fmt_ms(ct)}, before the previous snapshot ({_fmt_ms(pt)})")
    pp = prev.get("price")
    if pp and price and pp > 0 and not (1 / limits.price_ratio <= price / pp <= limits.price_ratio):
        problems.append(f"{who}: price moved {price / pp:.3g}x since the previous snapshot ({pp:,.6g} -> {price:,.6g})")
    if prev.get("data_to") and cur.get("data_to") and _ms(cur["data_to"]) < _ms(prev["data_to"]) - limits.backwards_tolerance_ms:
        problems.append(f"{who}: input data ends {cur['data_to']}, before the previous snapshot's {prev['data_to']}")
    return problems


@dataclass(frozen=True)
class Published:
    folder: Path | None  # the written snapshot, None if held back
    previous: Path | None  # what it was compared with
    problems: list[str]  # why it was held back (empty = written)


def publish(snapshots_root: Path, asset_id: str, taken_at, tables: Mapping[str, pa.Table], meta: Mapping[str, Any],
            *, limits: GateLimits = GateLimits()) -> Published:
    """Gate a candidate against the asset's previous snapshot; write it only if it passes.

    A held-back candidate is not written, so the next run still compares with
    the last good snapshot.
    """
    previous = latest_snapshot(snapshots_root, asset_id, before=taken_at)
    candidate = summarize(tables, meta, asset_id=asset_id, taken_at=_utc(taken_at).replace(second=0, microsecond=0))
    problems = gate(previous, candidate, limits=limits, asset_id=asset_id)
    if problems:
        return Published(None, previous, problems)
    return Published(write_snapshot(snapshots_root, asset_id, taken_at, tables, meta), previous, [])


def gate_missing(snapshots_root: Path, built: Iterable[str], asset_ids: Iterable[str]) -> list[str]:
    """'Asset missing' problems: registry assets published before that this build did not produce."""
    built = set(built)
    return [p for a in asset_ids if a not in built
            for p in gate(latest_snapshot(snapshots_root, a), None, asset_id=a)]


# -- the archive pages ---------------------------------------------------------------

def _md_escape(text: Any) -> str:
    """Text safe inside Markdown and HTML: HTML-escaped, Markdown punctuation backslash-escaped."""
    from markupsafe import Markup, escape

    s = str(escape(str(text)))
    s = re.sub(r"([\\`*_{}\[\]()#+!|~])", r"\\\1", s)
    return Markup(s)


def _env():
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(paths.TEMPLATES)),
        autoescape=True,  # archive*.md.j2 is Markdown with HTML allowed: escape every value
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["md"] = _md_escape
    env.filters["usd"] = lambda v: "–" if v is None else f"{v:,.0f}"
    env.filters["price"] = lambda v: "–" if v is None else (f"{v:,.2f}" if abs(v) >= 100 else f"{v:,.6g}")
    env.filters["pct"] = lambda v: "–" if v is None else f"{v:+.2f} %"
    return env


def _when(t) -> str:
    return _utc(t).strftime("%Y-%m-%d %H:%M UTC") if t else "–"


def _levels(folder: Path) -> list[dict[str, Any]]:
    names = set(load_manifest(folder).get("tables", {}))
    for name in LEVEL_TABLES:
        if name in names:
            try:
                return read_table(folder, name).to_pylist()
            except (OSError, pa.ArrowInvalid, SnapshotError):
                return []
    return []


def _level_moves(now: Path, then: Path | None) -> list[dict[str, Any]]:
    """Key levels of ``now`` matched by (timeframe, side, rank) with those of ``then``."""
    def key(r):
        return (str(r.get("timeframe", "")), str(r.get("side")), r.get("rank") or 0)

    old = {key(r): r for r in _levels(then)} if then is not None else {}
    rows = _levels(now)
    # Windows in the order the build wrote them (12h, 24h, 3d...), not alphabetically.
    order = {tf: i for i, tf in reversed(list(enumerate(str(r.get("timeframe", "")) for r in rows)))}
    out = []
    for r in sorted(rows, key=lambda r: (order[key(r)[0]], *key(r)[1:])):
        if r.get("price_low") is None or r.get("price_high") is None:
            continue
        mid = (r["price_low"] + r["price_high"]) / 2
        o = old.get(key(r))
        omid = (o["price_low"] + o["price_high"]) / 2 if o and o.get("price_low") is not None else None
        out.append({
            "timeframe": r.get("timeframe"), "side": r.get("side"), "rank": r.get("rank"),
            "price_low": r["price_low"], "price_high": r["price_high"],
            "notional_usd": r.get("notional_usd"), "distance_pct": r.get("distance_pct"),
            "then_mid": omid, "then_notional": o.get("notional_usd") if o else None,
            "move_pct": (mid / omid - 1) * 100 if omid else None,
            "notional_change_pct": ((r["notional_usd"] / o["notional_usd"] - 1) * 100
                                    if o and o.get("notional_usd") and r.get("notional_usd") is not None else None),
        })
    return out


def _day_earlier(snaps: list[Path], now: Path, window_h: tuple[float, float] = (12.0, 36.0)) -> Path | None:
    """The snapshot closest to 24 h before ``now`` (within 12-36 h), if any."""
    t = parse_stamp(now.name)
    best, best_err = None, None
    for p in snaps:
        age = (t - parse_stamp(p.name)).total_seconds() / 3600
        if window_h[0] <= age <= window_h[1] and (best_err is None or abs(age - 24) < best_err):
            best, best_err = p, abs(age - 24)
    return best


def _download_set(snaps: list[Path], days: float | None) -> set[Path]:
    """Snapshots whose files the site carries: the newest, and the last of each UTC day within
    ``days`` of it (all of them with ``days=None``). A run every two hours would otherwise put
    twelve copies a day into the Pages artifact; the rest stay in the ``data`` branch."""
    if days is None or not snaps:
        return set(snaps)
    newest = parse_stamp(snaps[-1].name)
    last_of_day: dict[dt.date, Path] = {}
    for p in snaps:  # oldest first, so each day ends with its last snapshot
        taken = parse_stamp(p.name)
        if (newest - taken).total_seconds() <= days * 86400:
            last_of_day[taken.date()] = p
    return {snaps[-1], *last_of_day.values()}


def render_archive(snapshots_root: Path, docs_out: Path, registry, *, download_days: float | None = 7.0,
                   section: str = "Archive") -> list:
    """Write ``archive/index.md`` and ``archive/<asset>.md`` into ``docs_out`` and copy downloads.

    CSV/JSON (and meta/manifest) of each snapshot are copied to
    ``docs_out/snapshots/<asset>/<stamp>/``; with ``download_days`` only the
    newest and the last of each day that recent are copied and linked, which
    bounds the size of the deployed site (the others are listed with their place
    in the ``data`` branch; ``None`` copies all). Returns MkDocs nav entries,
    e.g. ``[{"Archive": [{"Overview": "archive/index.md"}, {"Bitcoin": "archive/btc.md"}]}]``.
    """
    docs_out = Path(docs_out)
    out_dir = docs_out / "archive"
    out_dir.mkdir(parents=True, exist_ok=True)
    env = _env()
    assets_rows = []
    nav_assets = []
    for asset in registry.assets:
        aid = paths.safe_name(asset.id)
        snaps = list_snapshots(snapshots_root, aid)
        newest = parse_stamp(snaps[-1].name) if snaps else None
        with_downloads = _download_set(snaps, download_days)
        rows = []
        for p in reversed(snaps):
            taken = parse_stamp(p.name)
            manifest = load_manifest(p)
            linked = p in with_downloads
            links = []
            if linked:
                dest = docs_out / "snapshots" / aid / p.name
                dest.mkdir(parents=True, exist_ok=True)
                for name in [*sorted(manifest["files"]), MANIFEST_FILE]:
                    if name.rsplit(".", 1)[-1] in DOWNLOAD_FORMATS:
                        src = p / name
                        if not (dest / name).exists() or (dest / name).read_bytes() != src.read_bytes():
                            shutil.copyfile(src, dest / name)
                tables = sorted(manifest.get("tables", {}))
                links = [{"table": t, "rows": manifest["tables"][t]["rows"],
                          "formats": [(ext, f"../snapshots/{aid}/{p.name}/{t}.{ext}") for ext in DOWNLOAD_FORMATS]}
                         for t in tables if f"{t}.{DOWNLOAD_FORMATS[0]}" in manifest["files"]]
            rows.append({
                "stamp": p.name, "taken": _when(taken), "price": manifest.get("price"),
                "data_from": _when(manifest.get("data_from")), "data_to": _when(manifest.get("data_to")),
                "links": links,
                "meta": f"../snapshots/{aid}/{p.name}/{META_FILE}" if linked else None,
                "manifest": f"../snapshots/{aid}/{p.name}/{MANIFEST_FILE}" if linked else None,
            })
        latest = snaps[-1] if snaps else None
        earlier = _day_earlier(snaps, latest) if latest else None
        page = env.get_template("archive_asset.md.j2").render(
            asset=asset, snapshots=rows, latest=_when(newest) if newest else None,
            earlier=_when(parse_stamp(earlier.name)) if earlier else None,
            moves=_level_moves(latest, earlier) if latest else [],
        )
        (out_dir / f"{aid}.md").write_text(page, encoding="utf-8")
        assets_rows.append({"asset": asset, "page": f"{aid}.md", "count": len(snaps),
                            "latest": _when(newest) if newest else None})
        nav_assets.append({asset.name: f"archive/{aid}.md"})
    (out_dir / "index.md").write_text(env.get_template("archive_index.md.j2").render(assets=assets_rows),
                                      encoding="utf-8")
    return [{section: [{"Overview": "archive/index.md"}, *nav_assets]}]
