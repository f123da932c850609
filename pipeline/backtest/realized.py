"""Realized liquidations (where an exchange publishes them) against the modelled ones (pure)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from pipeline.backtest.cases import ABOVE, BELOW, HOUR_MS, ClusterLike, side_of
from pipeline.backtest.stats import finite_or_none, pearson, spearman


def hourly_sum(time_ms: np.ndarray, values: np.ndarray, edges_ms: np.ndarray) -> np.ndarray:
    """Sum of ``values`` per bucket [edges[i], edges[i+1])."""
    t = np.asarray(time_ms, np.int64)
    v = np.nan_to_num(np.asarray(values, float))
    idx = np.searchsorted(edges_ms, t, side="right") - 1
    ok = (idx >= 0) & (idx < len(edges_ms) - 1)
    return np.bincount(idx[ok], weights=v[ok], minlength=len(edges_ms) - 1)


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
    clusters: Sequence[Sequence[ClusterLike]] | None = None,
    bands_pct: Sequence[float] = (0.25, 0.5, 1.0),
    bucket_ms: int = HOUR_MS,
) -> dict:
    """Modelled vs realized liquidation notional.

    Hourly sums over the span both cover: Pearson and Spearman correlation
    (total, long, short). If ``clusters`` (per evaluation point) are given: the
    share of realized notional within +/- x % of a same-side cluster predicted
    at the last evaluation point *before* the liquidation (no look-ahead).
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
    if clusters is not None and eval_ms is not None:
        ev = np.asarray(eval_ms, np.int64)
        price = np.asarray(liq_price, float)
        j = np.searchsorted(ev, lt, side="right") - 1  # last prediction made at or before the order
        shares = {}
        covered_total = 0.0
        for x in bands_pct:
            inside = 0.0
            total = 0.0
            for i in range(lt.size):
                if j[i] < 0 or not clusters[j[i]]:
                    continue
                want = BELOW if side[i] == "long" else ABOVE
                total += notional[i]
                for c in clusters[j[i]]:
                    if side_of(c) == want and c.price_low * (1 - x / 100) <= price[i] <= c.price_high * (1 + x / 100):
                        inside += notional[i]
                        break
            shares[f"{x:g}"] = finite_or_none(inside / total) if total > 0 else None
            covered_total = total
        out["share_within_pct"] = shares
        out["realized_usd_with_prediction"] = float(covered_total)
    return out


