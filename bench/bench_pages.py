"""What a reader meets on a built site, measured in headless Chromium (a script, not a test).

For each page and viewport (390 px phone, 1400 px desktop): the width of the first
heatmap's plot area (its x scale's range, in CSS px), the page height once every
chart is drawn, the page weight (bytes of every response the page loaded, charts
included) and the time from navigation to the first drawn map. Optionally writes a
full-page screenshot per page and viewport.

Usage: .venv/bin/python bench/bench_pages.py SITE_DIR [--pages heatmaps/btc/,index.html]
       [--shots DIR] [--json FILE]
"""

from __future__ import annotations

import argparse
import functools
import http.server
import json
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.browserkit import CHROMIUM, LAUNCH_ARGS  # noqa: E402

VIEWPORTS = {"390": (390, 844), "1400": (1400, 900)}

# The plot width of the first drawn chart: the pixel range of its x scale (the name of a shared
# x scale differs between a layer and a vconcat).
PLOT_WIDTH_JS = """() => {
  const el = document.querySelector('.liqmap-chart[data-state=drawn]');
  if (!el || !el.liqmapView) return null;
  for (const name of ['x', 'concat_0_x', 'layer_0_x']) {
    try { const r = el.liqmapView.scale(name).range(); return Math.abs(r[1] - r[0]); } catch (e) {}
  }
  return null;
}"""


def serve(site: Path):
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    handler = functools.partial(Quiet, directory=str(site))
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv


def measure(browser, base: str, page: str, width: int, height: int, shot: Path | None) -> dict:
    ctx = browser.new_context(viewport={"width": width, "height": height})
    pg = ctx.new_page()
    sizes, errors = [], []
    pg.on("response", lambda r: sizes.append(r))
    pg.on("console", lambda m: m.type in ("error", "warning") and errors.append(m.text[:200]))
    pg.on("pageerror", lambda e: errors.append(str(e)[:200]))
    t0 = time.perf_counter()
    pg.goto(base + page)
    first_map = None
    n_charts = pg.locator(".liqmap-chart[data-spec]").count()
    if n_charts:
        pg.wait_for_selector(".liqmap-chart[data-state=drawn]", timeout=30_000)
        first_map = time.perf_counter() - t0
    plot = pg.evaluate(PLOT_WIDTH_JS) if n_charts else None
    # Scroll through the page so every lazily drawn (visible) chart is drawn before measuring.
    h = pg.evaluate("document.documentElement.scrollHeight")
    for y in range(0, h + height, height):
        pg.evaluate(f"window.scrollTo(0, {y})")
        pg.wait_for_timeout(150)
    pg.wait_for_timeout(500)
    h = pg.evaluate("document.documentElement.scrollHeight")
    sideways = pg.evaluate("document.documentElement.scrollWidth > window.innerWidth")
    weight = 0
    for r in sizes:
        try:
            weight += len(r.body())
        except Exception:  # redirects and aborted requests have no body
            pass
    if shot:
        pg.evaluate("window.scrollTo(0, 0)")
        pg.screenshot(path=str(shot), full_page=True)
    ctx.close()
    return {"page": page, "viewport": width, "plot_px": plot, "height_px": h, "sideways": sideways,
            "weight_kb": round(weight / 1024), "first_map_s": round(first_map, 2) if first_map else None, "errors": errors}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("site", type=Path)
    ap.add_argument("--pages", default="heatmaps/btc/,index.html,archive/btc/")
    ap.add_argument("--shots", type=Path)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    from playwright.sync_api import sync_playwright

    srv = serve(args.site)
    base = f"http://127.0.0.1:{srv.server_address[1]}/"
    rows = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS)
        for page in args.pages.split(","):
            for name, (w, h) in VIEWPORTS.items():
                shot = None
                if args.shots:
                    args.shots.mkdir(parents=True, exist_ok=True)
                    shot = args.shots / f"{page.strip('/').replace('/', '_').replace('.html', '') or 'home'}-{name}.png"
                rows.append(measure(browser, base, page, w, h, shot))
                print(json.dumps(rows[-1]), flush=True)
        browser.close()
    srv.shutdown()
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
