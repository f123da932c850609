"""The archive as a time machine (issue 13): each snapshot stores its map as a small image within the
budget, has its own page (map, previous/next, metadata as a table, the 24 h comparison or a sentence),
and the archive pages fit a phone and a desktop without sideways scrolling.

The site is built from the bundled sample; two earlier snapshots of the same view (30 h and 2 h before)
are written through the build's own snapshot step, then the site is built again.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import threading

import numpy as np
import pytest
from browserkit import OVERFLOWING, open_page

from pipeline import paths, registry
from pipeline.build import build
from pipeline.commands.serve import make_server
from pipeline.render.charts import colour
from pipeline.snapshots import files
from pipeline.steps import snapshots

EARLIER_H = (30, 2)  # the oldest has nothing 12-36 h before it; the newest compares with the oldest (30 h)


@pytest.fixture(scope="module")
def archive_site(tmp_path_factory):
    root = tmp_path_factory.mktemp("archive")
    srv = make_server(root / "site", 0)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{srv.server_address[1]}"
    old = os.environ.get("LIQMAP_SITE_URL")
    os.environ["LIQMAP_SITE_URL"] = url + "/"
    try:
        first = build(root / "data", out=root / "site", docs=root / "docs", strict=True)
        view = first.assets["btc"]
        taken = dt.datetime.fromtimestamp(view.price_time_ms / 1000, dt.UTC).replace(second=0, microsecond=0)
        snaps_root = paths.data_paths(root / "data").snapshots
        for h in EARLIER_H:
            assert snapshots.publish(view, registry.load(), snaps_root, taken - dt.timedelta(hours=h)).problems == []
        report = build(root / "data", out=root / "site", docs=root / "docs", strict=True)
    finally:
        if old is None:
            os.environ.pop("LIQMAP_SITE_URL", None)
        else:
            os.environ["LIQMAP_SITE_URL"] = old
    assert not report.held and not report.warnings, (report.held, report.warnings)
    stamps = [files.stamp(taken - dt.timedelta(hours=h)) for h in EARLIER_H] + [files.stamp(taken)]
    yield {"url": url, "site": root / "site", "snapshots": snaps_root / "btc", "stamps": stamps, "view": view}
    srv.shutdown()
    srv.server_close()


# -- the image and how it is stored ---------------------------------------------------------------
def test_map_image_within_budget_and_recorded(archive_site):
    folder = archive_site["snapshots"] / archive_site["stamps"][-1]
    png = (folder / snapshots.MAP_FILE).read_bytes()
    idx, _palette = colour.decode_png_indexed(png)
    assert idx.shape == (colour.SNAPSHOT_MAP_SIZE[1], colour.SNAPSHOT_MAP_SIZE[0])
    assert len(png) <= colour.SNAPSHOT_MAP_BUDGET
    assert len(np.unique(idx)) > 20  # a map, not a flat square
    manifest, meta = files.load_manifest(folder), files.load_meta(folder)
    # One file beside snapshot.json: the image, with its sha256 in the manifest.
    assert sorted(p.name for p in folder.iterdir()) == sorted([files.SNAPSHOT_FILE, snapshots.MAP_FILE])
    assert list(manifest["files"]) == [snapshots.MAP_FILE]
    assert manifest["files"][snapshots.MAP_FILE]["sha256"] == hashlib.sha256(png).hexdigest()
    assert meta["map"]["window"] == snapshots.MAP_WINDOW and meta["map"]["price_low"] < meta["price"] < meta["map"]["price_high"]
    assert files.verify(folder) == []
    # Regenerating the outputs does not expect the image among them.
    assert files.check_outputs(folder, files.output_files(snapshots.tables(archive_site["view"]))) == []
    # One changed byte of the image is reported.
    damaged = folder.parent / "damaged"
    damaged.mkdir()
    for p in folder.iterdir():
        (damaged / p.name).write_bytes(p.read_bytes())
    (damaged / snapshots.MAP_FILE).write_bytes(png[:-1] + bytes([png[-1] ^ 1]))
    assert files.verify(damaged) == [f"damaged/{snapshots.MAP_FILE}: content differs from the manifest (sha256)"]
    # The copy in the site is the stored file.
    site_png = archive_site["site"] / "snapshots" / "btc" / folder.name / snapshots.MAP_FILE
    assert site_png.read_bytes() == png


def test_noisy_map_still_fits_the_budget():
    rng = np.random.default_rng(7)
    grid = rng.gamma(0.5, 1e6, size=(1000, 400))  # no structure to compress: the worst case
    edges = np.linspace(90.0, 110.0, 401)
    png = colour.budget_png(grid, edges, 100 + rng.normal(0, 2, 1000))
    assert len(png) <= colour.SNAPSHOT_MAP_BUDGET
    idx, palette = colour.decode_png_indexed(png)
    assert idx.shape == (200, 240) and len(palette) < 256  # fewer colour steps were needed
    with pytest.raises(ValueError, match="does not fit 100 bytes"):
        colour.budget_png(grid, edges, np.full(1000, 100.0), budget=100)


def test_extra_file_names_are_checked(tmp_path):
    from test_snapshot import make_tables, meta

    t = dt.datetime(2026, 9, 21, 16, 40, tzinfo=dt.UTC)
    for bad in ("../x.png", "meta.json", "key_levels.csv", "snapshot.json", "map.svg", "Map.PNG"):
        with pytest.raises(files.SnapshotError, match="extra file name"):
            files.write_snapshot(tmp_path, "btc", t, make_tables(), meta(), extra_files={bad: b"\x89PNG"})
    with pytest.raises(files.SnapshotError, match="must be bytes"):
        files.write_snapshot(tmp_path, "btc", t, make_tables(), meta(), extra_files={"map.png": "text"})
    with pytest.raises(files.SnapshotError, match="over the budget"):
        files.write_snapshot(tmp_path, "btc", t, make_tables(), meta(),
                             extra_files={"map.png": b"\x89PNG" + bytes(files.EXTRA_FILE_MAX_BYTES)})
    assert not (tmp_path / "btc").exists() or not any((tmp_path / "btc").iterdir())


# -- the pages ----------------------------------------------------------------------------------
SIDEWAYS = "() => document.documentElement.scrollWidth > document.documentElement.clientWidth"
IMAGE_OK = """() => [...document.querySelectorAll('.liqmap-snapmap img')].map(i =>
  i.complete && i.naturalWidth === 240 && i.naturalHeight === 200 && i.getBoundingClientRect().width >= 200)"""


def _fits(pg):
    assert not pg.evaluate(SIDEWAYS)
    assert pg.evaluate(OVERFLOWING) == []


def _step(pg, rel: str, stamp: str):
    """Follow the previous/next link; instant navigation swaps the content after the URL changes."""
    pg.locator(f".liqmap-snapnav [rel={rel}]").click()
    pg.wait_for_url(f"**/archive/btc/{stamp}/")
    pg.wait_for_selector(f'.liqmap-snapmap img[src$="{stamp}/map.png"]', state="attached")


def _image(pg):
    pg.locator(".liqmap-snapmap img").scroll_into_view_if_needed()  # it loads lazily
    pg.wait_for_function("() => [...document.querySelectorAll('.liqmap-snapmap img')].every(i => i.naturalWidth > 0)")
    assert pg.evaluate(IMAGE_OK) == [True]


@pytest.mark.browser
@pytest.mark.parametrize("width", [390, 1400])
def test_asset_and_home_tables_fit(browser, archive_site, width):
    with open_page(browser, width=width, height=900) as pg:
        for page in ("", "heatmaps/btc/", "archive/"):
            pg.goto(f"{archive_site['url']}/{page}")
            _fits(pg)


@pytest.mark.browser
@pytest.mark.parametrize("width", [390, 1400])
def test_archive_pages_step_through_time(browser, archive_site, width):
    url, (oldest, middle, newest) = archive_site["url"], archive_site["stamps"]
    with open_page(browser, width=width, height=900) as pg:
        pg.goto(f"{url}/archive/btc/")
        _image(pg)
        _fits(pg)
        # The latest's key levels compared with the snapshot 30 h earlier: a table, in the site's units.
        moves = pg.locator(".liqmap-moves table")
        assert moves.count() == 1 and "$" in moves.inner_text() and "M" in moves.inner_text()
        assert "There is no snapshot from 12 to 36 hours" not in pg.content()
        assert pg.locator(".liqmap-snapnav [rel=next]").count() == 0
        # Previous: the middle snapshot's page, with its own image and both neighbours.
        _step(pg, "prev", middle)
        _image(pg)
        _fits(pg)
        assert pg.locator(f'.liqmap-snapmap img[src$="{middle}/map.png"]').count() == 1
        assert pg.locator(".liqmap-snapnav [rel=next]").get_attribute("href").endswith(f"{newest}/")
        _step(pg, "prev", oldest)
        _image(pg)
        _fits(pg)
        # The oldest: nothing 12-36 h before it, so a plain sentence instead of the table; no previous.
        assert pg.locator(".liqmap-moves").count() == 0
        assert pg.locator("text=There is no snapshot from 12 to 36 hours before this one yet").is_visible()
        assert pg.locator(".liqmap-snapnav [rel=prev]").count() == 0
        # The metadata as a table, not raw JSON.
        details = pg.locator("table", has_text="liqmap version").inner_text()
        assert "Input data" in details and "Model: leverage" in details and "$" in details
        assert "{" not in details and '"' not in details
        _step(pg, "next", middle)
        assert pg.locator(".liqmap-moves table").count() == 1  # 28 h after the oldest: compared
        assert not pg.errors, pg.errors


def test_snapshot_pages_stay_out_of_nav_and_search(archive_site):
    site = archive_site["site"]
    index = (site / "search" / "search_index.json").read_text()
    assert "archive/btc/" in index and archive_site["stamps"][0] not in index
    for s in archive_site["stamps"]:
        assert (site / "archive" / "btc" / s / "index.html").is_file()
    home = (site / "index.html").read_text()
    assert archive_site["stamps"][0] not in home
