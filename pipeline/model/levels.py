"""Key levels: the largest liquidation clusters above and below the current price (pure numpy).

A *cluster* is a run of adjacent "hot" price bins of one column of the heatmap
(the active level book binned by price). Bins below the price hold long
liquidation levels, bins above hold short ones; the bin containing the price is
assigned by its midpoint. A bin is hot when its notional is at least the
``hot_quantile`` quantile of the non-empty bins on its side (default 0.75: the
top quarter). Neighbouring hot bins are merged, so one wide band counts once
instead of crowding the top five with its own slices.

``confluence`` scores each cluster by how many *other* timeframes have a
cluster on the same side whose price range overlaps it (readers treat a zone
that shows up in several windows as stronger). :func:`overlaps` is the one
rule, used by the site and the backtest alike.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

HOT_QUANTILE = 0.75


@dataclass(frozen=True)
class Cluster:
    side: str  # "long" (below price) | "short" (above price)
    price_low: float
    price_high: float
    notional_usd: float
    distance_pct: float  # signed: (mid - price) / price * 100
    rank: int  # 1 = largest on its side
    confluence: float = 0.0  # number of other timeframes with an overlapping cluster

    @property
    def mid(self) -> float:
        return 0.5 * (self.price_low + self.price_high)

    def overlaps(self, other: "Cluster") -> bool:
        return overlaps(self, other)


def _runs(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Starts and (exclusive) ends of the runs of consecutive True values."""
    d = np.diff(np.concatenate(([0], mask.astype(np.int8), [0])))
    return np.flatnonzero(d == 1), np.flatnonzero(d == -1)


def _quantile(values: np.ndarray, q: float) -> float:
    """``np.quantile(values, q)`` (linear interpolation) by partial sort: the backtest calls this
    for every evaluation point and side, and np.quantile's overhead was a third of its cost."""
    h = q * (values.size - 1)
    lo = int(h)
    hi = min(lo + 1, values.size - 1)
    part = np.partition(values, (lo, hi))
    return float(part[lo] + (h - lo) * (part[hi] - part[lo]))


def _side_clusters(col, edges, idx, side, price, top, hot_quantile) -> list[Cluster]:
    values = col[idx]
    nonzero = values[values > 0]
    if nonzero.size == 0:
        return []
    threshold = _quantile(nonzero, hot_quantile)
    hot = np.zeros(col.shape[0], dtype=bool)
    hot[idx] = (values >= threshold) & (values > 0)
    a, b = _runs(hot)
    if a.size == 0:
        return []
    total = np.add.reduceat(np.where(hot, col, 0.0), a)  # each run's sum (runs are separated by cold bins)
    lo, hi = edges[a], edges[b]
    dist = (0.5 * (lo + hi) - price) / price * 100.0
    # Largest first; ties broken by proximity so the order is deterministic.
    order = np.lexsort((np.abs(dist), -total))[:top]
    return [
        Cluster(side=side, price_low=float(lo[i]), price_high=float(hi[i]), notional_usd=float(total[i]),
                distance_pct=float(dist[i]), rank=r + 1)
        for r, i in enumerate(order)
    ]


def find_clusters(
    column: np.ndarray,
    price_edges: np.ndarray,
    price: float,
    top: int = 5,
    *,
    hot_quantile: float = HOT_QUANTILE,
) -> list[Cluster]:
    """The ``top`` largest clusters below ``price`` (long) and above it (short).

    ``column``: notional per bin (k), ``price_edges``: ascending bin edges (k+1).
    Returns longs first (rank order), then shorts.
    """
    col = np.nan_to_num(np.asarray(column, dtype=float), nan=0.0)
    edges = np.asarray(price_edges, dtype=float)
    if edges.shape != (col.shape[0] + 1,):
        raise ValueError(f"price_edges must have len(column)+1 = {col.shape[0] + 1} values, got {edges.shape}")
    if not np.isfinite(price) or price <= 0:
        return []
    mids = 0.5 * (edges[:-1] + edges[1:])
    below = np.flatnonzero(mids < price)
    above = np.flatnonzero(mids >= price)
    # A run must not straddle the price: merging happens within each side only.
    return _side_clusters(col, edges, below, "long", price, top, hot_quantile) + _side_clusters(
        col, edges, above, "short", price, top, hot_quantile
    )


def overlaps(a, b, tol_pct: float = 0.0) -> bool:
    """Same side and price ranges overlap, each widened by ``tol_pct`` % of its own mid.

    Strict inequalities: clusters that merely share an edge (adjacent bins) do not count.
    ``a`` and ``b`` need ``side``, ``price_low`` and ``price_high`` (a :class:`Cluster` or alike).
    """
    if a.side != b.side:
        return False
    wa = (a.price_low + a.price_high) / 2 * tol_pct / 100.0
    wb = (b.price_low + b.price_high) / 2 * tol_pct / 100.0
    return a.price_low - wa < b.price_high + wb and b.price_low - wb < a.price_high + wa


def confluence_counts(primary, others, tol_pct: float = 0.0) -> list[int]:
    """For each cluster of ``primary``: how many of the lists in ``others`` hold an overlapping one."""
    return [sum(1 for ocl in others if any(overlaps(c, o, tol_pct) for o in ocl)) for c in primary]


def confluence(clusters_by_timeframe: dict[str, list[Cluster]]) -> dict[str, list[Cluster]]:
    """Return copies whose ``confluence`` = number of other timeframes with an overlapping same-side cluster."""
    out: dict[str, list[Cluster]] = {}
    for tf, clusters in clusters_by_timeframe.items():
        others = [cl for other, cl in clusters_by_timeframe.items() if other != tf]
        out[tf] = [replace(c, confluence=float(n)) for c, n in zip(clusters, confluence_counts(clusters, others))]
    return out


def nearest(clusters: list[Cluster], side: str) -> Cluster | None:
    """The listed cluster of ``side`` closest to the price (None if there is none)."""
    cands = [c for c in clusters if c.side == side]
    return min(cands, key=lambda c: abs(c.distance_pct)) if cands else None
