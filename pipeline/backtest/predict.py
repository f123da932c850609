"""Prediction: the model's book at each evaluation point -> clusters, per point and per window (pure, batched).

No lookahead: bins come from a fixed geometric lattice (edges ``ratio**k`` for whole ``k``,
independent of the data), and each point uses only the lattice bins within +/- ``span_pct``
% of its own price; the book is the one after the last candle before the point. The cluster
search is :func:`pipeline.model.levels.find_clusters`'s rule applied to all points at once
(:func:`batch_clusters`, tested equal to it).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from pipeline.backtest.cases import (
    ABOVE,
    BELOW,
    HORIZONS_H,
    HOUR_MS,
    MIN_CASES,
    ClusterSet,
    candle_interval_ms,
    eval_times,
    price_paths,
)
from pipeline.model.levels import HOT_QUANTILE
from pipeline.model.windows import DEFAULT_PAD, PRICE_PAD, windows_for_span

FINE_RATIO = 1.0 + 5e-5  # the fine lattice that window histograms are rebinned from (0.005 % bins)


@dataclass(frozen=True)
class BacktestSettings:
    """Backtest settings (shown on the accuracy page)."""

    horizons_h: tuple[int, ...] = HORIZONS_H
    step_h: float = 1.0
    warmup_h: float = 6.0
    top_k: int = 3  # clusters scored per side and point
    price_bins: int = 400
    span_pct: float = 15.0  # the price window around each point that clusters are searched in
    min_cases: int = MIN_CASES
    bands_pct: tuple[float, ...] = (0.25, 0.5, 1.0)
    max_eval_points: int = 2000  # longer histories widen the step (whole hours) to bound the cost
    window_max_points: int = 360  # per-window clusters: thinned evenly beyond this
    placebo_runs: int = 3  # block-shuffled OI permutations
    placebo_block_h: float = 24.0  # OI increments are shuffled in blocks of this many hours

    def as_dict(self) -> dict:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def lattice_ratio(bins: int, span_pct: float) -> float:
    """Ratio between neighbouring lattice edges: ``bins`` bins across one point's +/- ``span_pct`` %."""
    return 1.0 + 2.0 * span_pct / 100.0 / bins


def lattice(lo: float, hi: float, ratio: float) -> tuple[np.ndarray, int]:
    """Edges ``ratio**k`` covering [lo, hi] and the first ``k``: a fixed lattice, whatever the data."""
    lr = math.log(ratio)
    k0 = math.floor(math.log(lo) / lr) - 1
    k1 = math.ceil(math.log(hi) / lr) + 1
    return np.exp(np.arange(k0, k1 + 1) * lr), k0


def batch_clusters(cols: np.ndarray, edges: np.ndarray, prices: np.ndarray, *, top: int = 5,
                   hot_quantile: float = HOT_QUANTILE, point: np.ndarray | None = None) -> ClusterSet:
    """:func:`pipeline.model.levels.find_clusters` on every row at once.

    ``cols`` (m, k): notional per bin; ``edges`` (m, k + 1) per row or (k + 1,) shared;
    ``prices`` (m,). ``point``: the evaluation-point index of each row (default 0..m-1).
    """
    cols = np.nan_to_num(np.asarray(cols, float), nan=0.0)
    m, k = cols.shape
    edges = np.broadcast_to(np.asarray(edges, float), (m, k + 1))
    prices = np.asarray(prices, float)
    point = np.arange(m) if point is None else np.asarray(point, np.int64)
    good = np.isfinite(prices) & (prices > 0)
    mids = 0.5 * (edges[:, :-1] + edges[:, 1:])
    out = []
    for side, mask in ((BELOW, mids < prices[:, None]), (ABOVE, mids >= prices[:, None])):
        mask = mask & good[:, None]
        vals = np.where(mask & (cols > 0), cols, np.nan)
        nz = np.isfinite(vals).sum(1)
        srt = np.sort(vals, axis=1)  # NaN last: the first nz values are the row's nonzero bins
        h = hot_quantile * np.maximum(nz - 1, 0)
        lo_i = np.floor(h).astype(np.int64)
        hi_i = np.minimum(lo_i + 1, np.maximum(nz - 1, 0))
        a = np.take_along_axis(srt, lo_i[:, None], 1)[:, 0]
        b = np.take_along_axis(srt, hi_i[:, None], 1)[:, 0]
        thr = a + (h - lo_i) * (b - a)
        hot = mask & (cols > 0) & (cols >= thr[:, None]) & (nz > 0)[:, None]
        d = np.diff(np.pad(hot.astype(np.int8), ((0, 0), (1, 1))), axis=1)
        rs, cs = np.nonzero(d == 1)
        _, ce = np.nonzero(d == -1)
        if not rs.size:
            continue
        flat = np.where(hot, cols, 0.0).reshape(-1)
        total = np.add.reduceat(flat, rs * k + cs)  # each run's sum, in find_clusters' order
        plo, phi = edges[rs, cs], edges[rs, ce]
        dist = (0.5 * (plo + phi) - prices[rs]) / prices[rs] * 100.0
        order = np.lexsort((np.abs(dist), -total, rs))
        rs_o = rs[order]
        first = np.r_[True, rs_o[1:] != rs_o[:-1]]
        start = np.maximum.accumulate(np.where(first, np.arange(rs_o.size), 0))
        rank = np.arange(rs_o.size) - start + 1
        keep = order[rank <= top]
        out.append(ClusterSet(point[rs[keep]], np.full(keep.size, side, np.int64), rank[rank <= top],
                              plo[keep], phi[keep], total[keep], np.zeros(keep.size)))
    if not out:
        return ClusterSet.empty()
    return ClusterSet(*(np.concatenate([getattr(c, f) for c in out]) for f in ClusterSet.__dataclass_fields__))


def predict_clusters(result: Any, eval_ms: np.ndarray, prices: np.ndarray, *, bins: int = 400,
                     span_pct: float = 15.0, top: int = 5, chunk: int = 256) -> ClusterSet:
    """Clusters at each evaluation point from a ``model.ModelResult``.

    Column ``j`` of ``result.grid`` at ``eval_ms[j]`` is the book after the last candle
    that opened before the point (the candle whose close is the reference price), binned
    on the fixed lattice and cut to the lattice bins within +/- ``span_pct`` % of the price.
    """
    ev = np.asarray(eval_ms, np.int64)
    prices = np.asarray(prices, float)
    ok = np.flatnonzero(np.isfinite(prices) & (prices > 0))
    if ok.size == 0:
        return ClusterSet.empty()
    ratio = lattice_ratio(bins, span_pct)
    p = prices[ok]
    edges, _ = lattice(p.min() * (1 - span_pct / 100), p.max() * (1 + span_pct / 100), ratio)
    # The window of each point on the lattice: the bins whose range meets +/- span_pct % of its price.
    i0 = np.maximum(np.searchsorted(edges, p * (1 - span_pct / 100.0), side="right") - 1, 0)
    i1 = np.minimum(np.searchsorted(edges, p * (1 + span_pct / 100.0), side="left"), edges.size - 1)
    width = int((i1 - i0).max())
    parts = []
    for s0 in range(0, ok.size, chunk):
        sl = slice(s0, s0 + chunk)
        g = result.grid(ev[ok[sl]], edges)
        col = g[0] + g[1]
        idx = i0[sl, None] + np.arange(width)[None, :]
        inside = idx < i1[sl, None]
        idx = np.minimum(idx, col.shape[1] - 1)
        win = np.where(inside, np.take_along_axis(col, idx, 1), 0.0)
        # Past a row's own window (rows differ by a bin at most) the edges repeat its top edge:
        # those bins are empty and above the price, so they never form a cluster.
        e = edges[np.minimum(i0[sl, None] + np.arange(width + 1)[None, :], i1[sl, None])]
        parts.append(batch_clusters(win, e, p[sl], top=top, point=ok[sl]))
    return ClusterSet(*(np.concatenate([getattr(c, f) for c in parts]) for f in ClusterSet.__dataclass_fields__))


def window_clusters(
    result: Any, candles: Mapping[str, np.ndarray], eval_ms: np.ndarray, prices: np.ndarray,
    timeframes_ms: Mapping[str, int], *, points: np.ndarray, bins: int = 400, top: int = 5, chunk: int = 16,
) -> dict[str, ClusterSet]:
    """Clusters of every timeframe window at ``points``, drawn as the site draws them.

    The site runs the model once and lets a window change only the price axis (linear
    bins over the window's padded low/high, :mod:`pipeline.model.windows`). Windows that
    fit entirely before the point are used, plus the first longer one as a partial window
    from the first candle (as the site does). The book is binned once per point on a fine
    lattice (0.005 % bins) and rebinned to each window's bins by its cumulative sum, a
    level's notional spread evenly over its fine bin. Returns {timeframe: ClusterSet}.
    """
    t = np.asarray(candles["time_ms"], np.int64)
    high, low = np.asarray(candles["high"], float), np.asarray(candles["low"], float)
    ev = np.asarray(eval_ms, np.int64)
    order = sorted(timeframes_ms, key=timeframes_ms.__getitem__)
    pts = np.asarray([j for j in points if np.isfinite(prices[j])], np.int64)
    out = {tf: ClusterSet.empty() for tf in order}
    if t.size == 0 or pts.size == 0:
        return out
    from pipeline.backtest.cases import RangeExtreme

    hmax, lmin = RangeExtreme(high, np.maximum), RangeExtreme(low, np.minimum)
    i_end = np.searchsorted(t, ev[pts], side="left")
    # Each (point, window): its candle range and padded price edges, from data before the point only.
    ranges: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
    for tf in order:
        use = np.zeros(pts.size, bool)
        t0 = np.empty(pts.size, np.int64)
        for n, j in enumerate(pts):
            for name, partial in windows_for_span(timeframes_ms, int(ev[j]) - int(t[0])):
                if name == tf:
                    use[n] = True
                    t0[n] = int(t[0]) if partial else int(ev[j]) - int(timeframes_ms[tf])
        i_start = np.searchsorted(t, t0, side="left")
        use &= i_end > i_start
        pad = PRICE_PAD.get(tf, DEFAULT_PAD)
        lo = lmin.query(np.where(use, i_start, 0), np.where(use, i_end, 1)) * (1 - pad)
        hi = hmax.query(np.where(use, i_start, 0), np.where(use, i_end, 1)) * (1 + pad)
        ranges[tf] = (use, lo, hi)
    all_lo = min(float(np.nanmin(r[1][r[0]])) for r in ranges.values() if r[0].any()) if any(
        r[0].any() for r in ranges.values()) else None
    if all_lo is None:
        return out
    all_hi = max(float(np.nanmax(r[2][r[0]])) for r in ranges.values() if r[0].any())
    fine, _ = lattice(all_lo, all_hi, FINE_RATIO)
    found: dict[str, list[ClusterSet]] = {tf: [] for tf in order}
    frac = np.linspace(0.0, 1.0, bins + 1)
    for s0 in range(0, pts.size, chunk):
        sl = slice(s0, s0 + chunk)
        g = result.grid(ev[pts[sl]], fine)
        cum = np.concatenate([np.zeros((g.shape[1], 1)), np.cumsum(g[0] + g[1], axis=1)], axis=1)
        for tf in order:
            use, lo, hi = (r[sl] for r in ranges[tf])
            rows = np.flatnonzero(use)
            if not rows.size:
                continue
            e = lo[rows, None] + (hi[rows] - lo[rows])[:, None] * frac[None, :]
            c = np.stack([np.interp(e[i], fine, cum[r]) for i, r in enumerate(rows)])
            col = np.maximum(np.diff(c, axis=1), 0.0)
            col[col < 1e-9 * np.maximum(col.max(axis=1, keepdims=True), 1e-300)] = 0.0  # interpolation dust
            found[tf].append(batch_clusters(col, e, prices[pts[sl][rows]], top=top, point=pts[sl][rows]))
    for tf in order:
        if found[tf]:
            out[tf] = ClusterSet(*(np.concatenate([getattr(c, f) for c in found[tf]])
                                   for f in ClusterSet.__dataclass_fields__))
    return out


def effective_step_h(time_ms: np.ndarray, settings: "BacktestSettings") -> float:
    """The evaluation step: ``settings.step_h``, widened to whole hours so that at most
    ``max_eval_points`` points cover the history."""
    t = np.asarray(time_ms, np.int64)
    if t.size < 2:
        return float(settings.step_h)
    hours = (int(t[-1]) - int(t[0])) / HOUR_MS - settings.warmup_h
    return float(max(settings.step_h, math.ceil(max(hours, 0.0) / max(settings.max_eval_points, 1))))


def _model_inputs(candles: Mapping[str, np.ndarray]) -> dict:
    def col(name):
        v = candles.get(name)
        return None if v is None else np.asarray(v, float)

    return {"volume": col("volume"), "taker_buy_volume": col("taker_buy_volume")}


def _run_model(model, candles, oi_usd, params, sl=slice(None)):
    kw = {k: (None if v is None else v[sl]) for k, v in _model_inputs(candles).items()}
    return model.run(
        np.asarray(candles["time_ms"], np.int64)[sl], np.asarray(candles["open"], float)[sl],
        np.asarray(candles["high"], float)[sl], np.asarray(candles["low"], float)[sl],
        np.asarray(candles["close"], float)[sl], np.asarray(oi_usd, float)[sl], params, **kw,
    )


def _evaluation_grid(candles: Mapping[str, np.ndarray], settings: BacktestSettings):
    """Candle times, candle interval, evaluation step (h), evaluation times and the price paths after them."""
    t = np.asarray(candles["time_ms"], np.int64)
    iv = candle_interval_ms(t)
    step_h = effective_step_h(t, settings)
    ev = eval_times(t, step_ms=int(step_h * HOUR_MS), warmup_ms=int(settings.warmup_h * HOUR_MS),
                    interval_ms=iv)
    paths = price_paths(t, candles["high"], candles["low"], candles["close"], ev,
                        horizons_h=settings.horizons_h, interval_ms=iv)
    return t, iv, step_h, ev, paths
