"""End to end: build the site from the bundled sample, serve it on loopback, check it in headless Chromium.

The site is built once per session (tmp data dir, docs dir and site dir). Browser
tests need Debian's chromium (/usr/bin/chromium) and are marked ``browser``.
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import pytest
from browserkit import OVERFLOWING, open_page
from browserkit import assert_drawn as _assert_drawn
from browserkit import only_local as _only_local

from pipeline.build import build
from pipeline.commands.serve import make_server


@pytest.fixture(scope="session")
def site_root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("site")


@pytest.fixture(scope="session")
def server(site_root):
    """Loopback server for the site dir; started before the build so the build knows its URL."""
    srv = make_server(site_root / "site", 0)
    th = threading.Thread(target=srv.serve_forever, daemon=True)
    th.start()
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()
    srv.server_close()


@pytest.fixture(scope="session")
def built(site_root, server):
    # Material's instant navigation only intercepts links whose host:port matches
    # site_url's sitemap entries, so the site is built for the test server's address.
    old = os.environ.get("LIQMAP_SITE_URL")
    os.environ["LIQMAP_SITE_URL"] = server + "/"
    try:
        return build(site_root / "data", out=site_root / "site", docs=site_root / "docs", strict=True)
    finally:
        if old is None:
            os.environ.pop("LIQMAP_SITE_URL", None)
        else:
            os.environ["LIQMAP_SITE_URL"] = old


def test_build_report_and_pages(built):
    site = built.site_dir
    assert (site / "index.html").exists()
    btc = (site / "heatmaps" / "btc" / "index.html").read_text()
    assert "different venues" in btc and "156.46" in btc and "FX_BTC_JPY" in btc
    assert 'class="liqmap-chart"' in btc and "tabbed-set" in btc
    for tf in ("12h", "24h"):
        assert f'data-spec="heatmaps/btc/heatmap-{tf}.json"' in btc
    eth = (site / "heatmaps" / "eth" / "index.html").read_text()
    assert "There is no market data for Ethereum yet" in eth and "liqmap-chart" not in eth
    assert "liqmap collect" not in eth  # a plain sentence, not command-line text
    assert (site / "methodology" / "index.html").exists() and (site / "faq" / "index.html").exists()
    assert (site / "static" / "js" / "vendor" / "vega-lite.min.js").exists()
    assert not list(site.glob("heatmaps/*.view.json"))  # shard-merge summaries are not published
    spec = json.loads((site / "heatmaps" / "btc" / "heatmap-12h.json").read_text())
    heat, *panels = spec["vconcat"]
    assert heat["layer"][0]["mark"]["type"] == "image"
    # The sample has open interest but no funding: OI and RSI rows, no empty funding row.
    titles = [p["title"]["text"] for p in panels]
    assert titles[0] == "Open interest (USD)" and titles[1].startswith("RSI(14)") and len(titles) == 2
    assert len(spec["datasets"]["panel0"]) > 100 and len(spec["datasets"]["panel1"]) > 100
    assert set(built.timings) >= {"model", "charts", "mkdocs", "total"}
    v = built.assets["btc"]
    assert v.sample is not None and [t.name for t in v.timeframes][:2] == ["12h", "24h"]
    assert v.timeframes[-1].partial  # 49 h of sample data: the 3d window is kept as the partial one
    assert all(t.col_end_ms.size <= 1000 for t in v.timeframes)
    assert any(c.side == "long" for c in v.reference.clusters) and any(c.side == "short" for c in v.reference.clusters)


def test_names_are_escaped(built):
    from pipeline.render.format import environment

    env = environment()
    out = env.from_string("{{ x | md }} {{ x }}").render(x="<script>*a*</script>")
    assert "<script>" not in out and "\\*a\\*" in out


# -- browser ----------------------------------------------------------------------
@pytest.fixture
def page(browser, server, built):
    with open_page(browser) as pg:
        yield pg


@pytest.mark.browser
def test_btc_page_draws_charts(page, server):
    page.goto(f"{server}/heatmaps/btc/")
    _assert_drawn(page, '.tabbed-block:first-child .liqmap-chart')
    _assert_drawn(page, '.liqmap-chart[data-spec$="liquidation-map.json"]')
    # A chart in a hidden tab is drawn when its tab opens.
    page.locator(".tabbed-labels label").nth(1).click()
    _assert_drawn(page, '.liqmap-chart[data-spec$="heatmap-24h.json"]')
    assert page.locator("text=different venues").count() >= 1
    # Every point of the map shows the crosshair's value box (the map is the top ~60 % of the canvas).
    page.locator(".tabbed-labels label").nth(0).click()
    box = page.locator(".tabbed-block:first-child .liqmap-chart canvas").bounding_box()
    texts = []
    for fx, fy in ((0.3, 0.2), (0.2, 0.45), (0.5, 0.12), (0.6, 0.5), (0.1, 0.3)):
        page.mouse.move(box["x"] + box["width"] * fx, box["y"] + box["height"] * fy, steps=4)
        page.wait_for_timeout(150)
        texts.append(page.locator(".tabbed-block:first-child .liqmap-tip").inner_text())
    assert all("est. liquidations in this bin" in t for t in texts), texts
    assert not page.errors, page.errors
    _only_local(page.requests)


@pytest.mark.browser
def test_instant_navigation_home_to_btc(page, server):
    # Material enables instant navigation once it has fetched sitemap.xml: wait for that.
    page.goto(f"{server}/", wait_until="networkidle")
    page.evaluate("window.__same_document = true")
    page.locator('article a[href*="heatmaps/btc"]').first.click()
    page.wait_for_url("**/heatmaps/btc/")
    _assert_drawn(page, '.tabbed-block:first-child .liqmap-chart')
    assert page.evaluate("window.__same_document === true"), "navigation reloaded the page (instant nav off?)"
    assert not page.errors, page.errors
    _only_local(page.requests)


@pytest.mark.browser
def test_theme_toggle_redraws_charts(page, server):
    page.goto(f"{server}/heatmaps/btc/")
    chart = '.tabbed-block:first-child .liqmap-chart'
    _assert_drawn(page, chart)
    page.locator(chart).first.evaluate("el => { el.liqmapView.__before_toggle = true; }")
    scheme = page.evaluate("document.body.getAttribute('data-md-color-scheme')")
    page.locator("[data-md-component=palette] label:visible").first.click()
    assert page.evaluate("document.body.getAttribute('data-md-color-scheme')") != scheme
    page.wait_for_function(
        """sel => { const el = document.querySelector(sel);
                    return el.dataset.state === 'drawn' && el.liqmapView && !el.liqmapView.__before_toggle; }""",
        arg=chart, timeout=15_000)
    _assert_drawn(page, chart)
    assert not page.errors, page.errors


@pytest.mark.browser
def test_asset_without_data(page, server):
    page.goto(f"{server}/heatmaps/eth/")
    assert page.locator("text=There is no market data for Ethereum yet").first.is_visible()
    assert page.locator(".liqmap-chart").count() == 0
    assert not page.errors, page.errors
    _only_local(page.requests)


# -- phone and desktop (issue 13) ---------------------------------------------------------------
PLOT_X = "el => { const r = el.liqmapView.scale('x').range(); return Math.abs(r[1] - r[0]); }"
DOMAIN = "el => [el.liqmapView.scale('x').domain().map(Number), el.liqmapView.scale('concat_0_y').domain()]"
IMAGE_URL = ("el => el.liqmapView.data('image').filter(d => d.band === (el.liqmapView.signal('lev') || 'all'))"
             ".map(d => d.url.length + ':' + d.url.slice(-40))[0]")
SIDEWAYS = "() => document.documentElement.scrollWidth > document.documentElement.clientWidth"
# Tables wider than their box, outside the accuracy section (owned by the backtest page).


@pytest.mark.browser
@pytest.mark.parametrize("width", [390, 1400])
def test_heatmap_fits_zooms_and_filters(browser, built, server, width):
    with open_page(browser, width=width, height=900) as pg:
        pg.goto(f"{server}/heatmaps/btc/")
        chart = '.tabbed-block:first-child .liqmap-chart'
        _assert_drawn(pg, chart)
        el = pg.locator(chart).first
        plot = el.evaluate(PLOT_X)
        assert plot >= (300 if width == 390 else 900), plot
        assert not pg.evaluate(SIDEWAYS)
        assert pg.evaluate(OVERFLOWING) == []
        # The wheel zooms both scales of the map; a double click resets them.
        before = el.evaluate(DOMAIN)
        box = pg.locator(f"{chart} canvas").bounding_box()
        pg.mouse.move(box["x"] + box["width"] * 0.4, box["y"] + box["height"] * 0.3)
        pg.mouse.wheel(0, -400)
        pg.wait_for_timeout(400)
        zoomed = el.evaluate(DOMAIN)
        assert zoomed[0][1] - zoomed[0][0] < before[0][1] - before[0][0]
        assert zoomed[1][1] - zoomed[1][0] < before[1][1] - before[1][0]
        pg.mouse.dblclick(box["x"] + box["width"] * 0.4, box["y"] + box["height"] * 0.3)
        pg.wait_for_timeout(400)
        assert el.evaluate(DOMAIN) == before
        # A tap shows the value of the drawn bin, in the legend's unit.
        pg.mouse.click(box["x"] + box["width"] * 0.5, box["y"] + box["height"] * 0.25)
        tip = pg.locator(f"{chart} .liqmap-tip").inner_text()
        assert "est. liquidations in this bin" in tip and "$" in tip and "G" not in tip
        # The leverage filter redraws the map with another image.
        image = el.evaluate(IMAGE_URL)
        pg.locator(f"{chart} .vega-bindings select").select_option("high")
        pg.wait_for_timeout(300)
        assert el.evaluate(IMAGE_URL) != image
        assert not pg.errors, pg.errors


@pytest.mark.browser
@pytest.mark.parametrize("width", [390, 1400])
def test_home_fits_and_og_image_resolves(browser, built, server, width):
    with open_page(browser, width=width, height=900) as pg:
        pg.goto(f"{server}/")
        assert not pg.evaluate(SIDEWAYS)
        assert pg.evaluate(OVERFLOWING) == []
        pg.goto(f"{server}/heatmaps/btc/")
        og = pg.locator('meta[property="og:image"]').get_attribute("content")
        assert og.startswith(server) and og.endswith("/heatmaps/btc/og.png")
        resp = pg.request.get(og)
        assert resp.ok and resp.body()[:8] == b"\x89PNG\r\n\x1a\n"
        assert pg.locator('meta[property="og:description"]').get_attribute("content").startswith("Bitcoin (BTC) at $")
        # Readable tab anchors.
        assert pg.locator('.tabbed-set > input[id="12h"]').count() == 1


def test_key_levels_json_and_page_order(built):
    site = built.site_dir
    doc = json.loads((site / "heatmaps" / "btc" / "levels.json").read_text())
    assert doc["asset"] == "btc" and doc["estimated"] and doc["windows"][0]["window"] == "12h"
    prices = [lv["price_low"] for lv in doc["windows"][0]["levels"]]
    assert prices == sorted(prices, reverse=True)
    page = (site / "heatmaps" / "btc" / "index.html").read_text()
    first = page.split('class="liqmap-levels"')[1].split("</table>")[0]
    # Shorts above the current-price row, longs below it.
    assert first.index("Shorts #") < first.index("Price now") < first.index("Longs #")
    assert "Updated " in page and "every 2 h" in page and "sources fresh" in page


def test_stated_schedule_matches_the_workflow():
    import yaml

    from pipeline import paths
    from pipeline.steps import pages

    doc = yaml.safe_load((paths.ROOT / ".github" / "workflows" / "publish.yml").read_text())
    crons = [s["cron"] for s in doc[True]["schedule"]] if True in doc else [s["cron"] for s in doc["on"]["schedule"]]
    assert [c.split()[1] for c in crons] == [f"*/{pages.SCHEDULE_CRON_HOURS}"]
    assert pages.SCHEDULE == f"every {pages.SCHEDULE_CRON_HOURS} h"
