"""Hostile names and hostile exchange messages go through a real build, and no script runs.

The registry refuses such names (tests/test_registry_hardening.py); here they are slipped
past it on purpose, because the pages must hold on their own: every string from the
registry or an exchange is escaped where it lands (navigation, headings, table cells,
attribute lists, links, the search index). The built site is served on loopback and every
page is opened in headless Chromium with every element hovered and focused.
"""

from __future__ import annotations

import datetime as dt
import threading
from html.parser import HTMLParser

import pytest
from browserkit import open_page

from pipeline import registry
from pipeline.build import build
from pipeline.commands.serve import make_server
from pipeline.store import sample
from pipeline.store.db import Store

# Each payload, if it ever became markup, would set a flag on <body> (or open a dialog).
PWN = "document.body.dataset.pwned=1"
HOSTILE_NAMES = {
    "btc": f"<img src=x onerror={PWN}> Bit{{: onmouseover={PWN} tabindex=1 }}coin [x](javascript:{PWN}) *b*",
    "eth": f"Eth {{: onfocus={PWN} autofocus tabindex=1 }} [x](javascript:{PWN}) `<svg onload={PWN}>`",
    "sol": f"Sol</title><svg onload={PWN}></textarea><img src=x onerror={PWN}>",
}
HOSTILE_MESSAGES = [
    f"Invalid symbol. <img src=x onerror={PWN}>",
    f"API error {{: onmouseover={PWN} tabindex=1 }}",
    f"see [docs](javascript:{PWN}) | *bold* # heading \\{{: onclick={PWN} }}",
    f"\"><script>{PWN}</script><a href='javascript:{PWN}'>x</a>",
]


def _hostile_registry(real_load):
    reg = real_load()
    assets = [a.model_copy(update={"name": HOSTILE_NAMES.get(a.id, a.name)}) for a in reg.assets]
    return reg.model_copy(update={"assets": assets})


@pytest.fixture(scope="module")
def hostile_site(tmp_path_factory):
    root = tmp_path_factory.mktemp("hostile")
    data = root / "data"
    with Store(data / "liqmap.duckdb") as store:
        sample.load_if_empty(store)
        now = dt.datetime(2026, 9, 23, 1, 0)
        n = len(HOSTILE_MESSAGES)
        store.upsert("raw_source_runs", {
            "run_id": [f"evil-{i}" for i in range(n)], "asset": ["btc"] * n,
            "exchange": ["okx", "bybit", "binance", "dydx"][:n], "instrument": ["X"] * n,
            "dataset": ["candles"] * n, "started_at": [now] * n, "finished_at": [now] * n,
            "status": ["error"] * n, "requests": [1] * n, "rows_received": [0] * n, "rows_stored": [0] * n,
            "rows_rejected": [0] * n, "message": HOSTILE_MESSAGES,
        })
    real_load = registry.load
    mp = pytest.MonkeyPatch()
    mp.setattr("pipeline.registry.load", lambda path=None: _hostile_registry(real_load))
    try:
        report = build(data, out=root / "site", docs=root / "docs", strict=True)
    finally:
        mp.undo()
    srv = make_server(report.site_dir, 0)
    th = threading.Thread(target=srv.serve_forever, daemon=True)
    th.start()
    yield report.site_dir, f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()
    srv.server_close()


class _Tags(HTMLParser):
    """Every (tag, attribute, value) of a page, as a browser's parser sees them (title and textarea
    hold raw text, as in a browser)."""

    CDATA_CONTENT_ELEMENTS = ("script", "style", "title", "textarea")

    def __init__(self):
        super().__init__()
        self.attrs: list[tuple[str, str, str]] = []
        self.scripts: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag, attrs):
        self.attrs += [(tag, k, v or "") for k, v in attrs]
        self._in_script = tag == "script"

    def handle_endtag(self, tag):
        self._in_script = False

    def handle_data(self, data):
        if self._in_script:
            self.scripts.append(data)


def test_hostile_text_is_escaped_in_the_files(hostile_site):
    site, _ = hostile_site
    pages = list(site.rglob("*.html"))
    assert len(pages) >= 8
    for f in pages:
        p = _Tags()
        p.feed(f.read_text(encoding="utf-8"))
        handlers = [(t, k) for t, k, _ in p.attrs if k.startswith("on")]
        assert not handlers, f"{f}: event-handler attributes {handlers}"
        links = [v for t, k, v in p.attrs if k in ("href", "src") and v.strip().lower().startswith("javascript:")]
        assert not links, f"{f}: javascript: links {links}"
        assert not [t for t, k, _ in p.attrs if t in ("img", "svg") and k == "src" and "x" == _], f
        assert not any("pwned" in s for s in p.scripts), f"{f}: a hostile string inside a <script>"
    index = (site / "search" / "search_index.json").read_text(encoding="utf-8")
    assert "<img src=x" not in index and "<script>document" not in index


@pytest.mark.browser
def test_no_script_runs_when_every_element_is_hovered_and_focused(hostile_site, browser):
    site, url = hostile_site
    pages = sorted({str(p.parent.relative_to(site)) for p in site.rglob("index.html")})
    assert len(pages) >= 8
    dialogs = []
    with open_page(browser) as pg:
        pg.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
        for rel in pages:
            pg.goto(f"{url}/{'' if rel == '.' else rel + '/'}")
            pg.wait_for_load_state("load")
            n = pg.evaluate("""() => {
                const all = Array.from(document.querySelectorAll('body *'));
                for (const el of all) {
                    for (const t of ['mouseover', 'mouseenter', 'mousemove', 'focus', 'focusin', 'click'])
                        if (t !== 'click' || el.closest('[onclick]')) el.dispatchEvent(new Event(t, {bubbles: true}));
                    if (el.focus) el.focus();
                }
                return all.length;
            }""")
            assert n > 50
            for el in pg.locator("main [tabindex], main a, main td, main h1, main h2").all()[:200]:
                try:
                    el.hover(timeout=200)
                except Exception:  # hidden in a closed tab: the events above reached it anyway
                    pass
            flag = pg.evaluate("() => document.body.dataset.pwned || null")
            assert flag is None, f"a hostile string ran script on {rel}"
    assert dialogs == []
    # The names are shown as text, where a reader expects them.
    with open_page(browser) as pg:
        pg.goto(f"{url}/heatmaps/btc/")
        assert "<img src=x onerror" in pg.locator("h1").first.inner_text()
        nav = pg.locator("nav.md-nav").first.inner_text()
        assert "Bit{: onmouseover" in nav
