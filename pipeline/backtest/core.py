"""Backtest: how often does price reach the predicted liquidation clusters? (pure, no I/O)

No vendor of liquidation heatmaps publishes this, so liqmap measures it and
publishes the figures with their uncertainty.

Method
------
*Evaluation points.* Every ``step`` (default one hour; widened to whole hours
when a long history would exceed ``max_eval_points``) after a warm-up (default
6 h, so the book has filled), the model's active level book is taken as it
stood at that moment (the grid column ending at the point: only candles that
opened before it, so nothing from the future leaks in), cut to +/- 15 % of
price in 400 bins of equal width *in %* (geometric edges, so the resolution
does not drift with the price level; 15 % is the site's padding for its
1-month window), and :func:`pipeline.levels.find_clusters` ranks the clusters
above price (short liquidations) and below price (long liquidations). The top
``k`` (default 3) clusters on each side are scored. The reference price is the
close of the last candle before the point.

*Touch.* A cluster **above** price is hit within horizon ``H`` (4 h, 24 h, 72 h)
when the highest high of the candles opening in ``[t, t + H)`` reaches the
cluster's ``price_low`` (its near edge); a cluster **below** price is hit when
the lowest low reaches its ``price_high``. Points whose horizon runs past the
end of the data are skipped for that horizon (never counted as misses).

*Baseline (the principled part).* Near levels are hit more often for trivial
reasons, and only the near edge of a cluster matters for a touch. A level at
the *same* signed near-edge distance at the *same* time would be hit exactly
when the cluster is (the test is a function of that distance alone), so it
cannot serve as a baseline; a mirror level on the other side confounds the
comparison with the sample's trend. liqmap's baseline is therefore
**distance-, side- and horizon-matched, time-randomised**: for a cluster whose
near edge is ``d`` % above price, the baseline is the fraction of *all other*
evaluation points at which price rose by at least ``d`` % within the same
horizon (likewise below). It is the touch probability of an arbitrary level at
that distance in this very sample, so it absorbs the sample's volatility and
drift; lift = hit rate / baseline rate then measures only what the model adds
by *where and when* it puts its clusters. Lift near 1 means the clusters are
no better than any level at the same distance; above 1, price visits the
model's clusters more often than chance.

*Uncertainty.* Rates carry Wilson 95 % score intervals. Hourly points with
24 h or 72 h horizons overlap heavily and the ``k`` clusters of one point are
correlated, so cases are not independent. Every row also states an effective
independent-case count ``n_eff = cases / (horizon / step)`` and an interval
computed with it (wider, more honest). Rows with fewer than ``min_cases``
cases are reported as skipped, not as noisy numbers.

*Windows and confluence.* The site draws each timeframe window from one model
run with its own price axis (window low/high plus a padding, linear bins).
:func:`window_clusters` reproduces that at (up to ``window_max_points``, evenly
spread) evaluation points, so each window's clusters are backtested as drawn
(``by_timeframe``). A cluster's confluence is the number of *other* windows
with an overlapping same-side cluster (strict overlap, as
``levels.Cluster.overlaps``); the widest window's clusters are bucketed by it
(0, 1, 2+) and compared with the same baseline.

*Realized liquidations* (where an exchange publishes them, e.g. OKX): modelled
vs realized liquidation notional per hour (Pearson and Spearman correlation)
and the share of realized notional that occurred within +/- x % of a cluster
predicted beforehand on the matching side.

*Variants.* :func:`run_variants` backtests side_split (equal / taker / candle;
taker only where taker-buy volume exists) x leverage mix (registry / tilted to
low / tilted to high leverage) x fade (none / 24 h / 72 h half-life) and ranks
them by :data:`SCORE_TEXT`; the registry default is only replaced when a
variant's whole dependence-adjusted interval clears it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

HOUR_MS = 3_600_000
HORIZONS_H: tuple[int, ...] = (4, 24, 72)
MIN_CASES = 30
Z95 = 1.959963984540054  # two-sided 95 % normal quantile

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
# Statistics
# --------------------------------------------------------------------------
def wilson(k: float, n: float, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval for ``k`` successes in ``n`` trials (``k`` may be fractional).

    Chosen over the normal (Wald) interval because it stays inside [0, 1] and
    behaves at 0 or n successes, which happen often with few cases.
    Returns (nan, nan) when ``n`` <= 0.
    """
    if n <= 0:
        return (math.nan, math.nan)
    p = min(max(k / n, 0.0), 1.0)
    z2 = z * z
    denom = 1.0 + z2 / n
    centre = (p + z2 / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / denom
    lo, hi = max(0.0, centre - half), min(1.0, centre + half)
    # Exact bounds at the extremes (the formula gives them up to rounding).
    return (0.0 if k <= 0 else lo, 1.0 if k >= n else hi)


def lift_interval(p1: float, n1: float, p0: float, n0: float, z: float = Z95) -> tuple[float, float]:
    """Katz log interval for the ratio p1/p0 of two proportions (nan if either count is 0)."""
    x1, x0 = p1 * n1, p0 * n0
    if not (x1 > 0 and x0 > 0 and n1 > 0 and n0 > 0):
        return (math.nan, math.nan)
    se = math.sqrt(max(1 / x1 - 1 / n1 + 1 / x0 - 1 / n0, 0.0))
    r = p1 / p0
    return (r * math.exp(-z * se), r * math.exp(z * se))


def pearson(x: np.ndarray, y: np.ndarray) -> float:
    """Pearson correlation over pairs where both are finite (nan if < 3 pairs or no variance)."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    ok = np.isfinite(x) & np.isfinite(y)
    x, y = x[ok], y[ok]
    if x.size < 3:
        return math.nan
    dx, dy = x - x.mean(), y - y.mean()
    den = math.sqrt(float(dx @ dx) * float(dy @ dy))
    return float(dx @ dy) / den if den > 0 else math.nan


def rankdata(a: np.ndarray) -> np.ndarray:
    """Ranks 1..n with ties given their average rank (as scipy's ``rankdata``)."""
    a = np.asarray(a, float)
    order = np.argsort(a, kind="mergesort")
    s = a[order]
    # Start index of each run of equal values; every member gets the run's mean rank.
    starts = np.r_[0, np.flatnonzero(s[1:] != s[:-1]) + 1]
    ends = np.r_[starts[1:], s.size]
    avg = (starts + ends + 1) / 2.0
    ranks = np.empty(a.size)
    ranks[order] = np.repeat(avg, ends - starts)
    return ranks


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    """Spearman rank correlation (Pearson on tie-averaged ranks) over finite pairs."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    ok = np.isfinite(x) & np.isfinite(y)
    if ok.sum() < 3:
        return math.nan
    return pearson(rankdata(x[ok]), rankdata(y[ok]))


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


def _side_of(cluster: Any) -> int:
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
            mine = [(c, conf[i]) for i, c in enumerate(cl) if _side_of(c) == side]
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
def _fin(x: float) -> float | None:
    return None if x is None or not math.isfinite(x) else float(x)


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
        baseline_rate=_fin(p0),
        baseline_ci=list(wilson(p0 * n, n)) if math.isfinite(p0) else [None, None],
        baseline_ci_eff=list(wilson(p0 * n_eff, n_eff)) if math.isfinite(p0) else [None, None],
        lift=_fin(p1 / p0) if p0 and math.isfinite(p0) and p0 > 0 else None,
        lift_ci_eff=[_fin(v) for v in lift_interval(p1, n_eff, p0, n_eff)] if math.isfinite(p0) else [None, None],
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


# --------------------------------------------------------------------------
# Confluence across timeframes
# --------------------------------------------------------------------------
def overlaps(a: ClusterLike, b: ClusterLike, tol_pct: float = 0.0) -> bool:
    """Same side and price ranges overlap (each widened by ``tol_pct`` % of its own mid).

    Strict inequalities, as ``levels.Cluster.overlaps``: clusters that merely
    share an edge (adjacent bins) do not count.
    """
    if _side_of(a) != _side_of(b):
        return False
    wa = (a.price_low + a.price_high) / 2 * tol_pct / 100.0
    wb = (b.price_low + b.price_high) / 2 * tol_pct / 100.0
    return a.price_low - wa < b.price_high + wb and b.price_low - wb < a.price_high + wa


def confluence_scores(
    by_timeframe: Mapping[str, Sequence[ClusterLike]], tol_pct: float = 0.0
) -> dict[str, list[int]]:
    """For each timeframe's clusters: how many *other* timeframes have an overlapping cluster."""
    out: dict[str, list[int]] = {}
    for tf, cl in by_timeframe.items():
        scores = []
        for c in cl:
            scores.append(
                sum(
                    1
                    for other, ocl in by_timeframe.items()
                    if other != tf and any(overlaps(c, o, tol_pct) for o in ocl)
                )
            )
        out[tf] = scores
    return out


def confluence_against(
    primary: Sequence[ClusterLike], others: Sequence[Sequence[ClusterLike]], tol_pct: float = 0.0
) -> list[int]:
    """Confluence of each primary cluster against a list of other timeframes' cluster lists."""
    return [sum(1 for ocl in others if any(overlaps(c, o, tol_pct) for o in ocl)) for c in primary]


# --------------------------------------------------------------------------
# Realized liquidations
# --------------------------------------------------------------------------
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
        pearson=_fin(pearson(m_long + m_short, r_long + r_short)),
        spearman=_fin(spearman(m_long + m_short, r_long + r_short)),
        pearson_long=_fin(pearson(m_long, r_long)),
        pearson_short=_fin(pearson(m_short, r_short)),
        spearman_long=_fin(spearman(m_long, r_long)),
        spearman_short=_fin(spearman(m_short, r_short)),
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
                    if _side_of(c) == want and c.price_low * (1 - x / 100) <= price[i] <= c.price_high * (1 + x / 100):
                        inside += notional[i]
                        break
            shares[f"{x:g}"] = _fin(inside / total) if total > 0 else None
            covered_total = total
        out["share_within_pct"] = shares
        out["realized_usd_with_prediction"] = float(covered_total)
    return out


# --------------------------------------------------------------------------
# Variants and evidence-chosen defaults
# --------------------------------------------------------------------------
# Alternative leverage mixes tried against the registry's: one tilted towards
# low leverage (far levels), one towards high leverage (near levels). Weights
# are applied to the asset's own tiers by rank (lowest leverage first), so they
# fit any asset with 4 or 5 tiers.
LEVERAGE_MIXES: dict[str, tuple[float, ...]] = {
    "low-leverage": (0.35, 0.30, 0.20, 0.10, 0.05),
    "high-leverage": (0.05, 0.15, 0.25, 0.30, 0.25),
}
SIDE_SPLITS = ("equal", "taker", "candle")
FADES: tuple[float | None, ...] = (None, 24.0, 72.0)
SCORE_HORIZON_H = 24
SCORE_TEXT = (
    "score = pooled lift at 24 h (both sides, all top-k clusters: hits / baseline-expected hits, "
    "i.e. the case-weighted mean lift), with a dependence-adjusted 95 % interval (Katz log ratio "
    "on the effective case count). A variant replaces the current default only if its interval lies "
    "entirely above the default's point estimate and above 1; otherwise the default stays, because "
    "the data cannot tell them apart."
)


def _fit_weights(mix: Sequence[float], n: int) -> tuple[float, ...]:
    """Take the first ``n`` weights of a mix (lowest leverage first) and renormalise to sum 1."""
    w = np.asarray(mix[:n], float) if n <= len(mix) else np.r_[mix, np.full(n - len(mix), mix[-1])]
    w = w / w.sum()
    return tuple(float(x) for x in w)


def variant_params(base: Any, *, has_taker: bool = True) -> list[tuple[str, Any, dict]]:
    """(name, params, description) for every variant, the registry default first.

    ``base`` is a ``model.ModelParams``; variants replace ``side_split``,
    ``weights`` and ``fade_half_life_hours``. ``taker`` is dropped when the
    market has no taker-buy volume (it would silently equal ``equal``).
    """
    import dataclasses

    order = np.argsort(np.asarray(base.leverage, float))
    mixes: dict[str, tuple[float, ...]] = {"registry": tuple(base.weights)}
    for name, mix in LEVERAGE_MIXES.items():
        w = _fit_weights(mix, len(order))
        full = [0.0] * len(order)
        for rank, idx in enumerate(order):
            full[idx] = w[rank]
        mixes[name] = tuple(full)
    out: list[tuple[str, Any, dict]] = []
    for split in SIDE_SPLITS:
        if split == "taker" and not has_taker:
            continue
        for mix_name, weights in mixes.items():
            for fade in FADES:
                params = dataclasses.replace(base, side_split=split, weights=weights, fade_half_life_hours=fade)
                name = f"{split}/{mix_name}/fade-{'none' if fade is None else f'{fade:g}h'}"
                desc = {"side_split": split, "leverage_mix": mix_name,
                        "weights": [round(w, 4) for w in weights],
                        "fade_half_life_hours": fade}
                out.append((name, params, desc))
    # The registry's own configuration goes first so it is the reference in the table.
    base_name = None
    for name, params, desc in out:
        if (params.side_split == base.side_split and tuple(params.weights) == tuple(base.weights)
                and params.fade_half_life_hours == base.fade_half_life_hours):
            base_name = name
    out.sort(key=lambda v: v[0] != base_name)
    return out


def pooled_score(cases: Cases, *, horizon_h: int = SCORE_HORIZON_H, step_h: float = 1.0,
                 min_cases: int = MIN_CASES) -> dict:
    """The variant score: pooled lift at ``horizon_h`` with its dependence-adjusted interval."""
    row = rate_row(cases.select(cases.horizon_h == horizon_h), horizon_h=horizon_h, step_h=step_h,
                   min_cases=min_cases, side="both")
    return {
        "cases": row["cases"],
        "n_eff": row["n_eff"],
        "score": row.get("lift"),
        "score_ci": row.get("lift_ci_eff", [None, None]),
        "hit_rate": row.get("hit_rate"),
        "baseline_rate": row.get("baseline_rate"),
        "skipped": row.get("skipped", True),
    }


def rank_variants(rows: Sequence[dict], *, default_name: str) -> dict:
    """Rank variant rows (each with ``name`` and ``pooled_score`` output) and choose the default.

    Returns {"score": text, "table": rows sorted best first, "winner": name,
    "best": name, "why": text}.
    """
    table = sorted(rows, key=lambda r: (r.get("score") is None, -(r.get("score") or 0.0)))
    default = next((r for r in rows if r["name"] == default_name), None)
    scored = [r for r in table if r.get("score") is not None and not r.get("skipped")]
    if not scored:
        return {"score": SCORE_TEXT, "table": table, "winner": default_name, "best": None,
                "why": f"no variant has {MIN_CASES}+ cases at {SCORE_HORIZON_H} h; keeping the registry default."}
    best = scored[0]
    d_score = default.get("score") if default else None
    lo = best["score_ci"][0] if best.get("score_ci") else None
    if best["name"] == default_name:
        why = (f"the registry default scores highest (lift {best['score']:.2f}); it stays.")
        winner = default_name
    elif lo is not None and lo > 1.0 and (d_score is None or lo > d_score):
        why = (f"{best['name']} scores lift {best['score']:.2f} (95 % interval {lo:.2f}-{best['score_ci'][1]:.2f}), "
               f"entirely above the default's {d_score if d_score is None else f'{d_score:.2f}'} and above 1.")
        winner = best["name"]
    else:
        ds = "n/a" if d_score is None else f"{d_score:.2f}"
        ci = "n/a" if lo is None else f"{lo:.2f}-{best['score_ci'][1]:.2f}"
        why = (f"best variant {best['name']} scores lift {best['score']:.2f} (95 % interval {ci}) vs the default's "
               f"{ds}; the interval does not clear the default and 1, so the data cannot tell them apart and "
               f"the registry default stays.")
        winner = default_name
    return {"score": SCORE_TEXT, "table": table, "winner": winner, "best": best["name"], "why": why}


# --------------------------------------------------------------------------
# Prediction: model book -> clusters at each evaluation point
# --------------------------------------------------------------------------
def price_edges(price: float, *, bins: int, span_pct: float) -> np.ndarray:
    """Bin edges centred on ``price``, +/- ``span_pct`` %, so bin width is constant in % over time."""
    return price * (1.0 + np.linspace(-span_pct, span_pct, bins + 1) / 100.0)


def clusters_from_grid(
    grid: np.ndarray, edges_per_point: Sequence[np.ndarray], prices: np.ndarray,
    find_clusters: Callable[..., list], *, top: int,
) -> list[list]:
    """``grid`` is (2, m, k) per the model contract; one find_clusters call per column."""
    out = []
    for j in range(grid.shape[1]):
        p = prices[j]
        if not np.isfinite(p):
            out.append([])
            continue
        col = grid[0, j] + grid[1, j]
        out.append(list(find_clusters(col, edges_per_point[j], float(p), top=top)) if col.any() else [])
    return out


def geometric_edges(prices: np.ndarray, *, bins: int, span_pct: float) -> np.ndarray:
    """One set of bin edges for every evaluation point: geometric, so a bin is the same
    width *in %* at every price, covering each point's +/- ``span_pct`` % window.

    ``bins`` is the number of bins across one point's window (the site's
    ``price_bins``), so clusters have the resolution a reader sees.
    """
    p = np.asarray(prices, float)
    p = p[np.isfinite(p) & (p > 0)]
    ratio = 1.0 + 2.0 * span_pct / 100.0 / bins
    lo = p.min() * (1 - span_pct / 100.0) / ratio
    hi = p.max() * (1 + span_pct / 100.0) * ratio
    k = int(math.ceil(math.log(hi / lo) / math.log(ratio)))
    return lo * ratio ** np.arange(k + 1)


def predict_clusters(
    result: Any, eval_ms: np.ndarray, prices: np.ndarray, *, bins: int = 400, span_pct: float = 15.0,
    top: int = 5, find_clusters: Callable[..., list] | None = None, chunk: int = 256,
) -> list[list]:
    """Clusters at each evaluation point from a ``model.ModelResult``.

    Column ``j`` of ``result.grid`` at ``eval_ms[j]`` is the book after the last
    candle that opened before the point (the same candle whose close is the
    reference price), cut to +/- ``span_pct`` % around the price and handed to
    ``levels.find_clusters``. Columns are computed in chunks to bound memory.
    """
    if find_clusters is None:
        from pipeline.model.levels import find_clusters
    ev = np.asarray(eval_ms, np.int64)
    prices = np.asarray(prices, float)
    out: list[list] = [[] for _ in range(ev.size)]
    ok = np.flatnonzero(np.isfinite(prices) & (prices > 0))
    if ok.size == 0:
        return out
    edges = geometric_edges(prices[ok], bins=bins, span_pct=span_pct)
    for s0 in range(0, ok.size, chunk):
        idx = ok[s0 : s0 + chunk]
        g = result.grid(ev[idx], edges)
        for c, j in enumerate(idx):
            p = prices[j]
            i0 = max(int(np.searchsorted(edges, p * (1 - span_pct / 100.0), side="right")) - 1, 0)
            i1 = min(int(np.searchsorted(edges, p * (1 + span_pct / 100.0), side="left")), edges.size - 1)
            col = g[0, c, i0:i1] + g[1, c, i0:i1]
            if col.any():
                out[j] = list(find_clusters(col, edges[i0 : i1 + 1], float(p), top=top))
    return out


@dataclass(frozen=True)
class Settings:
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
    window_max_points: int = 720  # per-window clusters cost one book per point: thinned evenly beyond this

    def as_dict(self) -> dict:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def effective_step_h(time_ms: np.ndarray, settings: "Settings") -> float:
    """The evaluation step: ``settings.step_h``, widened to whole hours so that at most
    ``max_eval_points`` points cover the history (cost grows with points x variants)."""
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


# Price padding per window as the site draws it (pipeline/build.py PRICE_PAD); a copy so
# this module stays importable without the build's chart stack. Callers may pass the build's.
DEFAULT_PADS = {"12h": 0.05, "24h": 0.06, "3d": 0.08, "1w": 0.10, "2w": 0.12, "1M": 0.15, "3M": 0.2,
                "6M": 0.25, "1y": 0.3}


def window_clusters(
    result: Any, candles: Mapping[str, np.ndarray], eval_ms: np.ndarray, prices: np.ndarray,
    timeframes_ms: Mapping[str, int], *, points: np.ndarray, bins: int = 400,
    pads: Mapping[str, float] | None = None, top: int = 5, find_clusters: Callable[..., list] | None = None,
) -> dict[str, list[list]]:
    """Clusters of every timeframe window at ``points``, drawn as the site draws them.

    The site runs the model once and lets a window change only the price axis:
    linear bins from the window's lowest low to highest high, padded by
    ``pads[tf]``. Windows that fit entirely before the point are used, plus the
    first longer one as a partial window from the first candle (as the site
    does). ``result.book(t - 1)`` is the book the grid column ending at ``t``
    shows. Returns {timeframe: clusters per evaluation point} ([] where unused).
    """
    if find_clusters is None:
        from pipeline.model.levels import find_clusters
    pads = dict(DEFAULT_PADS if pads is None else pads)
    t = np.asarray(candles["time_ms"], np.int64)
    high, low = np.asarray(candles["high"], float), np.asarray(candles["low"], float)
    ev = np.asarray(eval_ms, np.int64)
    order = sorted(timeframes_ms, key=timeframes_ms.__getitem__)
    out: dict[str, list[list]] = {tf: [[] for _ in range(ev.size)] for tf in order}
    if t.size == 0:
        return out
    for j in points:
        p = prices[j]
        if not np.isfinite(p):
            continue
        end = int(ev[j])
        span = end - int(t[0])
        full = [tf for tf in order if timeframes_ms[tf] <= span]
        longer = [tf for tf in order if timeframes_ms[tf] > span]
        windows = [(tf, False) for tf in full] + ([(longer[0], True)] if longer else [])
        b = result.book(end - 1)
        bp, bv = b["price"], b["notional_usd"]
        i_end = int(np.searchsorted(t, end, side="left"))
        for tf, partial in windows:
            t0 = int(t[0]) if partial else end - int(timeframes_ms[tf])
            i_start = int(np.searchsorted(t, t0, side="left"))
            if i_end <= i_start:
                continue
            pad = pads.get(tf, 0.1)
            lo = float(np.nanmin(low[i_start:i_end])) * (1 - pad)
            hi = float(np.nanmax(high[i_start:i_end])) * (1 + pad)
            edges = np.linspace(lo, hi, bins + 1)
            col, _ = np.histogram(bp, bins=edges, weights=bv)
            if col.any():
                out[tf][j] = list(find_clusters(col, edges, float(p), top=top))
    return out


def _evaluation_grid(candles: Mapping[str, np.ndarray], settings: Settings):
    """Candle times, candle interval, evaluation step (h), evaluation times and the price paths after them."""
    t = np.asarray(candles["time_ms"], np.int64)
    iv = candle_interval_ms(t)
    step_h = effective_step_h(t, settings)
    ev = eval_times(t, step_ms=int(step_h * HOUR_MS), warmup_ms=int(settings.warmup_h * HOUR_MS),
                    interval_ms=iv)
    paths = price_paths(t, candles["high"], candles["low"], candles["close"], ev,
                        horizons_h=settings.horizons_h, interval_ms=iv)
    return t, iv, step_h, ev, paths


def backtest_market(
    candles: Mapping[str, np.ndarray],
    oi_usd: np.ndarray,
    params: Any,
    *,
    settings: Settings = Settings(),
    timeframes_ms: Mapping[str, int] | None = None,
    pads: Mapping[str, float] | None = None,
    liquidations: Mapping[str, np.ndarray] | None = None,
) -> dict:
    """Run the model over a market's history and backtest its clusters (pure; arrays in, dict out).

    ``candles``: arrays ``time_ms, open, high, low, close`` (+ optional
    ``volume, taker_buy_volume``) oldest first; ``oi_usd`` aligned to candles
    (``model.align_oi``). ``timeframes_ms``: windows for confluence (those longer
    than the data are left out). ``liquidations``: realized orders (``time_ms,
    side, price, notional_usd``) or None.
    """
    from pipeline.model import book as model

    t, iv, step_h, ev, paths = _evaluation_grid(candles, settings)
    res = _run_model(model, candles, oi_usd, params)
    clusters = predict_clusters(res, ev, paths.price, bins=settings.price_bins, span_pct=settings.span_pct,
                                top=max(settings.top_k, 5))

    # Timeframe windows as the site draws them: each window's own clusters are backtested
    # (by_timeframe), and the widest window's clusters are scored for confluence with the others.
    conf = None
    by_tf_rows: list[dict] = []
    conf_rows: list[dict] = []
    used_tfs: list[str] = []
    n_conf_points = 0
    w_step = step_h
    if timeframes_ms:
        valid = np.flatnonzero(np.isfinite(paths.price))
        stride = max(1, math.ceil(valid.size / max(settings.window_max_points, 1)))
        points = valid[::stride]  # spread over the whole history rather than its end
        n_conf_points = int(points.size)
        w_step = step_h * stride
        per_tf = window_clusters(res, candles, ev, paths.price, timeframes_ms, points=points,
                                 bins=settings.price_bins, pads=pads, top=max(settings.top_k, 5))
        used_tfs = [tf for tf, cl in per_tf.items() if any(cl)]
        for tf in used_tfs:
            tf_cases = evaluate(paths, per_tf[tf], top_k=settings.top_k)
            for r in summarize(tf_cases, step_h=w_step, min_cases=settings.min_cases,
                               horizons_h=settings.horizons_h):
                if r["side"] == "both":
                    by_tf_rows.append({"timeframe": tf, **r})
        widest, wconf = [], []
        for j in range(ev.size):
            avail = [tf for tf in used_tfs if per_tf[tf][j]]
            if not avail:
                widest.append([])
                wconf.append([])
                continue
            ref = avail[-1]  # used_tfs is sorted shortest first: the widest window drawn at this point
            widest.append(per_tf[ref][j])
            wconf.append(confluence_against(per_tf[ref][j], [per_tf[tf][j] for tf in avail if tf != ref]))
        if len(used_tfs) > 1:
            w_cases = evaluate(paths, widest, top_k=settings.top_k, confluence=wconf)
            conf_rows = by_confluence(w_cases, step_h=w_step, min_cases=settings.min_cases)

    cases = evaluate(paths, clusters, top_k=settings.top_k, confluence=conf)
    summary = summarize(cases, step_h=step_h, min_cases=settings.min_cases,
                        horizons_h=settings.horizons_h)
    out: dict[str, Any] = {
        "settings": settings.as_dict(),
        "range": {
            "first_candle_ms": int(t[0]) if t.size else None,
            "last_candle_ms": int(t[-1]) if t.size else None,
            "candles": int(t.size),
            "candle_interval_s": iv // 1000,
            "eval_points": cases.meta["eval_points"],
            "first_eval_ms": cases.meta["first_eval_ms"],
            "last_eval_ms": cases.meta["last_eval_ms"],
            "hours": round((int(t[-1]) + iv - int(t[0])) / HOUR_MS, 1) if t.size else 0.0,
        },
        "summary": summary,
        "by_rank": by_rank(cases, step_h=step_h, min_cases=settings.min_cases),
        "by_timeframe": by_tf_rows,
        "confluence": {"timeframes": used_tfs, "points": n_conf_points, "rows": conf_rows},
        "step_h": step_h,
        "window_step_h": w_step if timeframes_ms else None,
        "mean_clusters_per_point": round(
            float(np.mean([len(c) for c in clusters])) if clusters else 0.0, 2),
    }
    if liquidations is not None and np.asarray(liquidations.get("time_ms", [])).size:
        out["realized"] = realized_comparison(
            t, res.liquidations_long_usd, res.liquidations_short_usd,
            liquidations["time_ms"], liquidations["side"], liquidations["price"], liquidations["notional_usd"],
            eval_ms=ev, clusters=clusters, bands_pct=settings.bands_pct,
        )
    else:
        out["realized"] = {"available": False, "realized_orders": 0,
                           "reason": "no realized liquidations stored for this market"}
    out["_cases"] = cases  # for callers that want more cuts; dropped before JSON
    out["_paths"] = paths
    return out


def run_variants(
    candles: Mapping[str, np.ndarray], oi_usd: np.ndarray, base_params: Any, *, settings: Settings = Settings(),
) -> dict:
    """Backtest every variant of :func:`variant_params` and choose the default by :data:`SCORE_TEXT`."""
    from pipeline.model import book as model

    t, iv, step_h, ev, paths = _evaluation_grid(candles, settings)
    tb = candles.get("taker_buy_volume")
    has_taker = tb is not None and bool(np.isfinite(np.asarray(tb, float)).any())
    variants = variant_params(base_params, has_taker=has_taker)
    rows = []
    for name, params, desc in variants:
        res = _run_model(model, candles, oi_usd, params)
        cl = predict_clusters(res, ev, paths.price, bins=settings.price_bins, span_pct=settings.span_pct,
                              top=max(settings.top_k, 5))
        cases = evaluate(paths, cl, top_k=settings.top_k)
        score = pooled_score(cases, step_h=step_h, min_cases=settings.min_cases)
        by_h = {}
        for hours in settings.horizons_h:
            r = rate_row(cases.select(cases.horizon_h == hours), horizon_h=hours, step_h=step_h,
                         min_cases=settings.min_cases, side="both")
            by_h[str(hours)] = {"cases": r["cases"], "hit_rate": r.get("hit_rate"),
                                "baseline_rate": r.get("baseline_rate"), "lift": r.get("lift")}
        rows.append({"name": name, **desc, **score, "by_horizon": by_h})
    ranked = rank_variants(rows, default_name=variants[0][0])
    ranked["default"] = variants[0][0]
    ranked["taker_available"] = has_taker
    return ranked


def to_jsonable(obj: Any) -> Any:
    """Drop private keys (``_cases``) and turn numpy scalars/NaN into JSON values."""
    if isinstance(obj, dict):
        return {k: to_jsonable(v) for k, v in obj.items() if not str(k).startswith("_")}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj
