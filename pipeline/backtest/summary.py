"""Summaries of scored cases: rates, lifts and bootstrap intervals per horizon, side, rank, confluence (pure).

Aggregates are additive, so placebo permutations pool by summing.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from pipeline.backtest.cases import ABOVE, BELOW, MIN_CASES, Cases
from pipeline.backtest.stats import MIN_BLOCKS, block_weights, bootstrap_lift, finite_or_none, percentile_ci


@dataclass
class Agg:
    """Block sums of one group of cases at one horizon; ``+`` pools groups (e.g. placebo runs)."""

    horizon_h: int
    block_h: float
    hits: np.ndarray  # (D,)
    cases: np.ndarray  # (D,)
    ref_hits: np.ndarray  # (D, D): case block x reference block
    ref_n: np.ndarray
    baseline_sum: float
    near: np.ndarray  # near-edge distances (for the median)
    width: np.ndarray

    def __add__(self, o: "Agg") -> "Agg":
        return Agg(self.horizon_h, self.block_h, self.hits + o.hits, self.cases + o.cases,
                   self.ref_hits + o.ref_hits, self.ref_n + o.ref_n, self.baseline_sum + o.baseline_sum,
                   np.r_[self.near, o.near], np.r_[self.width, o.width])

    @property
    def n(self) -> int:
        return int(self.cases.sum())


def aggregate(cases: Cases, horizon_h: int, within: np.ndarray | None = None) -> Agg:
    """Block sums of the cases at ``horizon_h`` (of those where ``within`` is True, if given: the same
    as aggregating ``cases.select(within)``, without copying the per-case reference counts)."""
    hs = tuple(cases.meta.get("horizons_h", ()))
    h = hs.index(horizon_h) if horizon_h in hs else None
    d = int(cases.meta["n_blocks"][h]) if h is not None else 0
    bh = float(cases.meta["block_h"][h]) if h is not None and cases.meta.get("block_h") else float("nan")
    idx = np.flatnonzero(cases.horizon_h == horizon_h if within is None else (cases.horizon_h == horizon_h) & within)
    b = cases.block[idx]
    ref_h = np.zeros((d, d))
    ref_n = np.zeros((d, d))
    if idx.size and d:
        idx = idx[np.argsort(b, kind="stable")]
        b = cases.block[idx]
        used = np.flatnonzero(np.r_[True, b[1:] != b[:-1]])
        # uint16 counts summed in uint32 (exact below 65,537 cases; about twice as fast as int64).
        acc = np.uint32 if idx.size < 65_537 else np.int64
        ref_h[b[used]] = np.add.reduceat(cases.ref_hits[idx, :d], used, axis=0, dtype=acc)
        ref_n[b[used]] = np.add.reduceat(cases.ref_n[idx, :d], used, axis=0, dtype=acc)
    return Agg(int(horizon_h), bh, np.bincount(b, weights=cases.hit[idx].astype(float), minlength=d)[:d],
               np.bincount(b, minlength=d)[:d].astype(float), ref_h, ref_n,
               float(np.nansum(cases.baseline[idx])), cases.near_pct[idx], cases.width_pct[idx])


def rate_row(group: "Cases | Agg", *, horizon_h: int, min_cases: int = MIN_CASES, within: np.ndarray | None = None,
             **labels) -> dict:
    """Hit rate vs baseline for one group, with block-bootstrap 95 % intervals; skipped if too few cases.

    The row's private ``_reps`` (bootstrap replicates of the lift) lets callers compare two
    groups resampled with the same blocks (model vs placebo vs naive). ``within``: only the
    cases of ``group`` (a ``Cases``) where it is True, as ``group.select(within)`` without the copy.
    """
    agg = group if isinstance(group, Agg) else aggregate(group, horizon_h, within)
    n = agg.n
    row: dict[str, Any] = {"horizon_h": int(horizon_h), **labels, "cases": n}
    if n == 0:
        row.update(skipped=True, reason=f"no evaluation point has {horizon_h} h of data after it")
        return row
    if n < min_cases:
        row.update(skipped=True, reason=f"fewer than {min_cases} cases")
        return row
    hits = float(agg.hits.sum())
    p1 = hits / n
    p0 = agg.baseline_sum / n
    blocks = int((agg.cases > 0).sum())
    row.update(skipped=False, hits=int(hits), hit_rate=p1, baseline_rate=finite_or_none(p0),
               lift=finite_or_none(p1 / p0) if p0 > 0 else None,
               blocks=blocks, block_h=agg.block_h,
               median_near_pct=float(np.median(agg.near)), median_width_pct=float(np.median(agg.width)))
    if blocks < MIN_BLOCKS:
        row.update(hit_ci=[None, None], baseline_ci=[None, None], lift_ci=[None, None],
                   ci_reason=f"fewer than {MIN_BLOCKS} blocks of {agg.block_h:g} h: no interval")
        return row
    w = block_weights(agg.hits.size, seed=int(horizon_h))
    reps = bootstrap_lift(agg.hits, agg.cases, agg.ref_hits, agg.ref_n, w)
    with np.errstate(invalid="ignore", divide="ignore"):
        n_rep = w @ agg.cases
        hit_rep = (w @ agg.hits) / n_rep
        base_rep = hit_rep / reps
    row.update(hit_ci=[finite_or_none(x) for x in percentile_ci(hit_rep)],
               baseline_ci=[finite_or_none(x) for x in percentile_ci(base_rep)],
               lift_ci=[finite_or_none(x) for x in percentile_ci(reps)], _reps=reps)
    return row


def ratio_row(a: dict, b: dict) -> dict:
    """a's lift over b's, with the interval of the paired replicates (same blocks resampled)."""
    la, lb = a.get("lift"), b.get("lift")
    out = {"ratio": finite_or_none(la / lb) if la is not None and lb else None, "ratio_ci": [None, None]}
    ra, rb = a.get("_reps"), b.get("_reps")
    if ra is not None and rb is not None and ra.shape == rb.shape:
        with np.errstate(invalid="ignore", divide="ignore"):
            out["ratio_ci"] = [finite_or_none(x) for x in percentile_ci(ra / rb)]
    return out


def summarize(cases: Cases, *, min_cases: int = MIN_CASES, horizons_h: Sequence[int] | None = None) -> list[dict]:
    """Rows per horizon x side (above, below, both).

    ``horizons_h``: horizons to report even when they have no case at all (e.g.
    72 h on two days of data), so the page can say they were skipped.
    """
    out = []
    for hours in sorted(set(cases.horizon_h.tolist()) | set(horizons_h or ())):
        for name, m in (("above", cases.side == ABOVE), ("below", cases.side == BELOW),
                        ("both", np.ones(len(cases), bool))):
            out.append(rate_row(cases, horizon_h=hours, min_cases=min_cases, within=m, side=name))
    return out


def by_confluence(
    cases: Cases, *, buckets: Sequence[tuple[str, float, float]] = (("0", 0, 0.5), ("1", 0.5, 1.5), ("2+", 1.5, math.inf)),
    min_cases: int = MIN_CASES,
) -> list[dict]:
    """Hit rate vs baseline per horizon and confluence bucket (both sides pooled)."""
    out = []
    for hours in sorted(set(cases.horizon_h.tolist())):
        for name, lo, hi in buckets:
            m = (cases.confluence >= lo) & (cases.confluence < hi)
            out.append(rate_row(cases, horizon_h=hours, min_cases=min_cases, within=m, confluence=name))
    return out


def by_rank(cases: Cases, *, min_cases: int = MIN_CASES) -> list[dict]:
    """Hit rate vs baseline per horizon and cluster rank (both sides pooled)."""
    out = []
    for hours in sorted(set(cases.horizon_h.tolist())):
        for r in sorted(set(cases.rank.tolist())):
            out.append(rate_row(cases, horizon_h=hours, min_cases=min_cases, within=cases.rank == r, rank=int(r)))
    return out
