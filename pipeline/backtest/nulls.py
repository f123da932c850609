"""The comparators the model must beat (pure): a placebo with shuffled open interest and naive levels.

*Placebo.* The same pipeline with the OI increments block-shuffled: the OI samples keep
their times, but their increments (coins in ``oi_change="base"``, USD in ``"usd"``) are cut
into blocks of ``block_h`` hours whose order is permuted, so the flow no longer lines up
with price. Clusters that survive this are set by price and the leverage tiers, not by OI.

*Naive levels.* For every scored model cluster, a level a chartist would draw, on the same
side at the nearest available distance: the recent swing high/low (highest high / lowest
low over the last 4 h to 1 week) or a round number (multiples of a tenth of the price's
power of ten, e.g. 1,000 at 90,000). Same distances, same touch rule, same baseline.
"""

from __future__ import annotations

import math

import numpy as np

from pipeline.backtest.cases import ABOVE, HOUR_MS, ClusterSet, Paths, RangeExtreme

SWING_LOOKBACKS_H = (4, 8, 12, 24, 48, 72, 168)


def _new_samples(oi: np.ndarray) -> np.ndarray:
    """Indices of OI values that are new samples (finite and not a repeat of the last known one:
    ``model.book.run`` reads a repeat as the previous sample carried forward)."""
    finite = np.flatnonzero(np.isfinite(oi))
    if finite.size == 0:
        return finite
    v = oi[finite]
    new = np.r_[True, v[1:] != v[:-1]]
    return finite[new]


def placebo_oi(time_ms: np.ndarray, close: np.ndarray, oi: np.ndarray, *, oi_change: str = "base",
               block_h: float = 24.0, seed: int = 0) -> np.ndarray:
    """OI per candle with the increments block-shuffled; NaN between samples (= no new sample)."""
    t = np.asarray(time_ms, np.int64)
    c = np.asarray(close, float)
    oi = np.asarray(oi, float)
    out = np.full(oi.shape, np.nan)
    idx = _new_samples(oi)
    if idx.size < 3:
        return np.where(np.isfinite(oi), oi, np.nan)
    base = oi_change == "base"
    level = oi[idx] / c[idx] if base else oi[idx].copy()
    inc = np.diff(level)
    blk = (t[idx[1:]] - t[idx[1]]) // max(int(block_h * HOUR_MS), 1)
    ids = np.unique(blk)
    rng = np.random.default_rng(seed)
    perm = ids[rng.permutation(ids.size)]
    shuffled = np.concatenate([inc[blk == b] for b in perm])
    new = level[0] + np.r_[0.0, np.cumsum(shuffled)]
    # A shuffled path may dip below what was ever held; open interest cannot go negative.
    new = np.maximum(new, 0.01 * np.nanmin(level[level > 0]) if (level > 0).any() else 0.0)
    out[idx] = new * c[idx] if base else new
    return out


def _swing_candidates(time_ms, high, low, paths: Paths):
    t = np.asarray(time_ms, np.int64)
    hmax, lmin = RangeExtreme(high, np.maximum), RangeExtreme(low, np.minimum)
    i_end = np.searchsorted(t, paths.eval_ms, side="left")
    ups, downs = [], []
    for hours in SWING_LOOKBACKS_H:
        i0 = np.searchsorted(t, paths.eval_ms - hours * HOUR_MS, side="left")
        ok = i_end > i0
        ups.append(np.where(ok, hmax.query(np.where(ok, i0, 0), np.where(ok, i_end, 1)), np.nan))
        downs.append(np.where(ok, lmin.query(np.where(ok, i0, 0), np.where(ok, i_end, 1)), np.nan))
    return np.stack(ups, 1), np.stack(downs, 1)


def _round_candidates(price: np.ndarray, span_pct: float):
    p = np.where(np.isfinite(price) & (price > 0), price, np.nan)
    step = 10.0 ** (np.floor(np.log10(p)) - 1)
    k = int(math.ceil(span_pct / 100 * 100)) + 2  # steps are >= 1 % of price: this covers the span
    ar = np.arange(k)[None, :]
    up = np.ceil(p / step)[:, None] * step[:, None] + ar * step[:, None]
    dn = np.floor(p / step)[:, None] * step[:, None] - ar * step[:, None]
    return up, dn


def matched_levels(model: ClusterSet, paths: Paths, kind: str, *, time_ms=None, high=None, low=None,
                   span_pct: float = 15.0) -> ClusterSet:
    """For each model cluster, the ``kind`` ("swing" | "round") level on its side nearest to its
    near-edge distance, as a zero-width level with the cluster's point, side and rank."""
    if kind == "swing":
        up, dn = _swing_candidates(time_ms, high, low, paths)
    elif kind == "round":
        up, dn = _round_candidates(paths.price, span_pct)
    else:
        raise ValueError(f"unknown naive level kind {kind!r}")
    if not len(model):
        return ClusterSet.empty()
    p = paths.price[model.point]
    above = model.side == ABOVE
    cand = np.where(above[:, None], up[model.point], dn[model.point])
    # Only levels strictly on the cluster's side of the price count.
    cand = np.where(np.where(above[:, None], cand > p[:, None], cand < p[:, None]), cand, np.nan)
    near = np.where(above, model.price_low, model.price_high)
    gap = np.abs(cand - near[:, None])
    has = np.isfinite(gap).any(1)
    pick = np.nanargmin(np.where(np.isfinite(gap), gap, np.inf), axis=1)
    lvl = cand[np.arange(cand.shape[0]), pick]
    keep = has & np.isfinite(lvl)
    out = model.select(keep)
    out.price_low = lvl[keep]
    out.price_high = lvl[keep].copy()
    out.confluence = np.zeros(int(keep.sum()))
    return out

