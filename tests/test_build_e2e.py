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
from browserkit import assert_drawn as _assert_drawn
from browserkit import only_local as _only_local
from browserkit import open_page

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
