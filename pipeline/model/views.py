"""What one asset page shows, computed from its markets' series (pure: arrays in, dataclasses out).

:func:`asset_view` runs the model once per market over the full history,
aggregates the markets' level books on one USD price axis per timeframe window
(:mod:`pipeline.model.windows`), finds the key levels and their confluence,
and samples price, open interest, funding and RSI at the heatmap's column ends.
:func:`binned_book` and :func:`grid_table` shape what a snapshot keeps.
Rendering (chart specs, pages) and reading the store live elsewhere.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from pipeline import registry
from pipeline.markets import JPY_PER_USD, Market, MarketSeries
from pipeline.model import book, indicators, levels, windows
from pipeline.model.params import ModelParams

TOP_CLUSTERS = 5
# Older observations than this count as gaps in the context panels, not as the current value
# (Hyperliquid OI is one observation per collect run, hence hours rather than minutes).
OI_MAX_AGE_MS = 6 * 3_600_000
FUNDING_MAX_INTERVALS = 2
DAY_MS = 86_400_000
BOOK_BIN = 0.001  # snapshot book: 0.1 % price bins ...
BOOK_SPAN = 0.5  # ... within +-50 % of the price (farther levels are 2x-leverage dust)
SNAPSHOT_GRID_COLS = 240  # time columns per window kept in a snapshot's grid
CURRENT_FIELDS = ("funding_8h", "oi_usd", "oi_change_24h")
# The leverage filter of the aggregate map: (key, label, lowest leverage, highest leverage), inclusive.
LEVERAGE_BANDS = (("low", "Low (up to 10x)", 0.0, 10.0), ("mid", "Mid (over 10x, under 50x)", 10.000001, 49.999999),
                  ("high", "High (50x and more)", 50.0, math.inf))
REALIZED_MAX = 1500  # realized liquidations drawn per map: the largest in the window


@dataclass
class MarketRun:
    """One market's model run and the context series sampled from it."""

    series: MarketSeries
    result: book.ModelResult
    funding_8h: np.ndarray  # funding rescaled to an 8 h basis, at the funding times
    funding_max_age_ms: int

    @property
    def market(self) -> Market:
        return self.series.market

    @property
    def candles(self) -> dict[str, np.ndarray]:
        return self.series.candles

    @property
    def oi(self) -> dict[str, np.ndarray]:
        return self.series.oi



@dataclass
class MapView:
    """One heatmap of a window: the aggregate over the asset's markets, or one market."""

    key: str  # "all" or a market key (used in file names)
    label: str
    grid: np.ndarray | None  # (m, k) both sides, USD; dropped once the spec is written
    price_close: np.ndarray  # at the column ends (NaN where there is no candle yet)
    oi: np.ndarray  # open interest (USD) at the column ends
    funding: np.ndarray  # funding (8 h basis) at the column ends
    oi_title: str
    step_ms: int  # column width
    spec_file: str = ""
    ohlc: np.ndarray | None = None  # (m, 4) open, high, low, close per column (NaN where no candle)
    bands: dict[str, np.ndarray] = field(default_factory=dict)  # leverage band key -> (m, k) grid
    realized: dict[str, np.ndarray] | None = None  # time_ms, side, price, notional_usd inside the window
    oi_note: str = ""  # how the open-interest row was summed


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


def hours_text(ms: int) -> str:
    h = ms / 3_600_000
    return f"{h:.0f} h" if h < 72 else f"{h / 24:.1f} days"


def run_market(series: MarketSeries, params: ModelParams) -> MarketRun:
    c = series.candles
    t = c["time_ms"].astype(np.int64)
    res = book.run(
        t, c["open"], c["high"], c["low"], c["close"], book.market_oi(c, series.oi), params,
        volume=c["volume"], taker_buy_volume=c["taker_buy_volume"],
    )
    f = series.funding
    return MarketRun(
        series=series, result=res, funding_8h=indicators.funding_per_8h(f["time_ms"], f["rate"]),
        # A venue's rate older than a couple of its own intervals is a gap, not the current rate.
        funding_max_age_ms=FUNDING_MAX_INTERVALS * (indicators.funding_interval_ms(f["time_ms"])
                                                    or indicators.FUNDING_BASIS_MS),
    )


def _context(run: MarketRun, ends: np.ndarray) -> dict[str, np.ndarray]:
    """One market's price, open interest and funding at the column ends."""
    c, o = run.candles, run.oi
    return {
        "close": indicators.at_column_ends(c["time_ms"], c["close"], ends),
        "ohlc": column_ohlc(c, ends),
        "oi": indicators.at_column_ends(o["time_ms"], o["oi_usd"], ends, OI_MAX_AGE_MS),
        "funding": indicators.at_column_ends(run.series.funding["time_ms"], run.funding_8h, ends,
                                             run.funding_max_age_ms),
    }


def steady_oi(oi: np.ndarray) -> np.ndarray:
    """Which markets (rows) the OI row may sum without a fake jump: those with a value at every
    column where any market has one. A market that joins (or drops out) mid-window would show as
    a surge (or a crash) of open interest that never happened. If none qualifies, the one market
    with the most columns stands alone."""
    ok = np.isfinite(oi)
    anywhere = ok.any(axis=0)
    full = ok[:, anywhere].all(axis=1) if anywhere.any() else np.zeros(oi.shape[0], bool)
    if not full.any() and ok.any():
        full[int(ok.sum(axis=1).argmax())] = True
    return full


def _aggregate_context(ctx: list[dict], primary: int) -> dict[str, np.ndarray]:
    """Markets' context rows -> the asset's: OI summed over :func:`steady_oi` markets, funding
    weighted by OI (equal weights where no OI is known), the price of the primary market."""
    oi = np.stack([x["oi"] for x in ctx])
    fund = np.stack([x["funding"] for x in ctx])
    steady = steady_oi(oi)
    return {"close": ctx[primary]["close"], "ohlc": ctx[primary]["ohlc"], "oi": indicators.total(oi[steady]),
            "funding": indicators.funding_across(fund, oi), "oi_markets": steady}


def column_ohlc(candles: dict[str, np.ndarray], ends: np.ndarray) -> np.ndarray:
    """Candles merged to the map's columns: column j holds the candles opened in
    [ends[j] - step, ends[j]) (the book of column j is after the last of them). (m, 4), NaN if none."""
    m = ends.size
    out = np.full((m, 4), np.nan)
    t = candles["time_ms"].astype(np.int64)
    step = int(ends[1] - ends[0]) if m > 1 else 0
    col = np.searchsorted(ends, t, side="right")
    ok = (col < m) & (t >= ends[0] - step) & np.isfinite(candles["close"])
    if not ok.any():
        return out
    col, o, h, lo, c = (col[ok], candles["open"][ok], candles["high"][ok], candles["low"][ok], candles["close"][ok])
    starts = np.flatnonzero(np.r_[True, col[1:] != col[:-1]])  # candles are oldest first
    cols = col[starts]
    out[cols, 0] = o[starts]
    out[cols, 1] = np.maximum.reduceat(h, starts)
    out[cols, 2] = np.minimum.reduceat(lo, starts)
    out[cols, 3] = c[np.r_[starts[1:], col.size] - 1]
    return out


def band_grid(result: book.ModelResult, ends: np.ndarray, edges: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """The (m, k) grid (both sides) of the levels whose leverage is in [lo, hi]: the same model run,
    seen through a leverage filter."""
    import copy

    keep = (result.level_leverage >= lo) & (result.level_leverage <= hi)
    # Only levels alive at some column can show (as ModelResult.grid): the rest need not be copied.
    p = np.searchsorted(result.time_ms, np.asarray(ends, np.int64), side="left") - 1
    if p.size:
        keep &= (result.level_death > p.min()) & (result.level_birth <= p.max())
    part = copy.copy(result)
    for name in ("level_birth", "level_death", "level_consumed", "level_side", "level_tier", "level_leverage", "level_price",
                 "level_notional0"):
        setattr(part, name, getattr(result, name)[keep])
    return part.grid(ends, edges).sum(axis=0)


def realized_in(runs: list[MarketRun], t0: int, t1: int) -> dict[str, np.ndarray] | None:
    """Stored realized liquidations of ``runs`` inside [t0, t1], the ``REALIZED_MAX`` largest."""
    parts = [r.series.liquidations for r in runs if r.series.liquidations and r.series.liquidations["time_ms"].size]
    if not parts:
        return None
    cat = {k: np.concatenate([np.asarray(p[k]) for p in parts]) for k in ("time_ms", "side", "price", "notional_usd")}
    v = np.asarray(cat["notional_usd"], float)
    t = np.asarray(cat["time_ms"], np.int64)
    ok = (t >= t0) & (t <= t1) & np.isfinite(v) & (v > 0) & np.isfinite(np.asarray(cat["price"], float))
    idx = np.flatnonzero(ok)
    if not idx.size:
        return None
    idx = idx[np.argsort(-v[idx], kind="stable")[:REALIZED_MAX]]
    return {k: np.asarray(a)[idx] for k, a in cat.items()}


def _num(x) -> float:
    return math.nan if x is None else float(x)


def current(runs: list[MarketRun], fresh: list[dict], now_ms: int) -> dict[str, float]:
    """Home-page figures of ``runs``: OI now and its change over 24 h (over the markets with both
    values; both from the ``out_market_freshness`` mart), funding now (weighted by OI now)."""
    oi_now = np.array([_num(f.get("oi_usd_now")) for f in fresh])
    day_ago = np.array([_num(f.get("oi_usd_day_ago")) for f in fresh])
    both = np.isfinite(oi_now) & np.isfinite(day_ago)
    change = (oi_now[both].sum() / day_ago[both].sum() - 1.0
              if both.any() and day_ago[both].sum() > 0 else math.nan)
    fund = np.array([indicators.at_column_ends(r.series.funding["time_ms"], r.funding_8h, np.array([now_ms + 1]),
                                               r.funding_max_age_ms)[0] for r in runs])
    return {"oi_usd": float(indicators.total(oi_now[:, None])[0]), "oi_change_24h": float(change),
            "funding_8h": float(indicators.funding_across(fund[:, None], oi_now[:, None])[0])}


def asset_view(asset: registry.Asset, params: ModelParams, series: list[MarketSeries], status_rows: list[dict],
               freshness: dict[str, dict] | None = None) -> AssetView:
    """The asset's page content from its markets' stored series (``pipeline.store.series``), the
    source-status rows and each market's ``out_market_freshness`` row (keyed by market key; without
    them, as when a snapshot is regenerated, the freshness table and current figures stay empty)."""
    view = AssetView(asset=asset)
    view.sources = [r for r in status_rows if r["asset"] == asset.id]
    view.markets = [s.market for s in series]
    runs = [run_market(s, params) for s in series if not s.empty]
    if not runs:
        return view
    # The price line comes from the market with the most recent candle (live markets win ties).
    primary = max(runs, key=lambda r: (int(r.candles["time_ms"][-1]), not r.market.is_sample))
    pc = primary.candles
    last_ms = max(int(r.candles["time_ms"][-1]) for r in runs)
    first_ms = min(int(r.candles["time_ms"][0]) for r in runs)
    candle_ms = max(r.series.candle_ms for r in runs)
    view.price = float(pc["close"][-1])
    view.price_time_ms = int(pc["time_ms"][-1])
    view.first_ms = first_ms

    fresh = [(freshness or {}).get(r.market.key, {}) for r in runs]
    for r, f in zip(runs, fresh):
        mk, c = r.market, r.candles
        if freshness is not None:
            view.freshness.append({
                "market": mk.title, "key": mk.key, "first_ms": f["first_ms"], "last_ms": f["last_ms"],
                "candles": f["candles"], "candle_s": f["candle_s"], "oi_first_ms": f["oi_first_ms"],
                "oi_last_ms": f["oi_last_ms"], **current([r], [f], last_ms + candle_ms),
            })
        if mk.is_sample:
            view.sample = {
                "first_ms": int(c["time_ms"][0]), "last_ms": int(c["time_ms"][-1]),
                "jpy_per_usd": JPY_PER_USD, "oi_first_ms": f.get("oi_first_ms"), "oi_last_ms": f.get("oi_last_ms"),
            }

    clusters_by_tf: dict[str, list[levels.Cluster]] = {}
    tfs = {tf: registry.TIMEFRAMES_MS[tf] for tf in asset.timeframes}
    # The last candle covers [last_ms, last_ms + candle_ms).
    for tf, partial in windows.windows_for_span(tfs, last_ms + candle_ms - first_ms):
        t0 = first_ms if partial else max(first_ms, last_ms - tfs[tf] + candle_ms)
        ends = book.time_columns(t0, last_ms, windows.MAX_COLS, candle_ms)
        lows, highs = [], []
        for r in runs:
            c = r.candles
            w = (c["time_ms"] >= t0) & (c["time_ms"] <= last_ms)
            if w.any():
                lows.append(np.nanmin(c["low"][w]))
                highs.append(np.nanmax(c["high"][w]))
        edges = windows.price_edges(tf, lows, highs, asset.price_bins)
        grids = [r.result.grid(ends, edges) for r in runs]
        grid = sum(grids)
        found = levels.find_clusters(grid[:, -1, :].sum(axis=0), edges, view.price, top=TOP_CLUSTERS)
        clusters_by_tf[tf] = found
        label = f"{tf} (partial: {hours_text(last_ms + candle_ms - t0)})" if partial else tf
        step = int(ends[1] - ends[0]) if ends.size > 1 else candle_ms
        ctx = [_context(r, ends) for r in runs]
        agg = _aggregate_context(ctx, next(i for i, r in enumerate(runs) if r is primary))
        summed = [r.market.title for r, s in zip(runs, agg["oi_markets"]) if s]
        oi_title = "Open interest (USD)" if len(summed) < 2 else f"Open interest, {len(summed)} markets (USD)"
        oi_partial = [r.market.title for r, s, x in zip(runs, agg["oi_markets"], ctx)
                      if not s and np.isfinite(x["oi"]).any()]
        oi_note = ("sum of the markets with data across the whole window" if len(summed) > 1 else "") + (
            f"; left out (data for part of it only, would show as a jump): {', '.join(oi_partial)}" if oi_partial else "")
        oi_note = oi_note.lstrip("; ")
        bands = {}
        levs = np.concatenate([r.result.level_leverage for r in runs])
        for key, _label, lo, hi in LEVERAGE_BANDS:
            if ((levs >= lo) & (levs <= hi)).any():
                bands[key] = sum(band_grid(r, ends, edges, lo, hi) for r in (x.result for x in runs))
        maps = [MapView("all", "All markets (USD)" if len(runs) > 1 else runs[0].market.title,
                        grid.sum(axis=0), agg["close"], agg["oi"], agg["funding"], oi_title, step,
                        ohlc=agg["ohlc"], bands=bands if len(bands) > 1 else {},
                        realized=realized_in(runs, t0, int(ends[-1])), oi_note=oi_note)]
        if len(runs) > 1:
            maps += [MapView(r.market.key, r.market.title, g.sum(axis=0).astype(np.float32), x["close"],
                             x["oi"], x["funding"], "Open interest (USD)", step, ohlc=x["ohlc"],
                             realized=realized_in([r], t0, int(ends[-1])))
                     for r, g, x in zip(runs, grids, ctx)]
        view.timeframes.append(TimeframeView(
            name=tf, label=label, partial=partial, t0_ms=t0, t1_ms=int(ends[-1]), col_end_ms=ends,
            price_edges=edges, grid=grid, clusters=found, maps=maps,
        ))
    if freshness is not None:
        for k, v in current(runs, fresh, last_ms + candle_ms).items():
            setattr(view, k, v)
    scored = levels.confluence(clusters_by_tf)
    for tv in view.timeframes:
        tv.clusters = scored[tv.name]

    books = []
    for r in runs:
        b = r.result.book()
        b["market"] = np.array([r.market.key] * b["price"].size, dtype=object)
        books.append(b)
    view.book = {k: np.concatenate([b[k] for b in books]) for k in books[0]}
    return view


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


def grid_table(tv: TimeframeView, max_cols: int = SNAPSHOT_GRID_COLS) -> dict[str, np.ndarray]:
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


def liquidation_map_range(book: dict, price: float, max_pct: float) -> tuple[float, float]:
    """Price range of the liquidation map: 99 % of the book's notional, at least +-10 %, at most +-``max_pct``."""
    p, v = book.get("price", np.empty(0)), book.get("notional_usd", np.empty(0))
    ok = np.isfinite(p) & (v > 0) & (p > 0)
    lo, hi = price * (1 - 0.1), price * (1 + 0.1)
    if ok.any():
        order = np.argsort(p[ok])
        cw = np.cumsum(v[ok][order]) / v[ok].sum()
        ps = p[ok][order]
        lo = min(lo, float(ps[np.searchsorted(cw, 0.005)]) * 0.98)
        hi = max(hi, float(ps[min(np.searchsorted(cw, 0.995), ps.size - 1)]) * 1.02)
    return max(lo, price * (1 - max_pct)), min(hi, price * (1 + max_pct))
