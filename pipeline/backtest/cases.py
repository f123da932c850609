"""Evaluation points, price paths after them, scored cases and their volatility-matched baseline (pure).

Summaries of the cases (rates, lifts, intervals) are :mod:`pipeline.backtest.summary`.

See :mod:`pipeline.backtest` for the method: what a touch is, the baseline and the intervals.
Everything here is vectorised over points x clusters x horizons (no Python loop per case).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

HOUR_MS = 3_600_000
HORIZONS_H: tuple[int, ...] = (4, 24, 72)
MIN_CASES = 30
VOL_LOOKBACK_H = 24  # trailing window of the realised volatility that distances are measured in
MIN_VOL_RETURNS = 6  # fewer trailing returns than this: no volatility, the point is not scored
MIN_BLOCK_H = 24  # bootstrap blocks are at least a day (and at least the horizon) long
TARGET_BLOCKS = 10  # short histories shrink the blocks (never below the horizon) to reach this many

ABOVE = 1  # cluster above price: short liquidations
BELOW = -1  # cluster below price: long liquidations
SIDE_NAMES = {ABOVE: "above", BELOW: "below"}
_EPS = 1e-12


class ClusterLike(Protocol):
    """What the backtest needs of a cluster (``pipeline.model.levels.Cluster`` satisfies it)."""

    side: str  # "short" = above price, "long" = below price
    price_low: float
    price_high: float
    notional_usd: float
    rank: int


def side_of(cluster: Any) -> int:
    s = getattr(cluster, "side")
    if s in ("short", "above", ABOVE):
        return ABOVE
    if s in ("long", "below", BELOW):
        return BELOW
    raise ValueError(f"unknown cluster side {s!r}")


@dataclass
class ClusterSet:
    """Clusters of many evaluation points as parallel arrays (one row per cluster)."""

    point: np.ndarray  # index of the evaluation point
    side: np.ndarray  # ABOVE / BELOW
    rank: np.ndarray  # 1 = largest on its side at that point
    price_low: np.ndarray
    price_high: np.ndarray
    notional_usd: np.ndarray
    confluence: np.ndarray

    def __len__(self) -> int:
        return int(self.point.size)

    @classmethod
    def empty(cls) -> "ClusterSet":
        return cls(*(np.zeros(0, np.int64) for _ in range(3)), *(np.zeros(0) for _ in range(4)))

    @classmethod
    def from_lists(cls, clusters: Sequence[Sequence[Any]], confluence: Sequence[Sequence[float]] | None = None
                   ) -> "ClusterSet":
        rows = [(j, side_of(c), int(getattr(c, "rank", 0) or 0), float(c.price_low), float(c.price_high),
                 float(c.notional_usd), float(confluence[j][i] if confluence is not None
                                              else getattr(c, "confluence", 0.0)))
                for j, cl in enumerate(clusters) for i, c in enumerate(cl)]
        if not rows:
            return cls.empty()
        a = list(zip(*rows))
        return cls(np.asarray(a[0], np.int64), np.asarray(a[1], np.int64), np.asarray(a[2], np.int64),
                   *(np.asarray(x, float) for x in a[3:]))

    def select(self, mask: np.ndarray) -> "ClusterSet":
        return ClusterSet(**{k: getattr(self, k)[mask] for k in self.__dataclass_fields__})

    def with_confluence(self, conf: np.ndarray) -> "ClusterSet":
        return ClusterSet(**{k: getattr(self, k) for k in self.__dataclass_fields__ if k != "confluence"},
                          confluence=np.asarray(conf, float))

    def top(self, k: int) -> "ClusterSet":
        """The ``k`` best per (point, side), re-ranked 1..k by (rank, larger notional first)."""
        if not len(self):
            return self
        order = np.lexsort((-self.notional_usd, self.rank, self.side, self.point))
        s = self.select(order)
        key = s.point * 4 + (s.side + 1)
        first = np.r_[True, key[1:] != key[:-1]]
        start = np.maximum.accumulate(np.where(first, np.arange(key.size), 0))
        r = np.arange(key.size) - start + 1
        keep = r <= k
        s = s.select(keep)
        s.rank = r[keep]
        return s


def as_cluster_set(clusters) -> ClusterSet:
    return clusters if isinstance(clusters, ClusterSet) else ClusterSet.from_lists(clusters)


# --------------------------------------------------------------------------
# Evaluation points and price paths
# --------------------------------------------------------------------------
def candle_interval_ms(time_ms: np.ndarray) -> int:
    """The typical candle spacing (median of differences; gaps do not distort it)."""
    t = np.asarray(time_ms, np.int64)
    if t.size < 2:
        return 60_000
    return int(np.median(np.diff(t)))


def eval_times(
    time_ms: np.ndarray, *, step_ms: int = HOUR_MS, warmup_ms: int = 6 * HOUR_MS, interval_ms: int | None = None
) -> np.ndarray:
    """Evaluation points: multiples of ``step_ms`` from first candle + warm-up to the data end.

    The warm-up lets the model's book fill before anything is scored (an empty
    book at the first candle would say nothing about the model).
    """
    t = np.asarray(time_ms, np.int64)
    if t.size == 0:
        return np.zeros(0, np.int64)
    iv = interval_ms or candle_interval_ms(t)
    start = int(t[0]) + int(warmup_ms)
    first = -(-start // step_ms) * step_ms  # ceil to the step grid: points on round hours
    end = int(t[-1]) + iv
    if first > end:
        return np.zeros(0, np.int64)
    return np.arange(first, end + 1, step_ms, dtype=np.int64)


class RangeExtreme:
    """O(1) max (or min) over any candle range [i0, i1) after an O(n log n) sparse table."""

    def __init__(self, values: np.ndarray, agg=np.maximum):
        self.agg = agg
        self.tables = [np.asarray(values, float)]
        k = 1
        while (1 << k) <= self.tables[0].size:
            prev, half = self.tables[-1], 1 << (k - 1)
            self.tables.append(agg(prev[:-half], prev[half:]))
            k += 1

    def query(self, i0: np.ndarray, i1: np.ndarray) -> np.ndarray:
        """Extreme of values[i0:i1] per pair (NaN where i1 <= i0)."""
        i0, i1 = np.asarray(i0, np.int64), np.asarray(i1, np.int64)
        n = np.maximum(i1 - i0, 1)
        k = np.floor(np.log2(n)).astype(np.int64)
        out = np.full(i0.shape, np.nan)
        for kk in np.unique(k[i1 > i0]):
            m = (k == kk) & (i1 > i0)
            tbl = self.tables[kk]
            out[m] = self.agg(tbl[i0[m]], tbl[i1[m] - (1 << kk)])
        return out


@dataclass(frozen=True)
class Paths:
    """Price at each evaluation point, the excursions within each horizon, and how they are normalised.

    ``up_pct[j, h]`` = (highest high in [t_j, t_j + H_h) - price_j) / price_j * 100;
    ``down_pct`` likewise for the lowest low (positive = price fell). NaN where
    the horizon runs past the data or the point has no prior candle.
    ``scale_pct[j, h]``: one trailing realised-volatility unit over ``H_h``, in % of
    price (only candles before ``t_j``). ``block[j, h]``: the point's bootstrap block
    (-1: not scored at that horizon); ``block_h[h]`` its length in hours.
    """

    eval_ms: np.ndarray
    price: np.ndarray
    horizons_h: tuple[int, ...]
    up_pct: np.ndarray
    down_pct: np.ndarray
    scale_pct: np.ndarray | None = None
    block: np.ndarray | None = None
    block_h: tuple[float, ...] = ()
    n_blocks: tuple[int, ...] = ()


def trailing_vol_per_hour(time_ms, close, eval_ms, *, lookback_h: float = VOL_LOOKBACK_H,
                          interval_ms: int | None = None) -> np.ndarray:
    """Realised volatility (sd of log returns, per sqrt(hour)) of the candles in [t - lookback, t)."""
    t = np.asarray(time_ms, np.int64)
    c = np.asarray(close, float)
    ev = np.asarray(eval_ms, np.int64)
    iv = interval_ms or candle_interval_ms(t)
    r2 = np.zeros(t.size)
    if t.size > 1:
        with np.errstate(divide="ignore", invalid="ignore"):
            r = np.diff(np.log(c))
        r2[1:] = np.nan_to_num(r * r)
    cs = np.cumsum(r2)
    last = np.searchsorted(t, ev, side="left") - 1
    first = np.maximum(np.searchsorted(t, ev - int(lookback_h * HOUR_MS), side="left"), 1)
    count = last - first + 1
    ok = (last >= 1) & (count >= MIN_VOL_RETURNS)
    s = np.where(ok, cs[np.maximum(last, 0)] - cs[np.maximum(first - 1, 0)], np.nan)
    hours = np.maximum(count, 1) * iv / HOUR_MS
    return np.where(ok, np.sqrt(s / hours), np.nan)


def _blocks(ev: np.ndarray, valid: np.ndarray, hours: int) -> tuple[np.ndarray, float, int]:
    """Bootstrap blocks of consecutive evaluation points: at least ``hours`` long (neighbours whose
    windows overlap mostly share a block) and a day when the history allows ``TARGET_BLOCKS`` of them."""
    blk = np.full(ev.size, -1, np.int64)
    if not valid.any():
        return blk, float(max(hours, MIN_BLOCK_H)), 0
    t0, t1 = int(ev[valid][0]), int(ev[valid][-1])
    span_h = (t1 - t0) / HOUR_MS + 1
    length = max(float(hours), float(MIN_BLOCK_H))
    if span_h / length < TARGET_BLOCKS:
        length = max(float(hours), math.floor(span_h / TARGET_BLOCKS))
    b = (ev - t0) // int(length * HOUR_MS)
    blk[valid] = b[valid]
    # Renumber the blocks that hold a point 0..D-1 (a data gap leaves no empty block).
    used, inv = np.unique(blk[valid], return_inverse=True)
    blk[valid] = inv
    return blk, length, int(used.size)


def price_paths(
    time_ms: np.ndarray,
    high: np.ndarray,
    low: np.ndarray,
    close: np.ndarray,
    eval_ms: np.ndarray,
    *,
    horizons_h: Sequence[int] = HORIZONS_H,
    interval_ms: int | None = None,
) -> Paths:
    t = np.asarray(time_ms, np.int64)
    high, low, close = (np.asarray(a, float) for a in (high, low, close))
    ev = np.asarray(eval_ms, np.int64)
    iv = interval_ms or candle_interval_ms(t)
    data_end = int(t[-1]) + iv if t.size else 0
    m, nh = ev.size, len(horizons_h)
    up = np.full((m, nh), np.nan)
    dn = np.full((m, nh), np.nan)
    i_now = np.searchsorted(t, ev, side="left")  # first candle opening at/after t
    last = i_now - 1  # the last candle that opened before t: what was known at t
    price = np.where(last >= 0, close[np.maximum(last, 0)] if t.size else np.nan, np.nan)
    hmax, lmin = RangeExtreme(high, np.maximum), RangeExtreme(low, np.minimum)
    sig = trailing_vol_per_hour(t, close, ev, interval_ms=iv) if t.size else np.full(m, np.nan)
    scale = np.full((m, nh), np.nan)
    block = np.full((m, nh), -1, np.int64)
    block_h, n_blocks = [], []
    for h, hours in enumerate(horizons_h):
        stop = ev + int(hours) * HOUR_MS
        i1 = np.searchsorted(t, stop, side="left")
        # Skipped, never a miss: horizon past the data, no prior candle, or no candle in the window (a gap).
        ok = (stop <= data_end) & (last >= 0) & (i1 > i_now)
        up[ok, h] = (hmax.query(i_now[ok], i1[ok]) - price[ok]) / price[ok] * 100.0
        dn[ok, h] = (price[ok] - lmin.query(i_now[ok], i1[ok])) / price[ok] * 100.0
        scale[:, h] = sig * math.sqrt(hours) * 100.0
        valid = ok & np.isfinite(scale[:, h]) & (scale[:, h] > 0)
        b, length, nb = _blocks(ev, valid, int(hours))
        block[:, h] = b
        block_h.append(length)
        n_blocks.append(nb)
    return Paths(ev, price, tuple(int(h) for h in horizons_h), up, dn, scale, block, tuple(block_h), tuple(n_blocks))


# --------------------------------------------------------------------------
# Cases
# --------------------------------------------------------------------------
_CASE_FIELDS = (
    "eval_ms", "point", "horizon_h", "side", "rank", "near_pct", "width_pct",
    "notional_usd", "confluence", "hit", "baseline", "block", "ref_hits", "ref_n",
)


@dataclass
class Cases:
    """One row per (evaluation point, horizon, scored level), as parallel arrays.

    ``baseline``: probability that an arbitrary level at the same distance, in units of
    trailing volatility, is touched (other points, purged of those whose horizon overlaps).
    ``ref_hits[i, d]`` / ``ref_n[i, d]``: of the reference points in bootstrap block ``d``,
    how many reached case ``i``'s distance / were eligible (``baseline = sum / sum``).
    """

    eval_ms: np.ndarray
    point: np.ndarray
    horizon_h: np.ndarray
    side: np.ndarray  # +1 above (short liquidations), -1 below (long liquidations)
    rank: np.ndarray
    near_pct: np.ndarray  # distance of the near edge from price, % (<= 0: price already inside)
    width_pct: np.ndarray
    notional_usd: np.ndarray
    confluence: np.ndarray
    hit: np.ndarray  # bool
    baseline: np.ndarray
    block: np.ndarray
    ref_hits: np.ndarray  # (n, max blocks) uint16
    ref_n: np.ndarray
    meta: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.hit.size)

    def select(self, mask: np.ndarray) -> "Cases":
        return Cases(**{k: getattr(self, k)[mask] for k in _CASE_FIELDS}, meta=self.meta)


def _reference_counts(exc_ref, scale_ref, block_ref, ev, j_case, z_case, hours, n_blocks):
    """(ref_hits, ref_n) per case and block: reference points whose normalised excursion reached z.

    Counted per block by binary search on the block's sorted excursions, then the purged
    neighbours (points whose horizon overlaps the case's, so they share its future) are
    subtracted; blocks are at least one horizon long, so those lie in the case's block or
    the one on either side.
    """
    d = max(n_blocks, 1)
    u = exc_ref / scale_ref
    elig = np.isfinite(u) & (block_ref >= 0)
    n = j_case.size
    z = z_case - _EPS
    # above[k, b]: how many of block b's excursions are at or after position k of all of them sorted
    # ascending, so the count of block b's excursions >= z is above[(how many are < z), b].
    order = np.argsort(u[elig], kind="stable")
    ue, be = u[elig][order], block_ref[elig][order]
    ct = np.uint16 if ue.size < 2**16 else np.int64  # no count can pass the number of reference points
    above = np.zeros((ue.size + 1, d), ct)
    above[np.arange(ue.size), be] = 1
    above = np.cumsum(above[::-1], axis=0, dtype=ct)[::-1]
    tot = np.repeat(above[:1], n, axis=0)
    hits = above[np.searchsorted(ue, z, side="left")]
    H = int(hours) * HOUR_MS
    lo = np.searchsorted(ev, ev[j_case] - H, side="right")
    hi = np.searchsorted(ev, ev[j_case] + H, side="left")
    w = int((hi - lo).max()) if n else 0
    if w:
        idx = lo[:, None] + np.arange(w)[None, :]
        inside = idx < hi[:, None]
        idx = np.minimum(idx, ev.size - 1)
        nb_el = inside & elig[idx]
        nb_hit = nb_el & (np.where(elig, u, -np.inf)[idx] >= z[:, None])
        nb_blk = block_ref[idx]
        rows = np.arange(n)
        own = block_ref[j_case]
        for off in (-1, 0, 1):
            col = own + off
            ok = (col >= 0) & (col < d)
            at = nb_blk == col[:, None]
            # A subset of what was counted there: the counts stay >= 0.
            hits[rows[ok], col[ok]] -= (nb_hit & at).sum(1)[ok].astype(ct)
            tot[rows[ok], col[ok]] -= (nb_el & at).sum(1)[ok].astype(ct)
    return hits.astype(np.uint16, copy=False), tot.astype(np.uint16, copy=False)


def evaluate(
    paths: Paths,
    clusters: "ClusterSet | Sequence[Sequence[ClusterLike]]",
    *,
    top_k: int = 3,
    confluence: Sequence[Sequence[float]] | None = None,
) -> Cases:
    """Score the top-``k`` levels per side at every evaluation point against the realised path.

    ``clusters``: a :class:`ClusterSet` or, per evaluation point, a list of clusters
    (any order; ranked here by ``rank`` then notional). ``confluence[j][i]``, if given,
    is the confluence score of ``clusters[j][i]``.
    """
    if not isinstance(clusters, ClusterSet):
        if len(clusters) != paths.eval_ms.size:
            raise ValueError("clusters must have one entry per evaluation point")
        clusters = ClusterSet.from_lists(clusters, confluence)
    cs = clusters.top(top_k)
    p = paths.price[cs.point] if len(cs) else np.zeros(0)
    ok = np.isfinite(p)
    cs, p = cs.select(ok), p[ok]
    near = np.where(cs.side == ABOVE, (cs.price_low - p) / p * 100.0, (p - cs.price_high) / p * 100.0)
    width = (cs.price_high - cs.price_low) / p * 100.0
    scale = paths.scale_pct if paths.scale_pct is not None else np.ones_like(paths.up_pct)
    block = paths.block if paths.block is not None else np.zeros(paths.up_pct.shape, np.int64)
    n_blocks = paths.n_blocks or (1,) * len(paths.horizons_h)
    dmax = max(max(n_blocks, default=1), 1)
    parts: list[dict] = []
    for h, hours in enumerate(paths.horizons_h):
        for side in (ABOVE, BELOW):
            exc_all = paths.up_pct[:, h] if side == ABOVE else paths.down_pct[:, h]
            m = (cs.side == side)
            j = cs.point[m]
            exc = exc_all[j]
            keep = np.isfinite(exc) & (block[j, h] >= 0)
            idx = np.flatnonzero(m)[keep]
            j = j[keep]
            if not j.size:
                continue
            z = near[idx] / scale[j, h]
            rh, rn = _reference_counts(exc_all, scale[:, h], block[:, h], paths.eval_ms, j, z, hours, n_blocks[h])
            pad = ((0, 0), (0, dmax - rh.shape[1]))
            # A case with no reference point outside its purge window has no baseline: not scored.
            has_ref = rn.sum(1) > 0
            idx, j, rh, rn, e = idx[has_ref], j[has_ref], rh[has_ref], rn[has_ref], exc[keep][has_ref]
            base = rh.sum(1, dtype=float) / rn.sum(1, dtype=float)
            parts.append({
                "eval_ms": paths.eval_ms[j], "point": j, "horizon_h": np.full(j.size, hours, np.int64),
                "side": np.full(j.size, side, np.int64), "rank": cs.rank[idx], "near_pct": near[idx],
                "width_pct": width[idx], "notional_usd": cs.notional_usd[idx], "confluence": cs.confluence[idx],
                # The touch test, in the same % terms as the baseline so both use one rule.
                "hit": e >= near[idx] - _EPS, "baseline": base, "block": block[j, h],
                "ref_hits": np.pad(rh, pad), "ref_n": np.pad(rn, pad),
            })
    if parts:
        arr = {k: np.concatenate([q[k] for q in parts]) for k in _CASE_FIELDS}
    else:
        ints = ("eval_ms", "point", "horizon_h", "side", "rank", "block")
        arr = {k: np.zeros((0, dmax) if k in ("ref_hits", "ref_n") else 0,
                           bool if k == "hit" else np.uint16 if k.startswith("ref") else np.int64 if k in ints
                           else float)
               for k in _CASE_FIELDS}
    valid = paths.price[np.isfinite(paths.price)]
    return Cases(**arr, meta={
        "eval_points": int(np.isfinite(paths.price).sum()),
        "first_eval_ms": int(paths.eval_ms[0]) if paths.eval_ms.size else None,
        "last_eval_ms": int(paths.eval_ms[-1]) if paths.eval_ms.size else None,
        "top_k": top_k,
        "price_min": float(valid.min()) if valid.size else None,
        "price_max": float(valid.max()) if valid.size else None,
        "horizons_h": paths.horizons_h, "n_blocks": tuple(n_blocks), "block_h": tuple(paths.block_h or ()),
    })
