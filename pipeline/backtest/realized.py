"""Realized liquidations (where an exchange publishes them) against the modelled ones (pure)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from pipeline.backtest.cases import ABOVE, HOUR_MS, ClusterLike, ClusterSet, as_cluster_set
from pipeline.backtest.stats import finite_or_none, pearson, spearman


def hourly_sum(time_ms: np.ndarray, values: np.ndarray, edges_ms: np.ndarray) -> np.ndarray:
    """Sum of ``values`` per bucket [edges[i], edges[i+1])."""
    t = np.asarray(time_ms, np.int64)
    v = np.nan_to_num(np.asarray(values, float))
    idx = np.searchsorted(edges_ms, t, side="right") - 1
    ok = (idx >= 0) & (idx < len(edges_ms) - 1)
    return np.bincount(idx[ok], weights=v[ok], minlength=len(edges_ms) - 1)


def gross_churn_usd(time_ms: np.ndarray, oi_usd: np.ndarray, edges_ms: np.ndarray) -> np.ndarray:
    """Gross OI churn per bucket: the sum of |change| between successive OI samples (USD)."""
    t = np.asarray(time_ms, np.int64)
    oi = np.asarray(oi_usd, float)
    ok = np.flatnonzero(np.isfinite(oi))
    if ok.size < 2:
        return np.zeros(len(edges_ms) - 1)
    return hourly_sum(t[ok[1:]], np.abs(np.diff(oi[ok])), edges_ms)


def _band_share(ev, clusters: ClusterSet, lt, side, price, notional, x, *, shift=None, prices=None):
    """Share of realized notional within +/- x % of a same-side cluster predicted at the last point
    before each order. ``shift``: take each order's clusters from point ``shift[j]`` instead,
    moved by that point's price to the order's point (the random-level baseline)."""
    j = np.searchsorted(ev, lt, side="right") - 1  # last prediction made at or before the order
    m = ev.size
    top = int(clusters.rank.max()) if len(clusters) else 1
    lo = np.full((m, 2, top), np.nan)
    hi = np.full((m, 2, top), np.nan)
    si = (clusters.side == ABOVE).astype(np.int64)
    lo[clusters.point, si, clusters.rank - 1] = clusters.price_low
    hi[clusters.point, si, clusters.rank - 1] = clusters.price_high
    has = np.zeros(m, bool)
    has[clusters.point] = True
    ok = j >= 0
    jj = np.where(ok, j, 0)
    src = jj if shift is None else shift[jj]
    scale = 1.0 if shift is None else (prices[jj] / prices[src])[:, None]
    ok &= has[src]
    want = np.where(side == "long", 0, 1)  # long liquidations happen below price: BELOW clusters
    clo, chi = lo[src, want] * scale, hi[src, want] * scale
    inside = ((clo * (1 - x / 100) <= price[:, None]) & (price[:, None] <= chi * (1 + x / 100))).any(1) & ok
    total = notional[ok].sum()
    return (float(notional[inside].sum() / total) if total > 0 else None), float(total)


def realized_comparison(
    model_time_ms: np.ndarray,
    model_long_usd: np.ndarray,
    model_short_usd: np.ndarray,
    liq_time_ms: np.ndarray,
    liq_side: np.ndarray,
    liq_price: np.ndarray,
    liq_notional_usd: np.ndarray,
    *,
    eval_ms: np.ndarray | None = None,
    clusters: "ClusterSet | Sequence[Sequence[ClusterLike]] | None" = None,
    prices: np.ndarray | None = None,
    oi_usd: np.ndarray | None = None,
    bands_pct: Sequence[float] = (0.25, 0.5, 1.0),
    bucket_ms: int = HOUR_MS,
    random_draws: int = 20,
) -> dict:
    """Modelled vs realized liquidation notional, next to the baselines a sceptic asks for.

    Hourly sums over the span both cover: Pearson and Spearman correlation (total, long,
    short) of modelled vs realized notional, and of *gross OI churn* (``oi_usd`` per
    candle: sum of |change| per hour) vs realized notional, the activity baseline: if
    churn correlates as well, the model adds nothing beyond "busy hours liquidate more".
    If ``clusters`` (per evaluation point) are given: the share of realized notional within
    +/- x % of a same-side cluster predicted at the last evaluation point *before* the
    liquidation (no look-ahead), and the same share for random levels (the clusters of a
    random other point, moved by the price change), the random-level baseline.
    """
    lt = np.asarray(liq_time_ms, np.int64)
    out: dict[str, Any] = {"realized_orders": int(lt.size)}
    if lt.size == 0:
        out["available"] = False
        return out
    out["available"] = True
    mt = np.asarray(model_time_ms, np.int64)
    t0 = max(int(mt.min()), int(lt.min())) // bucket_ms * bucket_ms
    t1 = min(int(mt.max()), int(lt.max())) // bucket_ms * bucket_ms + bucket_ms
    if t1 <= t0:
        out.update(available=False, reason="model and realized liquidations do not overlap in time")
        return out
    edges = np.arange(t0, t1 + 1, bucket_ms, dtype=np.int64)
    side = np.asarray(liq_side).astype(str)
    notional = np.asarray(liq_notional_usd, float)
    r_long = hourly_sum(lt[side == "long"], notional[side == "long"], edges)
    r_short = hourly_sum(lt[side == "short"], notional[side == "short"], edges)
    m_long = hourly_sum(mt, model_long_usd, edges)
    m_short = hourly_sum(mt, model_short_usd, edges)
    out.update(
        hours=int(edges.size - 1),
        first_ms=int(t0),
        last_ms=int(t1),
        realized_usd=float(r_long.sum() + r_short.sum()),
        modelled_usd=float(m_long.sum() + m_short.sum()),
        pearson=finite_or_none(pearson(m_long + m_short, r_long + r_short)),
        spearman=finite_or_none(spearman(m_long + m_short, r_long + r_short)),
        pearson_long=finite_or_none(pearson(m_long, r_long)),
        pearson_short=finite_or_none(pearson(m_short, r_short)),
        spearman_long=finite_or_none(spearman(m_long, r_long)),
        spearman_short=finite_or_none(spearman(m_short, r_short)),
    )
    if oi_usd is not None:
        churn = gross_churn_usd(mt, oi_usd, edges)
        out["activity_baseline"] = {
            "what": "gross OI churn per hour (sum of |OI change|) vs realized notional",
            "pearson": finite_or_none(pearson(churn, r_long + r_short)),
            "spearman": finite_or_none(spearman(churn, r_long + r_short)),
        }
    if clusters is not None and eval_ms is not None:
        ev = np.asarray(eval_ms, np.int64)
        cs = as_cluster_set(clusters)
        price = np.asarray(liq_price, float)
        shares, rand = {}, {}
        covered_total = 0.0
        rng = np.random.default_rng(0)
        have = np.unique(cs.point) if len(cs) else np.zeros(0, np.int64)
        px = np.asarray(prices, float) if prices is not None else None
        for x in bands_pct:
            shares[f"{x:g}"], covered_total = _band_share(ev, cs, lt, side, price, notional, x)
            if px is not None and have.size > 1:
                draws = [_band_share(ev, cs, lt, side, price, notional, x, prices=px,
                                     shift=have[rng.integers(0, have.size, ev.size)])[0]
                         for _ in range(random_draws)]
                draws = [d for d in draws if d is not None]
                rand[f"{x:g}"] = finite_or_none(float(np.mean(draws))) if draws else None
        out["share_within_pct"] = shares
        if rand:
            out["random_share_within_pct"] = rand
        out["realized_usd_with_prediction"] = float(covered_total)
    return out
