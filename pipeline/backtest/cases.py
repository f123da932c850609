"""Evaluation points, price paths after them, scored cases and their summaries (pure).

See :mod:`pipeline.backtest` for the method: what a touch is, the baseline and the intervals.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from pipeline.backtest.stats import finite_or_none, lift_interval, wilson

HOUR_MS = 3_600_000
HORIZONS_H: tuple[int, ...] = (4, 24, 72)
MIN_CASES = 30

ABOVE = 1  # cluster above price: short liquidations
BELOW = -1  # cluster below price: long liquidations
SIDE_NAMES = {ABOVE: "above", BELOW: "below"}


class ClusterLike(Protocol):
    """What the backtest needs of a cluster (``pipeline.levels.Cluster`` satisfies it)."""

    side: str  # "short" = above price, "long" = below price
    price_low: float
    price_high: float
    notional_usd: float
    rank: int


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


@dataclass(frozen=True)
class Paths:
    """Price at each evaluation point and the extreme excursions within each horizon.

    ``up_pct[j, h]`` = (highest high in [t_j, t_j + H_h) - price_j) / price_j * 100;
    ``down_pct`` likewise for the lowest low (positive = price fell). NaN where
    the horizon runs past the data or the point has no prior candle.
    """

    eval_ms: np.ndarray
    price: np.ndarray
    horizons_h: tuple[int, ...]
    up_pct: np.ndarray
    down_pct: np.ndarray


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
    price = np.full(m, np.nan)
    up = np.full((m, nh), np.nan)
    dn = np.full((m, nh), np.nan)
    i_now = np.searchsorted(t, ev, side="left")  # first candle opening at/after t
    for j in range(m):
        last = i_now[j] - 1  # the last candle that opened before t: what was known at t
        if last < 0:
            continue
        p = close[last]
        price[j] = p
        for h, hours in enumerate(horizons_h):
            stop = int(ev[j]) + int(hours) * HOUR_MS
            if stop > data_end:
                continue  # horizon runs past the data: skipped, never a miss
            i1 = np.searchsorted(t, stop, side="left")
            if i1 <= i_now[j]:
                continue  # no candle at all in the window (a data gap)
            up[j, h] = (high[i_now[j] : i1].max() - p) / p * 100.0
            dn[j, h] = (p - low[i_now[j] : i1].min()) / p * 100.0
    return Paths(ev, price, tuple(int(h) for h in horizons_h), up, dn)


# --------------------------------------------------------------------------
# Cases
# --------------------------------------------------------------------------
@dataclass
class Cases:
    """One row per (evaluation point, horizon, scored cluster), as parallel arrays."""

    eval_ms: np.ndarray
    horizon_h: np.ndarray
    side: np.ndarray  # +1 above (short liquidations), -1 below (long liquidations)
    rank: np.ndarray
    near_pct: np.ndarray  # distance of the near edge from price, % (<= 0: price already inside)
    width_pct: np.ndarray
    notional_usd: np.ndarray
    confluence: np.ndarray
    hit: np.ndarray  # bool
    baseline: np.ndarray  # probability an arbitrary level at near_pct is touched (leave-one-out)
    meta: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.hit.size)

    def select(self, mask: np.ndarray) -> "Cases":
        return Cases(
            **{k: getattr(self, k)[mask] for k in _CASE_FIELDS},
            meta=self.meta,
        )


_CASE_FIELDS = (
    "eval_ms", "horizon_h", "side", "rank", "near_pct", "width_pct",
    "notional_usd", "confluence", "hit", "baseline",
)


def side_of(cluster: Any) -> int:
    s = getattr(cluster, "side")
    if s in ("short", "above", ABOVE):
        return ABOVE
    if s in ("long", "below", BELOW):
        return BELOW
    raise ValueError(f"unknown cluster side {s!r}")


def _leave_one_out_rate(values: np.ndarray, thresholds: np.ndarray, own: np.ndarray) -> np.ndarray:
    """For each case: share of the *other* points whose excursion reached its threshold."""
    v = np.sort(values[np.isfinite(values)])
    n = v.size
    if n < 2:
        return np.full(thresholds.size, np.nan)
    reached = n - np.searchsorted(v, thresholds - 1e-12, side="left")  # count of v >= threshold
    own_hit = (own >= thresholds - 1e-12).astype(float)
    return (reached - own_hit) / (n - 1)


def evaluate(
    paths: Paths,
    clusters: Sequence[Sequence[ClusterLike]],
    *,
    top_k: int = 3,
    confluence: Sequence[Sequence[float]] | None = None,
) -> Cases:
    """Score the top-``k`` clusters per side at every evaluation point against the realised path.

    ``clusters[j]`` are the clusters predicted at ``paths.eval_ms[j]`` (any
    order; ranked here by ``rank`` then notional). ``confluence[j][i]``, if
    given, is the confluence score of ``clusters[j][i]``.
    """
    if len(clusters) != paths.eval_ms.size:
        raise ValueError("clusters must have one entry per evaluation point")
    rows: dict[str, list] = {k: [] for k in _CASE_FIELDS if k != "baseline"}
    own_exc: list[float] = []
    for j, cl in enumerate(clusters):
        p = paths.price[j]
        if not np.isfinite(p) or not cl:
            continue
        conf = confluence[j] if confluence is not None else [getattr(c, "confluence", 0.0) for c in cl]
        for side in (ABOVE, BELOW):
            mine = [(c, conf[i]) for i, c in enumerate(cl) if side_of(c) == side]
            mine.sort(key=lambda ci: (getattr(ci[0], "rank", 0) or 0, -float(ci[0].notional_usd)))
            for r, (c, cf) in enumerate(mine[:top_k], start=1):
                lo, hi = float(c.price_low), float(c.price_high)
                near = (lo - p) / p * 100.0 if side == ABOVE else (p - hi) / p * 100.0
                width = (hi - lo) / p * 100.0
                exc = paths.up_pct[j] if side == ABOVE else paths.down_pct[j]
                for h, hours in enumerate(paths.horizons_h):
                    if not np.isfinite(exc[h]):
                        continue
                    rows["eval_ms"].append(int(paths.eval_ms[j]))
                    rows["horizon_h"].append(hours)
                    rows["side"].append(side)
                    rows["rank"].append(r)
                    rows["near_pct"].append(near)
                    rows["width_pct"].append(width)
                    rows["notional_usd"].append(float(c.notional_usd))
                    rows["confluence"].append(float(cf))
                    # The touch test, in the same % terms as the baseline so both use one rule.
                    rows["hit"].append(bool(exc[h] >= near - 1e-12))
                    own_exc.append(float(exc[h]))
    arr = {
        "eval_ms": np.asarray(rows["eval_ms"], np.int64),
        "horizon_h": np.asarray(rows["horizon_h"], np.int64),
        "side": np.asarray(rows["side"], np.int64),
        "rank": np.asarray(rows["rank"], np.int64),
        "near_pct": np.asarray(rows["near_pct"], float),
        "width_pct": np.asarray(rows["width_pct"], float),
        "notional_usd": np.asarray(rows["notional_usd"], float),
        "confluence": np.asarray(rows["confluence"], float),
        "hit": np.asarray(rows["hit"], bool),
    }
    own = np.asarray(own_exc, float)
    base = np.full(own.size, np.nan)
    for h, hours in enumerate(paths.horizons_h):
        for side, exc in ((ABOVE, paths.up_pct[:, h]), (BELOW, paths.down_pct[:, h])):
            m = (arr["horizon_h"] == hours) & (arr["side"] == side)
            if m.any():
                base[m] = _leave_one_out_rate(exc, arr["near_pct"][m], own[m])
    arr["baseline"] = base
    valid = paths.price[np.isfinite(paths.price)]
    return Cases(
        **arr,
        meta={
            "eval_points": int(np.isfinite(paths.price).sum()),
            "first_eval_ms": int(paths.eval_ms[0]) if paths.eval_ms.size else None,
            "last_eval_ms": int(paths.eval_ms[-1]) if paths.eval_ms.size else None,
            "top_k": top_k,
            "price_min": float(valid.min()) if valid.size else None,
            "price_max": float(valid.max()) if valid.size else None,
        },
    )


# --------------------------------------------------------------------------
# Summaries
# --------------------------------------------------------------------------
def rate_row(cases: Cases, *, horizon_h: int, step_h: float = 1.0, min_cases: int = MIN_CASES, **labels) -> dict:
    """Hit rate vs baseline for one group of cases, with intervals; skipped if too few cases."""
    n = len(cases)
    row: dict[str, Any] = {"horizon_h": int(horizon_h), **labels, "cases": n}
    # Overlapping windows: a point's horizon shares (H/step - 1) of its steps with the next one.
    n_eff = n / max(1.0, horizon_h / step_h)
    row["n_eff"] = round(n_eff, 1)
    if n == 0:
        row.update(skipped=True, reason=f"no evaluation point has {horizon_h} h of data after it")
        return row
    if n < min_cases:
        row.update(skipped=True, reason=f"fewer than {min_cases} cases")
        return row
    hits = int(cases.hit.sum())
    p1 = hits / n
    b = cases.baseline[np.isfinite(cases.baseline)]
    p0 = float(b.mean()) if b.size else math.nan
    row.update(
        skipped=False,
        hits=hits,
        hit_rate=p1,
        hit_ci=list(wilson(hits, n)),
        hit_ci_eff=list(wilson(p1 * n_eff, n_eff)),
        baseline_rate=finite_or_none(p0),
        baseline_ci=list(wilson(p0 * n, n)) if math.isfinite(p0) else [None, None],
        baseline_ci_eff=list(wilson(p0 * n_eff, n_eff)) if math.isfinite(p0) else [None, None],
        lift=finite_or_none(p1 / p0) if p0 and math.isfinite(p0) and p0 > 0 else None,
        lift_ci_eff=[finite_or_none(v) for v in lift_interval(p1, n_eff, p0, n_eff)] if math.isfinite(p0) else [None, None],
        median_near_pct=float(np.median(cases.near_pct)),
        median_width_pct=float(np.median(cases.width_pct)),
    )
    return row


def summarize(cases: Cases, *, step_h: float = 1.0, min_cases: int = MIN_CASES,
              horizons_h: Sequence[int] | None = None) -> list[dict]:
    """Rows per horizon x side (above, below, both).

    ``horizons_h``: horizons to report even when they have no case at all (e.g.
    72 h on two days of data), so the page can say they were skipped.
    """
    out = []
    for hours in sorted(set(cases.horizon_h.tolist()) | set(horizons_h or ())):
        hm = cases.horizon_h == hours
        for name, m in (("above", cases.side == ABOVE), ("below", cases.side == BELOW), ("both", np.ones_like(hm))):
            out.append(rate_row(cases.select(hm & m), horizon_h=hours, step_h=step_h, min_cases=min_cases, side=name))
    return out


def by_confluence(
    cases: Cases, *, buckets: Sequence[tuple[str, float, float]] = (("0", 0, 0.5), ("1", 0.5, 1.5), ("2+", 1.5, math.inf)),
    step_h: float = 1.0, min_cases: int = MIN_CASES,
) -> list[dict]:
    """Hit rate vs baseline per horizon and confluence bucket (both sides pooled)."""
    out = []
    for hours in sorted(set(cases.horizon_h.tolist())):
        hm = cases.horizon_h == hours
        for name, lo, hi in buckets:
            m = hm & (cases.confluence >= lo) & (cases.confluence < hi)
            out.append(rate_row(cases.select(m), horizon_h=hours, step_h=step_h, min_cases=min_cases, confluence=name))
    return out


def by_rank(cases: Cases, *, step_h: float = 1.0, min_cases: int = MIN_CASES) -> list[dict]:
    """Hit rate vs baseline per horizon and cluster rank (both sides pooled)."""
    out = []
    for hours in sorted(set(cases.horizon_h.tolist())):
        for r in sorted(set(cases.rank.tolist())):
            m = (cases.horizon_h == hours) & (cases.rank == r)
            out.append(rate_row(cases.select(m), horizon_h=hours, step_h=step_h, min_cases=min_cases, rank=int(r)))
    return out


