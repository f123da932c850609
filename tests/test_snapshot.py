"""Snapshots: immutable and verifiable; the gate holds back planted anomalies but not normal drift; archive pages."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pytest

from pipeline import registry
from pipeline.render import archive
from pipeline.render.format import nav_title
from pipeline.snapshots import files as snapshot
from pipeline.snapshots import gate

T = dt.datetime(2026, 9, 21, 16, 40, tzinfo=dt.UTC)
STEP = dt.timedelta(minutes=5)


def make_tables(price: float = 60_000.0, n_cols: int = 288, bins: int = 20, end: dt.datetime = T,
                drop_cols: range | None = None, book_rows: int = 50) -> dict[str, pa.Table]:
    """Tables shaped like the build's: key levels, one grid (non-empty cells), a book."""
    times, lows, highs, sides, notional = [], [], [], [], []
    for j in range(n_cols):
        if drop_cols is not None and j in drop_cols:
            continue
        t = (end - (n_cols - 1 - j) * STEP).replace(tzinfo=None)
        for k in range(bins):
            lo = price * (0.9 + 0.2 * k / bins)
            times.append(t)
            lows.append(lo)
            highs.append(lo + price * 0.2 / bins)
            sides.append("long" if lo < price else "short")
            notional.append(1e5 * (1 + k % 3))
    grid = pa.table({"time": pa.array(times, pa.timestamp("us")), "price_low": lows, "price_high": highs,
                     "side": sides, "notional_usd": notional})
    levels = pa.table({
        "side": ["long", "long", "short", "short"], "rank": [1, 2, 1, 2],
        "price_low": [price * 0.97, price * 0.95, price * 1.02, price * 1.04],
        "price_high": [price * 0.975, price * 0.955, price * 1.025, price * 1.045],
        "notional_usd": [3e6, 2e6, 2.5e6, 1e6],
        "distance_pct": [-2.75, -4.75, 2.25, 4.25],
    })
    book = pa.table({
        "price": [price * (0.8 + 0.4 * i / book_rows) for i in range(book_rows)],
        "side": [-1 if i % 2 else 1 for i in range(book_rows)],
        "leverage": [float([5, 10, 25, 50, 100][i % 5]) for i in range(book_rows)],
        "notional_usd": [1e4 * (i + 1) for i in range(book_rows)],
    })
    return {"key_levels": levels, "grid_24h": grid, "book": book}


def meta(price: float = 60_000.0, end: dt.datetime = T, **extra) -> dict:
    return {"price": price, "data_from": end - dt.timedelta(days=30), "data_to": end - dt.timedelta(minutes=1),
            "timeframes": ["24h"], "model": {"leverage": (5, 10, 25, 50, 100)}, **extra}


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "snapshots"


def test_layout_meta_and_manifest(root: Path):
    folder = snapshot.write_snapshot(root, "btc", T, make_tables(), meta())
    assert folder == root / "btc" / "2026-09-21T1640Z"
    # One file: meta, manifest and the key levels in snapshot.json. Grids and the book are rebuilt
    # from the history (`liqmap snapshot verify`); the manifest still has their sha256 and statistics.
    assert sorted(p.name for p in folder.iterdir()) == ["snapshot.json"]
    doc = json.loads((folder / "snapshot.json").read_text())
    assert doc["format"] == 2 and set(doc) == {"format", "meta", "manifest", "tables", "sha256"}
    m = snapshot.load_meta(folder)
    assert m == doc["meta"]
    assert m["asset"] == "btc" and m["taken_at"] == "2026-09-21T16:40:00Z" and m["liqmap_version"]
    assert m["model"] == {"leverage": [5, 10, 25, 50, 100]} and m["timeframes"] == ["24h"]
    assert m["data_to"] == "2026-09-21T16:39:00Z"
    man = snapshot.load_manifest(folder)
    assert man["embedded"]["key_levels.csv"]["rows"] == 4 and len(man["embedded"]["key_levels.parquet"]["sha256"]) == 64
    assert snapshot.verify(folder) == []
    assert snapshot.list_snapshots(root, "btc") == [folder]
    assert man["recomputed"]["grid_24h.parquet"]["rows"] == make_tables()["grid_24h"].num_rows
    assert set(man["recomputed"]) == {"grid_24h.parquet", "book.csv", "book.json", "book.parquet"}
    assert set(man["embedded"]) == {"key_levels.csv", "key_levels.json", "key_levels.parquet"}
    assert man["files"] == {}  # no extra file
    assert man["tables"]["grid_24h"]["rows"] == make_tables()["grid_24h"].num_rows  # what the gate reads
    # The recorded sha256 is the one of the bytes the same tables give again.
    regen = snapshot.output_files(make_tables())
    assert snapshot.check_outputs(folder, regen) == []
    csv_lines = regen["book.csv"].decode().splitlines()
    assert csv_lines[0].startswith("price,") and len(csv_lines) == make_tables()["book"].num_rows + 1
    offered = snapshot.downloads(folder)
    assert set(offered) == {"key_levels.csv", "key_levels.json", "meta.json", "manifest.json"}
    assert offered["key_levels.csv"] == regen["key_levels.csv"]  # the site's download, rendered from snapshot.json
    rows = json.loads(offered["key_levels.json"])
    assert rows[0] == {"side": "long", "rank": 1, "price_low": 58200.0, "price_high": 58500.0,
                       "notional_usd": 3e6, "distance_pct": -2.75}
    assert snapshot.read_table(folder, "key_levels").equals(make_tables()["key_levels"])


def test_missing_values_serialise_as_null(root: Path):
    t = {"key_levels": pa.table({"side": ["long", None], "price_low": [1.5, float("nan")]})}
    folder = snapshot.write_snapshot(root, "btc", T, t, {})
    offered = snapshot.downloads(folder)
    assert json.loads(offered["key_levels.json"]) == [{"side": "long", "price_low": 1.5}, {"side": None, "price_low": None}]
    assert offered["key_levels.csv"].decode() == "side,price_low\nlong,1.5\n,\n"
    # NaN stays NaN (not NULL) in the kept table: its Parquet bytes are the ones first written.
    back = snapshot.read_table(folder, "key_levels")
    assert back.column("price_low").null_count == 0 and back.column("side").null_count == 1
    assert snapshot.output_files({"key_levels": back}) == \
        snapshot.output_files(t)
    assert snapshot.verify(folder) == []


def _flip(path: Path, at: int | None = None) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2 if at is None else at] ^= 0x01
    os.chmod(path, 0o644)
    path.write_bytes(bytes(data))


def test_verify_detects_one_changed_byte(root: Path):
    folder = snapshot.write_snapshot(root, "btc", T, make_tables(), meta())
    target = folder / "snapshot.json"
    text = target.read_text()
    _flip(target, text.index("58200.0") + 2)  # a digit of a key level
    problems = snapshot.verify(folder)
    assert "2026-09-21T1640Z/snapshot.json: content differs from its sha256" in problems
    assert any("kept table output key_levels.parquet differs" in p for p in problems)
    target.write_text(text)
    assert snapshot.verify(folder) == []
    _flip(target, text.index('"liqmap_version"') + 3)  # the meta, not a table: still reported
    assert snapshot.verify(folder) == ["2026-09-21T1640Z/snapshot.json: content differs from its sha256"]
    target.write_text(text)
    (folder / "extra.csv").write_text("x\n")
    assert any("extra.csv: not in the manifest" in p for p in snapshot.verify(folder))


def test_extra_file_is_stored_with_its_sha256(root: Path):
    png = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4
    folder = snapshot.write_snapshot(root, "btc", T, make_tables(), meta(), extra_files={"map.png": png})
    assert sorted(p.name for p in folder.iterdir()) == ["map.png", "snapshot.json"]
    man = snapshot.load_manifest(folder)
    assert man["files"] == {"map.png": {"sha256": hashlib.sha256(png).hexdigest(), "bytes": len(png)}}
    assert snapshot.verify(folder) == []
    assert snapshot.stored_files(folder)["map.png"] == png
    # Regenerated outputs need not include the image: only table outputs are compared.
    assert snapshot.check_outputs(folder, snapshot.output_files(make_tables())) == []
    _flip(folder / "map.png")
    assert snapshot.verify(folder) == ["2026-09-21T1640Z/map.png: content differs from the manifest (sha256)"]
    os.chmod(folder / "map.png", 0o644)
    (folder / "map.png").unlink()
    assert snapshot.verify(folder) == ["2026-09-21T1640Z/map.png: missing"]
    # Names, count and size are checked before anything is written.
    for bad in ({"../map.png": png}, {"snapshot.json": png}, {"map.exe": png}, {"a.png": png, "b.png": png},
                {"map.png": b"x" * (snapshot.EXTRA_FILE_MAX_BYTES + 1)}):
        with pytest.raises(snapshot.SnapshotError):
            snapshot.write_snapshot(root, "eth", T, make_tables(), meta(), extra_files=bad)
    assert not (root / "eth").exists() or not any((root / "eth").iterdir())


def test_write_is_immutable_and_idempotent(root: Path):
    folder = snapshot.write_snapshot(root, "btc", T, make_tables(), meta())
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    # The same content again (seconds are dropped from the stamp): a no-op.
    assert snapshot.write_snapshot(root, "btc", T + dt.timedelta(seconds=30), make_tables(), meta()) == folder
    with pytest.raises(snapshot.SnapshotExistsError):
        snapshot.write_snapshot(root, "btc", T, make_tables(price=61_000.0), meta())
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before
    assert all(not os.access(p, os.W_OK) or os.geteuid() == 0 for p in folder.iterdir())
    assert all(p.stat().st_mode & 0o222 == 0 for p in folder.iterdir())  # read-only files


def test_bytes_are_deterministic(tmp_path: Path):
    a = snapshot.write_snapshot(tmp_path / "a", "btc", T, make_tables(), meta(liqmap_version="x"))
    b = snapshot.write_snapshot(tmp_path / "b", "btc", T, make_tables(), meta(liqmap_version="x"))
    assert {p.name: p.read_bytes() for p in a.iterdir()} == {p.name: p.read_bytes() for p in b.iterdir()}


@pytest.mark.parametrize("asset,tables", [("../btc", make_tables()), ("BTC", make_tables()),
                                          ("btc", {"../x": pa.table({"a": [1]})}),
                                          ("btc", {"manifest": pa.table({"a": [1]})}),
                                          ("btc", {"grid_1M": pa.table({"a": [1]}), "grid_1m": pa.table({"a": [1]})})])
def test_unsafe_names_rejected(root: Path, asset: str, tables):
    with pytest.raises((ValueError, snapshot.SnapshotError)):
        snapshot.write_snapshot(root, asset, T, tables, {})
    assert not root.exists()


# -- gate -----------------------------------------------------------------------

@pytest.fixture
def previous(root: Path) -> Path:
    prev_t = T - dt.timedelta(hours=2)
    return snapshot.write_snapshot(root, "btc", prev_t, make_tables(end=prev_t), meta(end=prev_t))


def candidate(**kw) -> dict:
    price = kw.pop("price", 60_000.0)
    m = meta(price=price, **kw.pop("meta", {}))
    return snapshot.summarize(make_tables(price=price, **kw), m, asset_id="btc", taken_at=T)


def test_gate_accepts_normal_drift(previous: Path):
    assert gate.gate(previous, candidate()) == []
    # Price up 4 %, 30 % fewer grid cells, a smaller book: markets move, the gate does not care.
    assert gate.gate(previous, candidate(price=62_400.0, bins=14, book_rows=40)) == []
    assert gate.gate(previous, candidate(price=57_000.0)) == []
    # A missing column or two at the start of the grid is not a gap.
    assert gate.gate(previous, candidate(drop_cols=range(0, 2))) == []
    assert gate.gate(None, candidate()) == []  # an asset's first snapshot


def test_gate_rejects_missing_asset(previous: Path, root: Path):
    problems = gate.gate(previous, None, asset_id="btc")
    assert problems and "btc: missing from this build" in problems[0]
    assert gate.gate_missing(root, built=["eth"], asset_ids=["btc", "eth", "sol"]) == problems
    assert gate.gate_missing(root, built=["btc"], asset_ids=["btc", "eth"]) == []


def test_gate_rejects_collapsed_rows(previous: Path):
    problems = gate.gate(previous, candidate(bins=8))
    assert any("grid_24h collapsed from 5760 to 2304 rows" in p for p in problems)
    problems = gate.gate(previous, candidate(book_rows=10))
    assert any("book collapsed" in p for p in problems)


def test_gate_rejects_price_off_by_an_order_of_magnitude(previous: Path):
    problems = gate.gate(previous, candidate(price=600_000.0))
    assert any("price moved 10x" in p for p in problems)
    assert any("key_levels prices moved" in p for p in problems)
    # Levels in another unit than the price (e.g. JPY levels, USD price) are caught without a previous snapshot.
    tables = make_tables(price=60_000.0 * 156)
    problems = gate.gate(None, snapshot.summarize(tables, meta(), asset_id="btc", taken_at=T))
    assert any("key_levels prices" in p and "x the price" in p for p in problems)


def test_gate_rejects_empty_grid(previous: Path):
    tables = make_tables()
    tables["grid_24h"] = tables["grid_24h"].slice(0, 0)
    problems = gate.gate(previous, snapshot.summarize(tables, meta(), asset_id="btc", taken_at=T))
    assert "btc: grid_24h is empty" in problems
    zero = make_tables()
    zero["grid_24h"] = zero["grid_24h"].set_column(4, "notional_usd", pa.array([0.0] * zero["grid_24h"].num_rows))
    assert "btc: grid_24h is empty" in gate.gate(None, snapshot.summarize(zero, meta(), asset_id="btc"))


def test_gate_rejects_big_time_gap(previous: Path):
    problems = gate.gate(previous, candidate(drop_cols=range(100, 160)))  # 5 h without columns
    assert any("grid_24h has a time gap of 5.1 h" in p for p in problems)


def test_gate_rejects_stale_and_backwards_data(previous: Path):
    stale = candidate(meta={"data_to": T - dt.timedelta(days=2)})
    assert any("stale" in p for p in gate.gate(previous, stale))
    sample = candidate(meta={"data_to": T - dt.timedelta(days=2), "is_sample": True})
    assert not any("stale" in p for p in gate.gate(None, sample))
    older = snapshot.summarize(make_tables(end=T - dt.timedelta(hours=5)), meta(), asset_id="btc", taken_at=T)
    assert any("before the previous snapshot" in p for p in gate.gate(previous, older))


def test_gate_rejects_nonfinite_values(previous: Path):
    tables = make_tables()
    kl = tables["key_levels"]
    tables["key_levels"] = kl.set_column(4, "notional_usd", pa.array([float("nan"), 1.0, 2.0, float("inf")]))
    problems = gate.gate(previous, snapshot.summarize(tables, meta(), asset_id="btc", taken_at=T))
    assert "btc: key_levels has 2 NaN/infinite values" in problems


def test_publish_holds_back_without_writing(previous: Path, root: Path):
    res = gate.publish(root, "btc", T, make_tables(price=600_000.0), meta(price=600_000.0))
    assert res.folder is None and res.previous == previous and res.problems
    assert snapshot.list_snapshots(root, "btc") == [previous]
    ok = gate.publish(root, "btc", T, make_tables(price=61_000.0), meta(price=61_000.0))
    assert ok.problems == [] and ok.folder is not None and snapshot.verify(ok.folder) == []
    # The next candidate is compared with the latest published one.
    assert snapshot.latest_snapshot(root, "btc", before=T + STEP) == ok.folder


# -- archive pages ---------------------------------------------------------------

EVIL = "<script>alert(1)</script> [x](javascript:alert(2)) | *coin*"


def _registry() -> registry.Registry:
    text = """
assets:
  - id: btc
    name: Bitcoin
    symbol: BTC
    instruments: {okx: BTC-USDT-SWAP}
    leverage_tiers: [{leverage: 10, weight: 1}]
    mmr_tiers: [{from_usd: 0, mmr: 0.004}]
  - id: eth
    name: Ethereum
    symbol: ETH
    instruments: {okx: ETH-USDT-SWAP}
    leverage_tiers: [{leverage: 10, weight: 1}]
    mmr_tiers: [{from_usd: 0, mmr: 0.005}]
"""
    reg = registry.parse(text)
    # The registry now refuses such a name (test_registry_hardening); the pages must escape it anyway,
    # so it is put in past validation to keep testing the output side.
    return reg.model_copy(update={"assets": [reg.assets[0].model_copy(update={"name": EVIL}), *reg.assets[1:]]})


def test_archive_pages_escape_names_and_link_downloads(root: Path, tmp_path: Path):
    day_before = T - dt.timedelta(hours=23)
    snapshot.write_snapshot(root, "btc", day_before, make_tables(end=day_before), meta(end=day_before))
    snapshot.write_snapshot(root, "btc", T, make_tables(price=61_200.0), meta(price=61_200.0))
    docs = tmp_path / "docs"
    nav = archive.render_archive(root, docs, _registry())
    # Material renders nav titles as raw HTML: the name arrives HTML-escaped.
    assert nav == [{"Archive": [{"Overview": "archive/index.md"}, {nav_title(EVIL): "archive/btc.md"},
                                {"Ethereum": "archive/eth.md"}]}]
    page = (docs / "archive" / "btc.md").read_text()
    index = (docs / "archive" / "index.md").read_text()
    for text in (page, index):
        assert "<script>" not in text and "&lt;script&gt;" in text
        assert "](javascript:" not in text  # the name cannot become a link
    assert "\\|" in page  # a pipe in the name does not break the table
    # Key levels moved +2 % against the snapshot 23 h earlier.
    assert "+2.00 %" in page and "2026-09-20 17:40 UTC" in page
    assert "(../snapshots/btc/2026-09-21T1640Z/key_levels.csv)" in page
    copied = docs / "snapshots" / "btc" / "2026-09-21T1640Z"
    assert sorted(p.name for p in copied.iterdir()) == sorted(
        [f"key_levels.{e}" for e in ("csv", "json")] + ["manifest.json", "meta.json"])  # the book is recomputed
    assert "No snapshot of Ethereum has been published yet." in (docs / "archive" / "eth.md").read_text()

    # MkDocs in strict mode accepts every link (the downloads exist where the pages point).
    (docs / "index.md").write_text("# Home\n")
    cfg = tmp_path / "mkdocs.yml"
    cfg.write_text(f"site_name: t\ndocs_dir: {docs}\nsite_dir: {tmp_path / 'site'}\n")
    res = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-q", "-f", str(cfg)],
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    html = (tmp_path / "site" / "archive" / "btc" / "index.html").read_text()
    assert "<script>alert" not in html
    assert (tmp_path / "site" / "snapshots" / "btc" / "2026-09-21T1640Z" / "key_levels.json").is_file()


def test_archive_download_window(root: Path, tmp_path: Path):
    old = T - dt.timedelta(days=10)
    snapshot.write_snapshot(root, "btc", old, make_tables(end=old), meta(end=old))
    snapshot.write_snapshot(root, "btc", T, make_tables(), meta())
    docs = tmp_path / "docs"
    archive.render_archive(root, docs, _registry(), download_days=7)
    assert sorted(p.name for p in (docs / "snapshots" / "btc").iterdir()) == ["2026-09-21T1640Z"]
    assert "in the `data` branch (`snapshots/btc/2026-09-11T1640Z/`)" in (docs / "archive" / "btc.md").read_text()


def test_site_carries_the_newest_and_the_last_of_each_day(tmp_path: Path):
    snaps = [tmp_path / s for s in ("2026-09-10T0817Z", "2026-09-18T0217Z", "2026-09-18T2217Z",
                                    "2026-09-19T0017Z", "2026-09-19T0217Z", "2026-09-20T0417Z")]
    chosen = archive._download_set(snaps, 7.0)
    # 09-10 is outside the week; 09-18 and 09-19 keep their last; 09-20's only one is the newest.
    assert sorted(p.name for p in chosen) == ["2026-09-18T2217Z", "2026-09-19T0217Z", "2026-09-20T0417Z"]
    assert archive._download_set(snaps, None) == set(snaps)
    assert archive._download_set([], 7.0) == set()
