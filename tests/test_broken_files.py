"""Broken files are contained: corrupt history partitions, locked or corrupt DuckDB files, read-only data dirs.

Every case must end in one clear line (what, which file, what to do), a non-zero exit where the
command could not do its job, no traceback, and no row lost.
"""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline import cli
from pipeline.store import compaction, history, tables
from pipeline.store.db import TABLES, Store

T0 = dt.datetime(2026, 9, 21, 12, 0)
REPO = Path(__file__).resolve().parent.parent


def fill(store: Store) -> None:
    for ex, inst in (("okx", "BTC-USDT-SWAP"), ("bybit", "BTCUSDT")):
        n = 600  # a little over two days of 5-minute rows: three day partitions per series
        ts = [T0 + dt.timedelta(minutes=5 * i) for i in range(n)]
        store.upsert("raw_candles", {
            "exchange": [ex] * n, "instrument": [inst] * n, "interval_s": [300] * n, "ts": ts,
            "open": [100.0 + i % 7 for i in range(n)], "high": [102.0 + i % 7 for i in range(n)],
            "low": [99.0 + i % 7 for i in range(n)], "close": [101.0 + i % 7 for i in range(n)],
            "volume": [1.0] * n, "taker_buy_volume": [None] * n, "quote": ["USDT"] * n})
        store.upsert("raw_open_interest", {"exchange": [ex] * n, "instrument": [inst] * n, "ts": ts,
                                           "oi_base": [5000.0 + i % 11 for i in range(n)], "oi_usd": [None] * n})


def dump(store: Store) -> dict[str, set]:
    out = {}
    for t in TABLES:
        if t == "raw_source_runs":
            continue
        tbl = store.con.sql(tables.statement("rows_in_key_order", t)).to_arrow_table()
        out[t] = {tuple(r.values()) for r in tbl.to_pylist()}
    return out


@pytest.fixture
def data(tmp_path) -> Path:
    d = tmp_path / "data"
    with Store(d / "liqmap.duckdb") as s:
        fill(s)
        # Exported on the last day, compacted the next: one day file per table and day (three each).
        history.export(s, d / "history", now=dt.datetime(2026, 9, 23, 23, tzinfo=dt.UTC))
    compaction.compact(d / "history", now=dt.datetime(2026, 9, 24, 1, tzinfo=dt.UTC))
    return d


def one_line(err: str) -> str:
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert "Traceback" not in err and len(lines) == 1, err
    return lines[0]


def test_corrupt_partitions_are_moved_aside_restore_goes_on_and_export_writes_them_again(data, tmp_path, capsys):
    capsys.readouterr()
    hist = data / "history"
    parts = sorted((hist / "raw_candles").rglob("part.parquet"))
    assert [p.parent.name for p in parts] == ["date=2026-09-21", "date=2026-09-22", "date=2026-09-23"]
    truncated, garbage = parts[0], parts[2]
    good_bytes = {p: p.read_bytes() for p in parts}
    truncated.write_bytes(good_bytes[truncated][: len(good_bytes[truncated]) // 2])
    garbage.write_bytes(b"PAR1" + os.urandom(300))

    fresh = tmp_path / "fresh"
    assert cli.main(["--data-dir", str(fresh), "restore", "--from", str(hist)]) == 0
    out, err = capsys.readouterr()
    warnings = err.strip().splitlines()
    assert len(warnings) == 2 and "Traceback" not in err
    for w, p in zip(warnings, (truncated, garbage)):
        assert w.startswith(f"warning: {p}: unreadable Parquet (") and "moved to " in w and "liqmap export" in w
        assert not p.exists()
    moved = sorted((hist / "quarantine").rglob("part.parquet.*"))
    assert len([m for m in moved if not m.name.endswith(".txt")]) == 2
    assert any(m.name.endswith(".txt") and "unreadable Parquet" in m.read_text() for m in moved)
    with Store(fresh / "liqmap.duckdb") as s:
        restored = s.count("raw_candles")
    lost = sum(len(history.pq.read_table(history.io.BytesIO(good_bytes[p]))) for p in (truncated, garbage))
    assert restored == 2 * 600 - lost and lost > 0

    # The original store still has every row: export appends exactly the rows of both moved files again.
    assert cli.main(["--data-dir", str(data), "export"]) == 0
    out, err = capsys.readouterr()
    [appended] = [ln.split(" ", 1)[1] for ln in out.splitlines() if ln.startswith("changed raw_candles/run=")]
    assert appended.startswith("raw_candles/run=") and len(history.pq.read_table(hist / appended)) == lost
    # Rows lost: 0 (a restore of the repaired history equals the store).
    again = tmp_path / "again"
    assert cli.main(["--data-dir", str(again), "restore", "--from", str(hist)]) == 0
    with Store(data / "liqmap.duckdb", read_only=True) as a, Store(again / "liqmap.duckdb", read_only=True) as b:
        assert dump(a) == dump(b)


def test_a_broken_partition_already_committed_is_repaired_by_export(data, capsys):
    capsys.readouterr()
    part = sorted((data / "history" / "raw_open_interest").rglob("part.parquet"))[0]
    good = part.read_bytes()
    part.write_bytes(good[:100])
    assert cli.main(["--data-dir", str(data), "export"]) == 0
    out, err = capsys.readouterr()
    line = one_line(err)
    assert line.startswith(f"warning: {part}: unreadable Parquet (") and "rows it held are written again" in line
    assert not part.exists()
    # Nothing lost: the history restores to the store, row for row.
    assert cli.main(["--data-dir", str(data.parent / "again"), "restore", "--from", str(data / "history")]) == 0
    with Store(data / "liqmap.duckdb", read_only=True) as a, Store(data.parent / "again" / "liqmap.duckdb",
                                                                    read_only=True) as b:
        assert dump(a) == dump(b)


def test_a_partition_with_a_wrong_schema_or_null_keys_is_moved_aside(data, tmp_path, capsys):
    import pyarrow as pa
    import pyarrow.parquet as pq

    parts = sorted((data / "history" / "raw_candles").rglob("part.parquet"))
    tbl = pq.read_table(parts[0])
    pq.write_table(tbl.set_column(tbl.column_names.index("open"), "open", pa.array(["x"] * tbl.num_rows)), parts[0])
    pq.write_table(tbl.set_column(tbl.column_names.index("ts"), "ts",
                                  pa.nulls(tbl.num_rows, pa.timestamp("us"))), parts[1])
    capsys.readouterr()
    assert cli.main(["--data-dir", str(tmp_path / "x"), "restore", "--from", str(data / "history")]) == 0
    err = capsys.readouterr().err
    assert "incompatible schema" in err and "NULL in key column 'ts'" in err and "Traceback" not in err


@pytest.fixture
def locked(data):
    """Another process holds the store open (a scheduled run still going)."""
    db = data / "liqmap.duckdb"
    holder = subprocess.Popen([sys.executable, "-c", "import duckdb, sys, time\n"
                               f"c = duckdb.connect({str(db)!r})\nprint('ready', flush=True)\ntime.sleep(60)"],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "ready"
        yield data
    finally:
        holder.kill()
        holder.wait()


@pytest.mark.parametrize("argv", [["collect", "--exchanges", "okx"], ["export"], ["restore"], ["check"]])
def test_a_locked_store_is_one_clear_line(locked, argv, capsys, monkeypatch):
    monkeypatch.setattr("pipeline.registry.load", lambda path=None: __import__("replay.harness").harness.registry_for_tests())
    capsys.readouterr()
    assert cli.main(["--data-dir", str(locked), *argv]) == 2
    line = one_line(capsys.readouterr().err)
    assert f"{locked / 'liqmap.duckdb'}: the store is in use by another liqmap process" in line
    assert "wait for it to finish" in line


@pytest.mark.parametrize("argv", [["collect", "--exchanges", "okx"], ["export"], ["restore"], ["check"]])
@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_a_corrupt_store_is_one_clear_line(data, argv, damage, capsys, monkeypatch):
    monkeypatch.setattr("pipeline.registry.load", lambda path=None: __import__("replay.harness").harness.registry_for_tests())
    db = data / "liqmap.duckdb"
    if damage == "garbage":
        db.write_bytes(b"not a database" * 500)
    else:
        with open(db, "r+b") as f:
            f.truncate(5000)
    capsys.readouterr()
    assert cli.main(["--data-dir", str(data), *argv]) == 2
    line = one_line(capsys.readouterr().err)
    assert f"{db}: not a usable DuckDB database (" in line and "run `liqmap restore`" in line
    assert (data / "history").is_dir()  # the record is untouched


def _as_nobody(argv: list[str], env_extra: dict | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(REPO), **(env_extra or {}))
    return subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", sys.executable, "-m",
                           "pipeline.cli", *argv], capture_output=True, text=True, env=env, cwd=REPO, timeout=120)


@pytest.mark.skipif(not Path("/usr/bin/setpriv").exists() or os.geteuid() != 0, reason="needs setpriv as root")
def test_a_read_only_data_directory_is_one_clear_line(data):
    import shutil
    import tempfile

    # pytest's tmp_path sits under a root-only folder: use one that another user can reach.
    tmp_path = Path(tempfile.mkdtemp(prefix="liqmap-ro-", dir="/tmp"))
    try:
        shutil.copytree(data, tmp_path / "data")
        for p in [tmp_path, *tmp_path.rglob("*")]:
            p.chmod(0o755 if p.is_dir() else 0o644)  # readable by everyone, writable by root only
        _read_only_checks(tmp_path)
    finally:
        shutil.rmtree(tmp_path)


def _read_only_checks(tmp_path: Path) -> None:
    data = tmp_path / "data"
    probe = _as_nobody(["--help"])
    if probe.returncode != 0:
        pytest.skip(f"cannot run python as nobody here: {probe.stderr[-200:]}")
    db = data / "liqmap.duckdb"
    before = db.read_bytes()
    for argv in (["restore"], ["collect", "--exchanges", "okx"]):
        r = _as_nobody(["--data-dir", str(data), *argv])
        assert r.returncode == 2, (argv, r.stdout, r.stderr)
        line = one_line(r.stderr)
        assert "not writable" in line and "--data-dir" in line, line
    r = _as_nobody(["--data-dir", str(data), "export", "--to", str(tmp_path / "elsewhere")])
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "export failed: cannot write" in one_line(r.stderr) and "writable" in r.stderr
    r = _as_nobody(["--data-dir", str(tmp_path / "fresh"), "restore", "--from", str(data / "history")])
    assert r.returncode == 2 and "not writable" in one_line(r.stderr)
    assert db.read_bytes() == before
