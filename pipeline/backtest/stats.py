"""Statistics for the backtest: Wilson and ratio intervals, Pearson and Spearman correlation (pure)."""

from __future__ import annotations

import math

import numpy as np

Z95 = 1.959963984540054  # two-sided 95 % normal quantile


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



def finite_or_none(x: float) -> float | None:
    return None if x is None or not math.isfinite(x) else float(x)
