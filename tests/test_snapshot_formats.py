"""Both snapshot formats: FORMAT 2 (one snapshot.json, plus the archive's image) is written; FORMAT 1 folders (meta.json,
manifest.json, a CSV/JSON/Parquet trio per kept table), as existing data branches hold them, are still read, verified,
gated against and offered as downloads. The FORMAT 1 folder in tests/data was written by the FORMAT 1 writer."""

from __future__ import annotations

import datetime as dt
import os
import shutil
from pathlib import Path

import pytest
from test_snapshot import T, _registry, make_tables, meta

from pipeline.render import archive
from pipeline.snapshots import files as snapshot
from pipeline.snapshots import gate

FIXTURE = Path(__file__).parent / "data" / "snapshots_format1"
OLD = T - dt.timedelta(hours=23)  # when the FORMAT 1 snapshot was taken


@pytest.fixture
def root(tmp_path: Path) -> Path:
    shutil.copytree(FIXTURE, tmp_path / "snapshots")
    return tmp_path / "snapshots"


def old_tables():
    return make_tables(price=59_000.0, n_cols=24, bins=10, book_rows=10, end=OLD)


def test_format1_folder_is_read_and_verified(root: Path):
    [folder] = snapshot.list_snapshots(root, "btc")
    assert snapshot.snapshot_format(folder) == 1
    assert snapshot.verify(folder) == []
    assert snapshot.load_meta(folder)["watermarks"] and snapshot.load_manifest(folder)["format"] == 1
    assert snapshot.read_table(folder, "key_levels").equals(old_tables()["key_levels"])
    assert snapshot.check_outputs(folder, snapshot.output_files(old_tables())) == []  # what `verify` regenerates
    offered = snapshot.downloads(folder)
    assert set(offered) == {"key_levels.csv", "key_levels.json", "meta.json", "manifest.json"}
    assert offered["key_levels.csv"] == (folder / "key_levels.csv").read_bytes()
    target = folder / "key_levels.csv"
    os.chmod(target, 0o644)
    target.write_bytes(target.read_bytes().replace(b"long", b"lonG", 1))
    assert snapshot.verify(folder) == [f"{folder.name}/key_levels.csv: content differs from the manifest (sha256)"]


def test_gate_compares_a_format2_candidate_with_a_format1_snapshot(root: Path):
    res = gate.publish(root, "btc", T, make_tables(price=60_000.0), meta(price=60_000.0))
    assert res.problems == [] and res.previous.name == "2026-09-20T1740Z"
    assert snapshot.snapshot_format(res.folder) == 2
    held = gate.publish(root, "btc", T + dt.timedelta(hours=2), make_tables(price=600_000.0), meta(price=600_000.0))
    assert held.folder is None and any("moved" in p for p in held.problems)  # compared with the FORMAT 2 one
    assert [snapshot.snapshot_format(p) for p in snapshot.list_snapshots(root, "btc")] == [1, 2]
    # Thinning treats both alike.
    assert snapshot.thin(root, "btc", T + dt.timedelta(days=30)) == []


def test_archive_offers_downloads_of_both_formats(root: Path, tmp_path: Path):
    new = snapshot.write_snapshot(root, "btc", T, make_tables(), meta())
    docs = tmp_path / "docs"
    archive.render_archive(root, docs, _registry())
    page = (docs / "archive" / "btc.md").read_text()
    for folder in snapshot.list_snapshots(root, "btc"):
        own = (docs / "archive" / "btc" / f"{folder.name}.md").read_text()  # each snapshot's own page
        for name in ("key_levels.csv", "key_levels.json", "meta.json", "manifest.json"):
            assert f"(../../snapshots/btc/{folder.name}/{name})" in own, (folder.name, name)
        assert {p.name: p.read_bytes() for p in (docs / "snapshots" / "btc" / folder.name).iterdir()} == \
            snapshot.downloads(folder)
    # The 24 h move is computed across the formats (the levels moved +1.69 % with the price).
    assert "+1.69 %" in page and new.name in page
