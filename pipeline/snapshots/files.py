"""Dated, immutable snapshots: write, read, verify, list (files only; the gate is :mod:`.gate`).

A snapshot is one folder per asset and time holding one file (FORMAT 2), plus at most one extra file::

    snapshots/<asset>/<YYYY-MM-DDTHHMMZ>/
        snapshot.json   {"format": 2, "meta": {...}, "manifest": {...}, "tables": {...}, "sha256": ...}
        map.png         optional: the archive's map image (``extra_files``; its sha256 is in the manifest)

* ``meta``: model parameters, liqmap version, each market's history watermark, timeframes, ...
* ``manifest``: the gate's statistics per table, and the sha256, size and row count of every output:
  ``embedded`` (the kept tables' CSV/JSON/Parquet, rebuilt from ``tables``), ``recomputed`` (grids ``grid*``,
  the level ``book`` and the ``windows``: rebuilt from the history, :func:`recomputed`) and ``files`` (the
  extra files stored beside snapshot.json).
* ``tables``: the kept tables (the key levels), exactly, as JSON (:mod:`.tablejson`); the site build renders
  their CSV/JSON downloads from it (:func:`downloads`).
* ``sha256``: of the document without this key, so one changed byte of snapshot.json is reported.

A year of 20 assets is then about 8,800 snapshots of one or two files each. FORMAT 1 folders (written before:
``meta.json``, ``manifest.json`` and a CSV/JSON/Parquet trio per kept table) are still read, verified and gated
(:func:`load_manifest`, :func:`load_meta`, :func:`read_table`, :func:`downloads`, :func:`verify` take both).

``liqmap snapshot show|verify ASSET/STAMP`` rebuilds the recomputed outputs from the history up to the
recorded watermarks and checks the sha256. The gate reads the manifest's statistics, so it works the same
on what remains. Thinning (:func:`thin`): snapshots older than a week keep one per UTC day (the day's last).

One piece: the file format, its validation and every reader and writer of it must change together.

Files are written deterministically (fixed number formatting, key order, Parquet writer options), so
writing the same content twice is a no-op; writing different content into an existing folder is refused
(:class:`SnapshotExistsError`).

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
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from pipeline import paths
from pipeline.snapshots import tablejson
from pipeline.timeutil import iso_z, utc

FORMAT = 2
STAMP_FORMAT = "%Y-%m-%dT%H%MZ"
_STAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{4}Z$")
# Table names become file names; timeframes like 1M need capitals.
_TABLE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
_RESERVED = {"meta", "manifest", "snapshot"}
SNAPSHOT_FILE = "snapshot.json"  # FORMAT 2: the whole snapshot
META_FILE = "meta.json"  # FORMAT 1 (and the site's download of a snapshot's meta)
MANIFEST_FILE = "manifest.json"  # FORMAT 1 (and the site's download of a snapshot's manifest)
# Extra files stored beside snapshot.json (the archive's map image): names, how many, how large. The size is
# the archive images' budget: 4 assets x 50 KB leaves room in the 300 KB a scheduled run may add (CONTRIBUTING).
# Raster images only: an SVG can carry script, and these files are served on the site.
EXTRA_FILE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}\.(png|webp)$")
MAX_EXTRA_FILES = 1
EXTRA_FILE_MAX_BYTES = 50_000
FORMATS = ("csv", "json", "parquet")
# Heatmap grids (tables named grid*) are stored as Parquet only: as CSV/JSON one
# window's cells would be megabytes per snapshot, in every snapshot of every run.
GRID_PREFIX = "grid"
# Tables recomputed on demand from the history, never stored (grid* by prefix).
RECOMPUTED_TABLES = ("book", "windows")
THIN_AFTER = dt.timedelta(days=7)
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


# -- folder names ----------------------------------------------------------------

def stamp(taken_at) -> str:
    """The folder name of a snapshot taken at ``taken_at`` (minute resolution, UTC)."""
    return utc(taken_at).strftime(STAMP_FORMAT)


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
        return iso_z(v)
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
        "taken_at": iso_z(taken_at) if taken_at is not None else None,
        "price": _reference_price(tables, meta),
        "data_from": iso_z(utc(meta["data_from"])) if meta.get("data_from") is not None else None,
        "data_to": iso_z(utc(meta["data_to"])) if meta.get("data_to") is not None else None,
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


def recomputed(name: str) -> bool:
    """Whether the output table ``name`` is rebuilt from the history instead of being stored."""
    return name.startswith(GRID_PREFIX) or name in RECOMPUTED_TABLES


def output_files(tables: Mapping[str, pa.Table]) -> dict[str, bytes]:
    """The output files of ``tables``, name -> bytes (grids as Parquet only); the same bytes every time."""
    _check_tables(tables)
    files: dict[str, bytes] = {}
    for name in sorted(tables):
        t = tables[name]
        if not name.startswith(GRID_PREFIX):
            files[f"{name}.csv"] = _csv_bytes(t)
            files[f"{name}.json"] = _json_bytes(t)
        files[f"{name}.parquet"] = _parquet_bytes(t)
    return files


def _entry(data: bytes) -> dict[str, Any]:
    return {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}


def _table_of(file_name: str) -> str:
    return file_name.rsplit(".", 1)[0]


def _check_extra(extra_files: Mapping[str, bytes] | None) -> dict[str, bytes]:
    extra = dict(extra_files or {})
    if len(extra) > MAX_EXTRA_FILES:
        raise SnapshotError(f"at most {MAX_EXTRA_FILES} extra file(s) per snapshot, got {sorted(extra)}")
    for name, data in extra.items():
        if not isinstance(name, str) or not EXTRA_FILE.match(name):
            raise SnapshotError(f"unsafe extra file name: {name!r} (expected e.g. map.png)")
        if not isinstance(data, (bytes, bytearray)):
            raise SnapshotError(f"extra file {name}: must be bytes, got {type(data).__name__}")
        if len(data) > EXTRA_FILE_MAX_BYTES:
            raise SnapshotError(f"extra file {name}: {len(data)} bytes, over the budget of {EXTRA_FILE_MAX_BYTES} bytes")
    return {n: bytes(b) for n, b in extra.items()}


def _digest(doc: Mapping[str, Any]) -> str:
    return hashlib.sha256(_dump_json({k: v for k, v in doc.items() if k != "sha256"})).hexdigest()


def snapshot_files(asset_id: str, taken_at, tables: Mapping[str, pa.Table], meta: Mapping[str, Any], *,
                   extra_files: Mapping[str, bytes] | None = None) -> dict[str, bytes]:
    """Every stored file of a snapshot, name -> bytes: ``snapshot.json`` and the extra files (pure)."""
    paths.safe_name(asset_id)
    _check_tables(tables)
    extra = _check_extra(extra_files)
    when = utc(taken_at).replace(second=0, microsecond=0)
    outputs = output_files(tables)
    rows = {n: tables[_table_of(n)].num_rows for n in outputs}
    kept = {}
    for name in sorted(n for n in tables if not recomputed(n)):
        kept[name] = tablejson.encode(tables[name])
        mine = {n: b for n, b in outputs.items() if _table_of(n) == name}
        if output_files({name: tablejson.decode(kept[name])}) != mine:  # never store what cannot be rebuilt
            raise SnapshotError(f"table {name!r} does not round-trip through snapshot.json exactly")
    full_meta = {
        **_jsonable(dict(meta)),
        "format": FORMAT,
        "asset": asset_id,
        "taken_at": iso_z(when),
        "liqmap_version": meta.get("liqmap_version", _liqmap_version()),
        "tables": {name: tables[name].num_rows for name in sorted(tables)},
    }
    entry = lambda n, b: {**_entry(b), "rows": rows.get(n)}  # noqa: E731
    manifest = {
        **summarize(tables, meta, asset_id=asset_id, taken_at=when),
        "files": {n: _entry(b) for n, b in sorted(extra.items())},
        # The kept tables' outputs, rebuilt from "tables" (the site's downloads).
        "embedded": {n: entry(n, b) for n, b in sorted(outputs.items()) if _table_of(n) in kept},
        # Outputs rebuilt from the history on demand (`liqmap snapshot verify`).
        "recomputed": {n: entry(n, b) for n, b in sorted(outputs.items()) if _table_of(n) not in kept},
    }
    doc = {"format": FORMAT, "meta": full_meta, "manifest": manifest, "tables": kept}
    doc["sha256"] = _digest(doc)
    return {SNAPSHOT_FILE: _dump_json(doc), **extra}


def write_snapshot(snapshots_root: Path, asset_id: str, taken_at, tables: Mapping[str, pa.Table],
                   meta: Mapping[str, Any], *, extra_files: Mapping[str, bytes] | None = None) -> Path:
    """Write ``snapshots_root/<asset>/<YYYY-MM-DDTHHMMZ>/`` and return the folder.

    ``extra_files`` (name -> bytes, e.g. ``{"map.png": png}``; at most :data:`MAX_EXTRA_FILES`, each at most
    :data:`EXTRA_FILE_MAX_BYTES`) are stored beside snapshot.json with their sha256 in the manifest's ``files``.
    Rewriting identical content is a no-op; different content for an existing
    folder raises :class:`SnapshotExistsError`. The folder appears atomically
    (written under a temporary name, then renamed), and files are read-only.
    """
    files = snapshot_files(asset_id, taken_at, tables, meta, extra_files=extra_files)
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


def is_snapshot(folder: Path) -> bool:
    """Whether ``folder`` is a complete snapshot (either format)."""
    return (folder / SNAPSHOT_FILE).is_file() or (folder / MANIFEST_FILE).is_file()


def list_snapshots(snapshots_root: Path, asset_id: str) -> list[Path]:
    """Complete snapshot folders of ``asset_id``, oldest first."""
    base = Path(snapshots_root) / paths.safe_name(asset_id)
    if not base.is_dir():
        return []
    return sorted(p for p in base.iterdir() if p.is_dir() and _STAMP.match(p.name) and is_snapshot(p))


def latest_snapshot(snapshots_root: Path, asset_id: str, before=None) -> Path | None:
    """The newest snapshot of ``asset_id`` (strictly older than ``before`` if given)."""
    snaps = list_snapshots(snapshots_root, asset_id)
    if before is not None:
        cut = stamp(before)
        snaps = [p for p in snaps if p.name < cut]
    return snaps[-1] if snaps else None


def snapshot_format(folder: Path) -> int:
    return FORMAT if (Path(folder) / SNAPSHOT_FILE).is_file() else 1


def _document(folder: Path) -> dict[str, Any]:
    return json.loads((Path(folder) / SNAPSHOT_FILE).read_text(encoding="utf-8"))


def load_manifest(folder: Path) -> dict[str, Any]:
    if snapshot_format(folder) == 1:
        return json.loads((Path(folder) / MANIFEST_FILE).read_text(encoding="utf-8"))
    return _document(folder)["manifest"]


def load_meta(folder: Path) -> dict[str, Any]:
    if snapshot_format(folder) == 1:
        return json.loads((Path(folder) / META_FILE).read_text(encoding="utf-8"))
    return _document(folder)["meta"]


def read_table(folder: Path, name: str) -> pa.Table:
    """One kept table of a snapshot (FORMAT 2: from snapshot.json; FORMAT 1: from its Parquet file)."""
    if not _TABLE.match(name) or name in _RESERVED:
        raise SnapshotError(f"unsafe table name: {name!r}")
    if snapshot_format(folder) == 1:
        return pq.read_table(Path(folder) / f"{name}.parquet")
    kept = _document(folder).get("tables", {})
    if name not in kept:
        raise SnapshotError(f"{Path(folder).name}: no kept table {name!r}")
    try:
        return tablejson.decode(kept[name])
    except tablejson.TableJsonError as exc:
        raise SnapshotError(f"{Path(folder).name}/{SNAPSHOT_FILE}: table {name!r}: {exc}") from None


def downloads(folder: Path) -> dict[str, bytes]:
    """What the site offers for a snapshot, name -> bytes: each kept table as CSV and JSON, ``meta.json`` and
    ``manifest.json`` (FORMAT 1: the stored files; FORMAT 2: rendered from snapshot.json, the same bytes)."""
    folder = Path(folder)
    if snapshot_format(folder) == 1:
        names = [n for n in load_manifest(folder).get("files", {}) if n.rsplit(".", 1)[-1] in DOWNLOAD_FORMATS]
        return {n: (folder / n).read_bytes() for n in sorted({*names, META_FILE, MANIFEST_FILE})}
    doc = _document(folder)
    out = {n: b for name in sorted(doc.get("tables", {})) for n, b in
           output_files({name: read_table(folder, name)}).items() if n.rsplit(".", 1)[-1] in DOWNLOAD_FORMATS}
    out[META_FILE] = _dump_json(doc["meta"])
    out[MANIFEST_FILE] = _dump_json(doc["manifest"])
    return out


def stored_files(folder: Path) -> dict[str, bytes]:
    """The files the snapshot folder holds (FORMAT 1: those in its manifest; FORMAT 2: snapshot.json and extras)."""
    folder = Path(folder)
    names = [SNAPSHOT_FILE] if snapshot_format(folder) == FORMAT else [MANIFEST_FILE]
    return {n: (folder / n).read_bytes() for n in [*names, *load_manifest(folder).get("files", {})]}


def _check_files(folder: Path, listed: Mapping[str, Any], own: str) -> list[str]:
    """Missing, extra or changed files against the manifest's ``files`` (``own``: the manifest's own file)."""
    problems = []
    present = {p.name for p in folder.iterdir() if p.is_file()}
    for name in sorted(present - set(listed) - {own}):
        problems.append(f"{folder.name}/{name}: not in the manifest")
    for name, entry in sorted(listed.items()):
        if name not in present:
            problems.append(f"{folder.name}/{name}: missing")
            continue
        data = (folder / name).read_bytes()
        if len(data) != entry.get("bytes") or hashlib.sha256(data).hexdigest() != entry.get("sha256"):
            problems.append(f"{folder.name}/{name}: content differs from the manifest (sha256)")
        elif name.endswith(".parquet") and entry.get("rows") is not None:
            n = pq.ParquetFile(io.BytesIO(data)).metadata.num_rows
            if n != entry["rows"]:
                problems.append(f"{folder.name}/{name}: {n} rows, manifest says {entry['rows']}")
    return problems


def verify(folder: Path) -> list[str]:
    """Problems with a snapshot folder: missing, extra or changed files (empty list = intact)."""
    folder = Path(folder)
    if snapshot_format(folder) == 1:
        try:
            listed = load_manifest(folder)["files"]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            return [f"{folder}: manifest unreadable: {exc}"]
        return _check_files(folder, listed, MANIFEST_FILE)
    here = f"{folder.name}/{SNAPSHOT_FILE}"
    try:
        data = (folder / SNAPSHOT_FILE).read_bytes()
        doc = json.loads(data)
        listed, embedded, kept = doc["manifest"]["files"], doc["manifest"]["embedded"], doc["tables"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return [f"{here}: unreadable: {exc}"]
    problems = []
    if doc.get("sha256") != _digest(doc) or _dump_json(doc) != data:
        problems.append(f"{here}: content differs from its sha256")
    problems += _check_files(folder, listed, SNAPSHOT_FILE)
    try:
        rebuilt = output_files({name: tablejson.decode(t) for name, t in kept.items()})
    except (tablejson.TableJsonError, SnapshotError, AttributeError) as exc:
        return problems + [f"{here}: kept tables unreadable: {exc}"]
    for name in sorted(set(rebuilt) | set(embedded)):
        if name not in embedded or name not in rebuilt or _entry(rebuilt[name]) != {
                k: embedded[name].get(k) for k in ("sha256", "bytes")}:
            problems.append(f"{here}: kept table output {name} differs from the manifest (sha256)")
    return problems


def check_outputs(folder: Path, outputs: Mapping[str, bytes]) -> list[str]:
    """Problems comparing regenerated ``outputs`` (name -> bytes) with the sha256 the manifest recorded."""
    manifest = load_manifest(folder)
    if snapshot_format(folder) == 1:
        tables = {n: e for n, e in {**manifest.get("files", {}), **manifest.get("recomputed", {})}.items()
                  if n != META_FILE}
    else:
        tables = {**manifest.get("embedded", {}), **manifest.get("recomputed", {})}
    problems = []
    for name, data in sorted(outputs.items()):
        entry = tables.get(name)
        if entry is None:
            problems.append(f"{Path(folder).name}/{name}: regenerated, but not in the manifest")
        elif hashlib.sha256(data).hexdigest() != entry.get("sha256"):
            problems.append(f"{Path(folder).name}/{name}: regenerated from the history, sha256 differs from the "
                            "manifest's")
    for name in sorted(set(tables) - set(outputs)):
        problems.append(f"{Path(folder).name}/{name}: in the manifest, not regenerated")
    return problems


def thin(snapshots_root: Path, asset_id: str, now, *, older_than: dt.timedelta = THIN_AFTER) -> list[Path]:
    """Remove intra-day snapshots older than ``older_than``: each UTC day keeps its last one. Returns what went.

    The newest snapshot is always kept (the gate compares with it), and so is every day's last.
    """
    snaps = list_snapshots(snapshots_root, asset_id)
    cut = utc(now) - older_than
    last_of_day: dict[str, Path] = {}
    for p in snaps:  # oldest first: each day ends with its last
        last_of_day[p.name[:10]] = p
    keep = set(last_of_day.values()) | set(snaps[-1:])
    removed = []
    for p in snaps:
        if p not in keep and parse_stamp(p.name) < cut:
            shutil.rmtree(p)
            removed.append(p)
    return removed
