"""``build()``: store -> model -> charts, key levels -> Markdown pages -> ``mkdocs build --strict``.

Steps: open the store (loading the bundled sample when it is empty); for every
registry asset, run the model once per market over the full stored history,
aggregate the markets' level books on one USD price axis per timeframe, find
key levels, render specs (JSON next to the pages) and Markdown from the Jinja
templates in ``site/templates`` into ``paths.DOCS_OUT``, copy ``site/static``
and run MkDocs. Pure computation lives in model/levels/charts; this module is
the I/O around them.

Timeframes: a window is drawn only if the stored history covers it, plus the
first window longer than the history (marked "partial"; it shows all data), so
even a short history gets one tab. Every window shares one model run per
market: a window changes the time span, price range and bin width drawn, not
the positions in the book.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from pipeline import paths, registry
from pipeline.markets import Market, markets_for
from pipeline.model import book as model
from pipeline.model import indicators, levels
from pipeline.render.charts import heatmap as charts
from pipeline.snapshots import files as snapshot
from pipeline.store.db import open_store
from pipeline.store.sample import JPY_PER_USD

MAX_COLS = 1000
# Price padding around the window's low/high per timeframe (fraction of price):
# longer windows show farther (lower-leverage) levels.
PRICE_PAD = {"12h": 0.05, "24h": 0.06, "3d": 0.08, "1w": 0.10, "2w": 0.12, "1M": 0.15, "3M": 0.2, "6M": 0.25, "1y": 0.3}
TOP_CLUSTERS = 5
LIQ_MAP_BINS = 120
LIQ_MAP_MAX_PCT = 0.35  # the liquidation map never spans more than +-35 % around the price
DOCS_MARKER = ".liqmap-docs"  # marks a docs dir as generated, so rebuilding may wipe it
# Older observations than this count as gaps in the context panels, not as the current value
# (Hyperliquid OI is one observation per collect run, hence hours rather than minutes).
OI_MAX_AGE_MS = 6 * 3_600_000
FUNDING_MAX_INTERVALS = 2
DAY_MS = 86_400_000
BOOK_BIN = 0.001  # snapshot book: 0.1 % price bins ...
BOOK_SPAN = 0.5  # ... within +-50 % of the price (farther levels are 2x-leverage dust)
SNAPSHOT_GRID_COLS = 240  # time columns per window kept in a snapshot's grid


@dataclass
class MapView:
    """One heatmap of a window: the aggregate over the asset's markets, or one market."""

    key: str  # "all" or a market key (used in file names)
    label: str
    grid: np.ndarray | None  # (m, k) both sides, USD; dropped once the spec is written
    price_close: np.ndarray  # at the column ends (NaN where there is no candle yet)
    panels: list[charts.Panel]
    spec_file: str = ""


@dataclass
class TimeframeView:
    name: str
    label: str
    partial: bool
    t0_ms: int
    t1_ms: int
    col_end_ms: np.ndarray
    price_edges: np.ndarray
    grid: np.ndarray  # (2, m, k): [0] long levels, [1] short levels, USD
    clusters: list[levels.Cluster]
    maps: list[MapView] = field(default_factory=list)  # [0] the aggregate, then one per market if > 1

    @property
    def slug(self) -> str:
        return self.name.replace("M", "mo").lower()


@dataclass
class AssetView:
    """Everything one asset page shows (also what snapshot writing persists)."""

    asset: registry.Asset
    markets: list[Market] = field(default_factory=list)
    price: float = math.nan
    price_time_ms: int = 0
    first_ms: int = 0
    timeframes: list[TimeframeView] = field(default_factory=list)
    book: dict = field(default_factory=dict)  # concatenated market books + "market" labels
    liq_map_file: str = ""
    freshness: list[dict] = field(default_factory=list)
    sources: list[dict] = field(default_factory=list)
    sample: dict | None = None  # banner facts when built from the bundled sample
    error: str = ""
    funding_8h: float = math.nan  # current funding, OI-weighted over markets, 8 h basis
    oi_usd: float = math.nan  # current open interest summed over markets
    oi_change_24h: float = math.nan  # over the markets with OI now and 24 h ago

    @property
    def has_data(self) -> bool:
        return bool(self.timeframes)

    @property
    def reference(self) -> TimeframeView | None:
        """The widest window: its top clusters feed the home page."""
        return self.timeframes[-1] if self.timeframes else None


@dataclass
class BuildReport:
    docs_dir: Path
    site_dir: Path
    pages: list[Path] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    assets: dict[str, AssetView] = field(default_factory=dict)
    # Gate problems: snapshots held back. The site is still built (to inspect), but
    # `liqmap build` exits non-zero so a publish run does not deploy it.
    held: list[str] = field(default_factory=list)

    def summary(self) -> str:
        t = ", ".join(f"{k} {v:.2f}s" for k, v in self.timings.items())
        return f"{len(self.pages)} pages -> {self.site_dir} ({t}); {len(self.warnings)} warning(s)"


# -- model + aggregation ---------------------------------------------------------
def _windows(asset: registry.Asset, first_ms: int, last_ms: int, candle_ms: int) -> list[tuple[str, bool]]:
    span = last_ms + candle_ms - first_ms  # the last candle covers [last_ms, last_ms + candle_ms)
    tfs = sorted(asset.timeframes, key=registry.TIMEFRAMES_MS.__getitem__)
    full = [(tf, False) for tf in tfs if registry.TIMEFRAMES_MS[tf] <= span]
    longer = [tf for tf in tfs if registry.TIMEFRAMES_MS[tf] > span]
    return full + ([(longer[0], True)] if longer else [])


def _hours(ms: int) -> str:
    h = ms / 3_600_000
    return f"{h:.0f} h" if h < 72 else f"{h / 24:.1f} days"


def _bar(ms: int) -> str:
    """A bar length as traders write it: 1m, 45m, 2h, 1d."""
    minutes = ms // 60_000
    if minutes % 1440 == 0:
        return f"{minutes // 1440}d"
    return f"{minutes // 60}h" if minutes % 60 == 0 else f"{minutes}m"


def _run_market(store, asset, params, mk: Market) -> dict | None:
    c = store.arrays("market_candles", exchange=mk.candles[0], instrument=mk.candles[1], since_ms=0)
    if c["time_ms"].size == 0:
        return None
    o = store.arrays("market_open_interest", exchange=mk.oi[0], instrument=mk.oi[1], since_ms=0)
    t = c["time_ms"].astype(np.int64)
    oi = model.align_oi(t, o["time_ms"], o["oi_usd"]) if o["time_ms"].size else np.full(t.shape, np.nan)
    res = model.run(
        t, c["open"], c["high"], c["low"], c["close"], oi, params,
        volume=c["volume"], taker_buy_volume=c["taker_buy_volume"],
    )
    f = store.arrays("market_funding", exchange=mk.candles[0], instrument=mk.candles[1], since_ms=0)
    return {
        "market": mk, "candles": c, "result": res, "candle_ms": int(np.nanmax(c["interval_s"])) * 1000,
        "oi_last_ms": int(o["time_ms"].max()) if o["time_ms"].size else None, "oi_first_ms":
        int(o["time_ms"].min()) if o["time_ms"].size else None,
        "oi": o, "funding": {"time_ms": f["time_ms"], "rate_8h": indicators.funding_per_8h(f["time_ms"], f["rate"])},
        # A venue's rate older than a couple of its own intervals is a gap, not the current rate.
        "funding_max_age_ms": FUNDING_MAX_INTERVALS * (indicators.funding_interval_ms(f["time_ms"])
                                                       or indicators.FUNDING_BASIS_MS),
    }


def _context(run: dict, ends: np.ndarray) -> dict[str, np.ndarray]:
    """One market's price, open interest and funding at the column ends."""
    c, o, f = run["candles"], run["oi"], run["funding"]
    return {
        "close": indicators.at_column_ends(c["time_ms"], c["close"], ends),
        "oi": indicators.at_column_ends(o["time_ms"], o["oi_usd"], ends, OI_MAX_AGE_MS),
        "funding": indicators.at_column_ends(f["time_ms"], f["rate_8h"], ends, run["funding_max_age_ms"]),
    }


def _panels(close: np.ndarray, oi: np.ndarray, funding: np.ndarray, step_ms: int, oi_title: str) -> list[charts.Panel]:
    return [
        charts.Panel(oi_title, oi, "$,.3~s"),
        charts.Panel("Funding (8 h)", funding, ".3~%", kind="bar", rules=(0.0,)),
        charts.Panel(f"RSI(14), {_bar(step_ms)} closes", indicators.rsi(close), ".0f", rules=(30.0, 70.0), domain=(0, 100)),
    ]


def _aggregate_context(ctx: list[dict], primary: int) -> dict[str, np.ndarray]:
    """Markets' context rows -> the asset's: OI summed, funding weighted by OI (equal weights
    where no OI is known), the price of the primary market."""
    oi = np.stack([x["oi"] for x in ctx])
    fund = np.stack([x["funding"] for x in ctx])
    return {"close": ctx[primary]["close"], "oi": indicators.total(oi), "funding": indicators.funding_across(fund, oi)}


def _current(runs: list[dict], now_ms: int) -> dict[str, float]:
    """Home-page figures: OI now and its change over 24 h (over markets with both values), funding now."""
    at = np.array([now_ms - DAY_MS, now_ms], dtype=np.int64) + 1  # "before" is strict
    oi = np.stack([indicators.at_column_ends(r["oi"]["time_ms"], r["oi"]["oi_usd"], at, OI_MAX_AGE_MS) for r in runs])
    fund = np.array([indicators.at_column_ends(r["funding"]["time_ms"], r["funding"]["rate_8h"], at[1:],
                                               r["funding_max_age_ms"])[0]
                     for r in runs])
    both = np.isfinite(oi).all(axis=1)
    change = oi[both, 1].sum() / oi[both, 0].sum() - 1.0 if both.any() and oi[both, 0].sum() > 0 else math.nan
    now_oi = oi[:, 1]
    return {"oi_usd": float(indicators.total(now_oi[:, None])[0]), "oi_change_24h": float(change),
            "funding_8h": float(indicators.funding_across(fund[:, None], now_oi[:, None])[0])}


def _view(store, reg, asset, stored, status_rows) -> AssetView:
    view = AssetView(asset=asset)
    view.sources = [r for r in status_rows if r["asset"] == asset.id]
    view.markets = markets_for(asset, stored)
    if not view.markets:
        return view
    params = model.ModelParams.from_asset(asset, reg.settings_for(asset))
    runs = [r for r in (_run_market(store, asset, params, mk) for mk in view.markets) if r]
    if not runs:
        return view
    # The price line comes from the market with the most recent candle (live markets win ties).
    primary = max(runs, key=lambda r: (int(r["candles"]["time_ms"][-1]), not r["market"].is_sample))
    pc = primary["candles"]
    last_ms = max(int(r["candles"]["time_ms"][-1]) for r in runs)
    first_ms = min(int(r["candles"]["time_ms"][0]) for r in runs)
    candle_ms = max(r["candle_ms"] for r in runs)
    view.price = float(pc["close"][-1])
    view.price_time_ms = int(pc["time_ms"][-1])
    view.first_ms = first_ms

    for r in runs:
        mk, c = r["market"], r["candles"]
        view.freshness.append({
            "market": mk.title, "key": mk.key, "first_ms": int(c["time_ms"][0]), "last_ms": int(c["time_ms"][-1]),
            "candles": int(c["time_ms"].size), "candle_s": r["candle_ms"] // 1000,
            "oi_first_ms": r["oi_first_ms"], "oi_last_ms": r["oi_last_ms"],
            **_current([r], last_ms + candle_ms),
        })
        if mk.is_sample:
            view.sample = {
                "first_ms": int(c["time_ms"][0]), "last_ms": int(c["time_ms"][-1]),
                "jpy_per_usd": JPY_PER_USD, "oi_first_ms": r["oi_first_ms"], "oi_last_ms": r["oi_last_ms"],
            }

    clusters_by_tf: dict[str, list[levels.Cluster]] = {}
    for tf, partial in _windows(asset, first_ms, last_ms, candle_ms):
        t0 = first_ms if partial else max(first_ms, last_ms - registry.TIMEFRAMES_MS[tf] + candle_ms)
        ends = model.time_columns(t0, last_ms, MAX_COLS, candle_ms)
        lows, highs = [], []
        for r in runs:
            c = r["candles"]
            w = (c["time_ms"] >= t0) & (c["time_ms"] <= last_ms)
            if w.any():
                lows.append(np.nanmin(c["low"][w]))
                highs.append(np.nanmax(c["high"][w]))
        pad = PRICE_PAD.get(tf, 0.1)
        lo, hi = min(lows) * (1 - pad), max(highs) * (1 + pad)
        edges = np.linspace(lo, hi, asset.price_bins + 1)
        grids = [r["result"].grid(ends, edges) for r in runs]
        grid = sum(grids)
        found = levels.find_clusters(grid[:, -1, :].sum(axis=0), edges, view.price, top=TOP_CLUSTERS)
        clusters_by_tf[tf] = found
        label = f"{tf} (partial: {_hours(last_ms + candle_ms - t0)})" if partial else tf
        step = int(ends[1] - ends[0]) if ends.size > 1 else candle_ms
        ctx = [_context(r, ends) for r in runs]
        agg = _aggregate_context(ctx, next(i for i, r in enumerate(runs) if r is primary))
        n_oi = int(sum(np.isfinite(x["oi"]).any() for x in ctx))
        oi_title = "Open interest (USD)" if n_oi < 2 else f"Open interest, {n_oi} markets (USD)"
        maps = [MapView("all", "All markets (USD)" if len(runs) > 1 else runs[0]["market"].title,
                        grid.sum(axis=0), agg["close"], _panels(agg["close"], agg["oi"], agg["funding"], step, oi_title))]
        if len(runs) > 1:
            maps += [MapView(r["market"].key, r["market"].title, g.sum(axis=0).astype(np.float32), x["close"],
                             _panels(x["close"], x["oi"], x["funding"], step, "Open interest (USD)"))
                     for r, g, x in zip(runs, grids, ctx)]
        view.timeframes.append(TimeframeView(
            name=tf, label=label, partial=partial, t0_ms=t0, t1_ms=int(ends[-1]), col_end_ms=ends,
            price_edges=edges, grid=grid, clusters=found, maps=maps,
        ))
    for k, v in _current(runs, last_ms + candle_ms).items():
        setattr(view, k, v)
    scored = levels.confluence(clusters_by_tf)
    for tv in view.timeframes:
        tv.clusters = scored[tv.name]

    books = []
    for r in runs:
        b = r["result"].book()
        b["market"] = np.array([r["market"].key] * b["price"].size, dtype=object)
        books.append(b)
    view.book = {k: np.concatenate([b[k] for b in books]) for k in books[0]}
    return view


def _liq_range(book: dict, price: float) -> tuple[float, float]:
    p, v = book.get("price", np.empty(0)), book.get("notional_usd", np.empty(0))
    ok = np.isfinite(p) & (v > 0) & (p > 0)
    lo, hi = price * (1 - 0.1), price * (1 + 0.1)
    if ok.any():
        order = np.argsort(p[ok])
        cw = np.cumsum(v[ok][order]) / v[ok].sum()
        ps = p[ok][order]
        lo = min(lo, float(ps[np.searchsorted(cw, 0.005)]) * 0.98)
        hi = max(hi, float(ps[min(np.searchsorted(cw, 0.995), ps.size - 1)]) * 1.02)
    return max(lo, price * (1 - LIQ_MAP_MAX_PCT)), min(hi, price * (1 + LIQ_MAP_MAX_PCT))


# -- pages ------------------------------------------------------------------------
def _env():
    import jinja2
    from markupsafe import Markup, escape

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(paths.TEMPLATES)),
        autoescape=True,  # every value is HTML-escaped, Markdown or not
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )

    def md(value) -> Markup:
        # HTML-escape, then neutralise Markdown punctuation so a name cannot format the page.
        s = str(escape(value))
        for ch in "\\`*_[]|#":
            s = s.replace(ch, "\\" + ch)
        return Markup(s)

    def usd(x, price=None) -> str:
        if x is None or not math.isfinite(x):
            return "–"
        ref = abs(price if price is not None else x)
        return f"${x:,.0f}" if ref >= 1000 else f"${x:,.2f}" if ref >= 10 else f"${x:,.4f}"

    def money(x) -> str:
        if x is None or not math.isfinite(x):
            return "–"
        for div, suf in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
            if abs(x) >= div:
                return f"${x / div:,.2f}{suf}"
        return f"${x:,.0f}"

    def pct(x) -> str:
        return "–" if x is None or not math.isfinite(x) else f"{x:+.2f} %"

    def pct_ratio(x) -> str:  # a ratio (0.012) as a signed percentage
        return "–" if x is None or not math.isfinite(x) else f"{x * 100:+.1f} %"

    def rate(x) -> str:  # funding per interval: small numbers, three decimals of a percent
        return "–" if x is None or not math.isfinite(x) else f"{x * 100:+.4f} %"

    def when(ms) -> str:
        return "–" if ms is None else charts.fmt_time(ms)

    def ts(value) -> str:
        if value is None:
            return "–"
        if isinstance(value, dt.datetime):
            return value.strftime("%Y-%m-%d %H:%M UTC")
        return str(value)

    env.tests["finite"] = lambda x: x is not None and math.isfinite(x)
    env.filters.update(md=md, usd=usd, money=money, pct=pct, pct_ratio=pct_ratio, rate=rate, when=when, ts=ts)
    return env


def _methodology_context(reg: registry.Registry) -> dict:
    import dataclasses

    defaults = {f.name: f.default for f in dataclasses.fields(model.ModelParams) if f.default is not dataclasses.MISSING}
    rows = []
    for a in reg.assets:
        s = reg.settings_for(a)
        p = model.ModelParams.from_asset(a, s)
        mmr, cum = p.bracket
        tiers, c = [], 0.0
        for i, t in enumerate(a.mmr_tiers):
            if i:
                c += t.from_usd * (t.mmr - a.mmr_tiers[i - 1].mmr)
            tiers.append({"from_usd": t.from_usd, "mmr": t.mmr, "cum": c})
        f = p.price_factors()
        lev = [{"leverage": L, "weight": w, "long_pct": (f[0, i] - 1) * 100, "short_pct": (f[1, i] - 1) * 100}
               for i, (L, w) in enumerate(zip(p.leverage, p.weights))]
        rows.append({"asset": a, "settings": s, "params": p, "mmr": mmr, "cum": cum, "tiers": tiers, "leverage": lev})
    # Registry settings win; fields the registry does not (yet) carry show the model's default.
    current = {k: getattr(reg.model, k, v) for k, v in defaults.items()}
    return {
        "assets": rows, "defaults": defaults, "current": current, "registry_defaults": reg.model, "pads": PRICE_PAD,
        "vmax_pct": charts.VMAX_PERCENTILE, "hot_quantile": levels.HOT_QUANTILE, "top": TOP_CLUSTERS,
        "jpy_per_usd": JPY_PER_USD, "max_cols": MAX_COLS, "timeframes": registry.TIMEFRAMES_MS,
        "liq_bins": LIQ_MAP_BINS, "liq_max_pct": LIQ_MAP_MAX_PCT * 100,
        "oi_max_age_h": OI_MAX_AGE_MS // 3_600_000, "funding_max_intervals": FUNDING_MAX_INTERVALS,
    }


def _prepare_docs(docs: Path) -> None:
    if docs.exists():
        if not (docs / DOCS_MARKER).exists() and any(docs.iterdir()):
            raise RuntimeError(f"{docs} is not empty and was not generated by liqmap; refusing to delete it")
        shutil.rmtree(docs)
    docs.mkdir(parents=True)
    (docs / DOCS_MARKER).write_text("generated by liqmap build; deleted on every build\n")
    shutil.copytree(paths.SITE_STATIC, docs / "static")


def _write_json(path: Path, spec: dict) -> None:
    path.write_text(json.dumps(spec, separators=(",", ":"), allow_nan=False), encoding="utf-8")


def _render_asset_charts(view: AssetView, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    name = view.asset.name
    for tv in view.timeframes:
        for mv in tv.maps:
            ok = np.isfinite(mv.price_close)
            whose = "" if mv.key == "all" else f" ({mv.label})"
            spec = charts.heatmap_spec(
                mv.grid, tv.col_end_ms, tv.price_edges, tv.col_end_ms[ok], mv.price_close[ok],
                title=f"{name}{whose}: estimated liquidation levels, {tv.label}", panels=mv.panels,
            )
            # The aggregate keeps the plain name, so links to heatmap-<window>.json stay valid.
            mv.spec_file = f"heatmap-{tv.slug}.json" if mv.key == "all" else f"heatmap-{tv.slug}-{paths.safe_name(mv.key)}.json"
            _write_json(folder / mv.spec_file, spec)
            mv.grid = None  # the spec holds what the page needs; per-market grids add up across assets
    lo, hi = _liq_range(view.book, view.price)
    spec = charts.liquidation_map_spec(
        view.book, view.price, lo, hi, bins=LIQ_MAP_BINS, title=f"{name}: liquidation map (current level book)"
    )
    view.liq_map_file = "liquidation-map.json"
    _write_json(folder / view.liq_map_file, spec)


def binned_book(book: dict, price: float, width: float = BOOK_BIN, span: float = BOOK_SPAN) -> dict[str, np.ndarray]:
    """The level book summed into price bins of ``width`` x price (anchored at the price) by side
    and leverage, within +-``span`` of the price. A long history holds hundreds of thousands of
    levels (20 MB of JSON per asset and snapshot at 90 days); the bins keep what a reader can use."""
    p = np.asarray(book.get("price", []), float)
    v = np.asarray(book.get("notional_usd", []), float)
    side = np.asarray(book.get("side", []), np.int8)
    lev = np.asarray(book.get("leverage", []), float)
    step = price * width
    keep = np.isfinite(p) & np.isfinite(v) & (v > 0) & (np.abs(p / price - 1) <= span)
    k = np.floor((p[keep] - price) / step).astype(np.int64)
    keys = np.stack([k, side[keep].astype(np.int64), np.round(lev[keep] * 100).astype(np.int64)], axis=1)
    uniq, inv, count = np.unique(keys, axis=0, return_inverse=True, return_counts=True)
    total = np.bincount(inv.ravel(), weights=v[keep], minlength=len(uniq))
    return {
        "price_low": price + uniq[:, 0] * step, "price_high": price + (uniq[:, 0] + 1) * step,
        "side": np.where(uniq[:, 1] > 0, "long", "short"), "leverage": uniq[:, 2] / 100.0,
        "notional_usd": total, "levels": count,
    }


def _grid_table(tv: TimeframeView, max_cols: int = SNAPSHOT_GRID_COLS) -> dict[str, np.ndarray]:
    """Non-empty cells of a window's aggregate grid, one row per cell and side, for the snapshot.

    Every run snapshots every window, so the grid is kept compact: at most ``max_cols``
    time columns (each the book at its column end, so every k-th column, not an average)
    and notional to 3 significant digits (the colour scale has 256 steps). Measured on
    the sample's 3-day window: 1.5 MB of Parquet at full precision, 0.3 MB rounded.
    """
    m = tv.col_end_ms.size
    keep = np.unique(np.ceil(np.linspace(0, m, min(m, max_cols) + 1)[1:]).astype(np.int64) - 1)
    g = tv.grid[:, keep, :]
    side, col, b = np.nonzero(g > 0)
    v = g[side, col, b]
    scale = 10.0 ** (np.floor(np.log10(v)) - 2)
    return {
        "time_ms": tv.col_end_ms[keep][col], "price_low": tv.price_edges[b], "price_high": tv.price_edges[b + 1],
        "side": np.where(side == 0, "long", "short"), "notional_usd": (np.round(v / scale) * scale).astype(np.float32),
    }


def _snapshot_tables(view: AssetView) -> dict:
    """Tables the snapshot module persists: key levels per window, the binned level book, the
    windows, and each window's grid (``grid_<window>``, Parquet only)."""
    import pyarrow as pa

    lv = [dict(timeframe=tv.name, partial=tv.partial, **{k: getattr(c, k) for k in (
        "side", "price_low", "price_high", "notional_usd", "distance_pct", "rank", "confluence")})
        for tv in view.timeframes for c in tv.clusters]
    windows = [{"timeframe": tv.name, "partial": tv.partial, "t0_ms": tv.t0_ms, "t1_ms": tv.t1_ms,
                "columns": int(tv.col_end_ms.size), "price_low": float(tv.price_edges[0]),
                "price_high": float(tv.price_edges[-1]), "bins": int(tv.price_edges.size - 1)}
               for tv in view.timeframes]
    tables = {"levels": pa.Table.from_pylist(lv), "book": pa.table(binned_book(view.book, view.price)),
              "windows": pa.Table.from_pylist(windows)}
    for tv in view.timeframes:
        tables[f"grid_{tv.name}"] = pa.table(_grid_table(tv))
    return tables


def _mkdocs(docs: Path, site: Path, strict: bool, warnings: list[str], nav: list) -> None:
    # A generated config inherits mkdocs.yml and adds what only the build knows: the
    # docs dir (tests build elsewhere) and the nav (assets in registry order, archive).
    import yaml

    cfg = docs.parent / f"{docs.name}.mkdocs.yml"
    cfg.write_text(yaml.safe_dump({
        "INHERIT": str(paths.MKDOCS_YML), "docs_dir": str(docs.resolve()), "site_dir": str(site.resolve()),
        "theme": {"name": "material", "custom_dir": str(paths.SITE_OVERRIDES)}, "nav": nav,
    }, sort_keys=False, allow_unicode=True))
    cmd = [sys.executable, "-m", "mkdocs", "build", "--clean", "-q", "-f", str(cfg), "-d", str(site)]
    if strict:
        cmd.insert(4, "--strict")
    # Material prints a banner about MkDocs 2.0 on every build; it is not about this site.
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=paths.ROOT, env=env)
    for line in proc.stderr.splitlines():
        if line.strip() and ("WARNING" in line or "ERROR" in line):
            warnings.append(f"mkdocs: {line.strip()}")
    if proc.returncode != 0:
        raise RuntimeError(f"mkdocs build failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")


# -- entry point ----------------------------------------------------------------------
def parse_shard(text: str) -> tuple[int, int]:
    """``"I/N"`` -> (I, N) with 1 <= I <= N."""
    try:
        i, n = (int(x) for x in text.split("/"))
    except ValueError:
        raise ValueError(f"--shard {text!r}: expected I/N, e.g. 1/3") from None
    if not 1 <= i <= n:
        raise ValueError(f"--shard {text!r}: need 1 <= I <= N")
    return i, n


@dataclass
class _MergedView:
    """What the home page needs of an asset built by another shard (read from its view.json)."""

    asset: registry.Asset
    has_data: bool
    price: float
    price_time_ms: int
    sample: dict | None
    reference: SimpleNamespace | None
    funding_8h: float = math.nan
    oi_usd: float = math.nan
    oi_change_24h: float = math.nan


def _view_summary(v: AssetView, accuracy: dict | None) -> dict:
    ref = v.reference
    return {
        "id": v.asset.id, "has_data": v.has_data, "price": v.price if math.isfinite(v.price) else None,
        "price_time_ms": v.price_time_ms,
        "sample": v.sample, "clusters": [c.__dict__ for c in ref.clusters] if ref else [], "accuracy": accuracy,
        **{k: _finite_or_none(getattr(v, k)) for k in CURRENT_FIELDS},
    }


CURRENT_FIELDS = ("funding_8h", "oi_usd", "oi_change_24h")


def _finite_or_none(x: float) -> float | None:
    return x if math.isfinite(x) else None


def _merged_view(reg: registry.Registry, d: dict) -> _MergedView:
    clusters = [levels.Cluster(**c) for c in d["clusters"]]
    price = math.nan if d["price"] is None else d["price"]
    current = {k: math.nan if d.get(k) is None else d[k] for k in CURRENT_FIELDS}
    return _MergedView(reg.get(d["id"]), d["has_data"], price, d["price_time_ms"], d["sample"],
                       SimpleNamespace(clusters=clusters) if d["has_data"] else None, **current)


def build(
    data_dir=None,
    *,
    assets: list[str] | None = None,
    out: Path | str | None = None,
    strict: bool = True,
    docs: Path | str | None = None,
    shard: tuple[int, int] | None = None,
    merge: list[Path] | None = None,
) -> BuildReport:
    """Build the site. ``assets`` limits the asset pages (ids); ``out`` is the site dir
    (default ``paths.SITE_OUT``), ``docs`` the generated Markdown dir (default
    ``paths.DOCS_OUT``). ``strict``: MkDocs ``--strict`` and asset failures raise
    instead of becoming warnings.

    Scaling out: ``shard=(i, n)`` builds only every n-th registry asset (pages,
    charts, snapshots, backtest) into ``docs`` and stops before MkDocs; ``merge``
    (the shards' docs dirs) assembles their asset pages with the site-wide pages
    and runs MkDocs once.
    """
    if shard and merge:
        raise ValueError("shard and merge are separate steps")
    t_all = time.perf_counter()
    # Resolved here: MkDocs runs from the checkout and reads relative paths against its config file.
    site = (Path(out) if out is not None else paths.SITE_OUT).resolve()
    docs_dir = (Path(docs) if docs is not None else paths.DOCS_OUT).resolve()
    report = BuildReport(docs_dir=docs_dir, site_dir=site)
    reg = registry.load()
    chosen = reg.assets if not assets else [reg.get(a) for a in assets]
    if shard:
        chosen = [a for k, a in enumerate(chosen) if k % shard[1] == shard[0] - 1]
    dp = paths.data_paths(data_dir).ensure()
    accuracy_results: dict[str, dict] = {}

    if merge:
        views = _collect_shards(reg, chosen, [Path(m) for m in merge], docs_dir, report)
        accuracy_results = {v.asset.id: a for v, a in views if a}
        views = [v for v, _ in views]
    else:
        _compute(reg, chosen, dp, strict, report, accuracy_results)
        tick = time.perf_counter()
        _prepare_docs(docs_dir)
        for v in report.assets.values():
            if v.has_data:
                _render_asset_charts(v, docs_dir / "heatmaps" / v.asset.id)
        report.timings["charts"] = time.perf_counter() - tick
        _snapshots(chosen, reg, dp, report)
        views = list(report.assets.values())

    tick = time.perf_counter()
    env = _env()
    now = dt.datetime.now(dt.UTC)
    common = {"built_at": now.strftime("%Y-%m-%d %H:%M UTC"), "views": views}
    from pipeline.commands.backtest import section_contexts, write_accuracy_pages

    pages = {}
    if not merge:
        accuracy = section_contexts(list(accuracy_results.values()))
        asset_tpl = env.get_template("asset.md.j2")
        for v in report.assets.values():
            pages[docs_dir / "heatmaps" / f"{v.asset.id}.md"] = asset_tpl.render(
                **common, v=v, now_ms=now.timestamp() * 1000, accuracy=accuracy)
            summary = _view_summary(v, accuracy_results.get(v.asset.id))
            (docs_dir / "heatmaps").mkdir(parents=True, exist_ok=True)
            _write_json(docs_dir / "heatmaps" / f"{v.asset.id}.view.json", summary)
    if shard:
        _write_pages(pages, report)
        report.timings["pages"] = time.perf_counter() - tick
        report.timings["total"] = time.perf_counter() - t_all
        return report
    report.pages += write_accuracy_pages(env, list(accuracy_results.values()), docs_dir)
    pages[docs_dir / "index.md"] = env.get_template("home.md.j2").render(**common)
    pages[docs_dir / "methodology.md"] = env.get_template("methodology.md.j2").render(**common, **_methodology_context(reg))
    pages[docs_dir / "faq.md"] = env.get_template("faq.md.j2").render(**common, jpy_per_usd=JPY_PER_USD)
    _write_pages(pages, report)
    archive_nav = list(snapshot.render_archive(dp.snapshots, docs_dir, reg) or [])
    report.timings["pages"] = time.perf_counter() - tick

    tick = time.perf_counter()
    nav = [
        {"Home": "index.md"},
        {"Heatmaps": [{v.asset.name: f"heatmaps/{v.asset.id}.md"} for v in views]},
        {"Accuracy": "accuracy.md"},
        {"Methodology": "methodology.md"},
        {"FAQ": "faq.md"},
        *archive_nav,
    ]
    _mkdocs(docs_dir, site, strict, report.warnings, nav)
    report.timings["mkdocs"] = time.perf_counter() - tick
    report.timings["total"] = time.perf_counter() - t_all
    return report


def _write_pages(pages: dict[Path, str], report: BuildReport) -> None:
    for path, text in pages.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        report.pages.append(path)


def _compute(reg, chosen, dp, strict, report, accuracy_results) -> None:
    """Model, views and backtest for the chosen assets (the store is open only here)."""
    from pipeline.commands.backtest import run_for_asset

    tick = time.perf_counter()
    store = open_store(dp.root)
    try:
        if _load_sample(store):
            report.warnings.append("store was empty: built from the bundled sample (sample/PROVENANCE.md)")
        extents = store.query("data_extent").to_pylist()
        status_rows = store.query("source_status").to_pylist()
        stored = {(r["exchange"], r["instrument"]) for r in extents if r["dataset"] == "candles"}
        report.timings["load"] = time.perf_counter() - tick

        tick = time.perf_counter()
        for a in chosen:
            paths.safe_name(a.id)
            try:
                view = _view(store, reg, a, stored, status_rows)
            except Exception as exc:
                if strict:
                    raise
                report.warnings.append(f"{a.id}: model failed: {exc!r}")
                view = AssetView(asset=a, error=str(exc))
            report.assets[a.id] = view
        report.timings["model"] = time.perf_counter() - tick

        tick = time.perf_counter()
        for a in chosen:
            if not report.assets[a.id].has_data:
                continue
            try:
                accuracy_results[a.id] = run_for_asset(store, reg, a, variants=True)
            except Exception as exc:
                if strict:
                    raise
                report.warnings.append(f"{a.id}: backtest failed: {exc!r}")
        report.timings["backtest"] = time.perf_counter() - tick
    finally:
        store.close()


def _snapshots(chosen, reg, dp, report) -> None:
    """Each asset's view becomes a dated immutable snapshot, gated against the previous one.

    A candidate that fails the gate is held back (not written) and reported; so is
    an asset of this build (all of them, a shard's or the ``--asset`` ones) that was
    published before and now has no data.
    """
    tick = time.perf_counter()
    built = []
    for v in report.assets.values():
        if not v.has_data:
            continue
        built.append(v.asset.id)
        taken = dt.datetime.fromtimestamp(v.price_time_ms / 1000, dt.UTC)
        meta = {
            "asset": v.asset.id, "price": v.price, "markets": [m.key for m in v.markets],
            "sample": v.sample is not None, "data_from": v.first_ms, "data_to": v.price_time_ms,
            "model": dict(model.ModelParams.from_asset(v.asset, reg.settings_for(v.asset)).__dict__),
            "timeframes": [tv.name for tv in v.timeframes],
        }
        try:
            report.held += snapshot.publish(dp.snapshots, v.asset.id, taken, _snapshot_tables(v), meta).problems
        except snapshot.SnapshotExistsError as exc:
            # Same data time, different output (the model changed): keep the first, say so.
            report.warnings.append(f"{v.asset.id}: snapshot kept as first written: {exc}")
    report.held += snapshot.gate_missing(dp.snapshots, built, [a.id for a in chosen])
    report.timings["snapshots"] = time.perf_counter() - tick


def _collect_shards(reg, chosen, shard_docs: list[Path], docs_dir: Path, report) -> list[tuple[_MergedView, dict | None]]:
    """Copy the shards' asset pages into a fresh docs dir; every chosen asset must come from exactly one shard."""
    _prepare_docs(docs_dir)
    found: dict[str, Path] = {}
    for sd in shard_docs:
        for f in sorted((sd / "heatmaps").glob("*.view.json")):
            asset_id = f.name.removesuffix(".view.json")
            if asset_id in found:
                raise RuntimeError(f"asset {asset_id!r} built by two shards: {found[asset_id]} and {sd}")
            found[asset_id] = sd
    missing = [a.id for a in chosen if a.id not in found]
    if missing:
        raise RuntimeError(f"merge: no shard built {', '.join(missing)}")
    out = []
    for a in chosen:
        src = found[paths.safe_name(a.id)] / "heatmaps"
        dst = docs_dir / "heatmaps"
        dst.mkdir(exist_ok=True)
        for suffix in (".md", ".view.json"):
            shutil.copy2(src / f"{a.id}{suffix}", dst / f"{a.id}{suffix}")
        if (src / a.id).is_dir():
            shutil.copytree(src / a.id, dst / a.id)
        d = json.loads((src / f"{a.id}.view.json").read_text(encoding="utf-8"))
        out.append((_merged_view(reg, d), d.get("accuracy")))
    return out


def _load_sample(store) -> bool:
    from pipeline.store.sample import load_if_empty

    return load_if_empty(store)
