"""Headless-Chromium helpers shared by the browser tests (fixtures are in conftest.py)."""

from __future__ import annotations

import shutil
from contextlib import contextmanager
from urllib.parse import urlsplit

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
LAUNCH_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]

# Non-transparent pixels of a chart's canvas (sampled), or its SVG shapes.
DRAWN_JS = """el => {
  const c = el.querySelector('canvas');
  if (c) {
    const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
    let n = 0; for (let i = 3; i < d.length; i += 16) if (d[i] > 0) n++;
    return n;
  }
  const s = el.querySelector('svg');
  return s ? s.querySelectorAll('path, rect, image, line').length : 0;
}"""


# Visible tables that stick out: past the article's right edge, scrolling inside Material's wrapper
# (whose own box may be wider than a phone's screen), or wider than their own container.
OVERFLOWING = """() => [...document.querySelectorAll('article table')].filter(t => {
  if (t.offsetParent === null || t.closest('details:not([open])')) return false;
  const article = document.querySelector('article').getBoundingClientRect();
  const wrap = t.closest('.md-typeset__scrollwrap');
  const box = t.closest('.md-typeset__table, .liqmap-table, .liqmap-levels') || t.parentElement;
  const r = t.getBoundingClientRect();
  return r.right > article.right + 1 || (wrap && wrap.scrollWidth > wrap.clientWidth + 1)
    || r.width > box.getBoundingClientRect().width + 1;
}).map(t => t.innerText.slice(0, 60))"""


@contextmanager
def open_page(browser, width: int = 1280, height: int = 900):
    """A fresh page that records console errors (``pg.errors``) and every request URL (``pg.requests``)."""
    ctx = browser.new_context(viewport={"width": width, "height": height})
    pg = ctx.new_page()
    pg.errors, pg.requests = [], []
    pg.on("console", lambda m: m.type == "error" and pg.errors.append(m.text))
    pg.on("pageerror", lambda e: pg.errors.append(str(e)))
    pg.on("request", lambda r: pg.requests.append(r.url))
    try:
        yield pg
    finally:
        ctx.close()


def only_local(urls) -> None:
    bad = [u for u in urls if urlsplit(u).scheme not in ("data", "blob")
           and urlsplit(u).hostname not in ("127.0.0.1", "localhost")]
    assert not bad, f"requests outside localhost: {bad}"


def assert_drawn(pg, selector: str) -> None:
    el = pg.locator(selector).first
    el.scroll_into_view_if_needed()
    pg.wait_for_selector(f"{selector}[data-state=drawn]", timeout=15_000)
    assert el.evaluate(DRAWN_JS) > 100, f"{selector} looks empty"
