"""Statistics for the backtest: block bootstrap of a lift, Pearson and Spearman correlation (pure)."""

from __future__ import annotations

import functools
import math

import numpy as np

Z95 = 1.959963984540054  # two-sided 95 % normal quantile
N_BOOT = 1000
MIN_BLOCKS = 5  # fewer independent blocks than this: no interval is given


@functools.lru_cache(maxsize=64)
def block_weights(n_blocks: int, *, n_boot: int = N_BOOT, seed: int = 0) -> np.ndarray:
    """(n_boot, n_blocks) resampling counts: each replicate draws ``n_blocks`` blocks with replacement.

    The same ``seed`` and ``n_blocks`` give the same weights, so the model, the placebo
    and the naive levels are resampled together (paired) and their ratio has an interval.
    """
    rng = np.random.default_rng(seed)
    if n_blocks <= 0:
        return np.zeros((n_boot, 0))
    w = rng.multinomial(n_blocks, np.full(n_blocks, 1.0 / n_blocks), size=n_boot).astype(float)
    w.flags.writeable = False  # shared by every caller (cached)
    return w


def bootstrap_lift(hits: np.ndarray, cases: np.ndarray, ref_hits: np.ndarray, ref_n: np.ndarray,
                   weights: np.ndarray) -> np.ndarray:
    """Bootstrap replicates of lift = hits / expected hits, resampling whole blocks of evaluation points.

    Per block ``b`` of the cases: ``hits[b]`` and ``cases[b]``; ``ref_hits[b, d]`` /
    ``ref_n[b, d]``: over the cases of block ``b``, how many reference points of block
    ``d`` reached the case's distance / were eligible (purged neighbours excluded).
    A replicate reweights both the cases *and* the reference points that make up
    their baseline by the same block counts, so the interval carries the baseline's
    own uncertainty and the dependence of hits and baseline on one price path.
    """
    w = weights
    num = w @ hits
    with np.errstate(invalid="ignore", divide="ignore"):
        share = _count_product(w, ref_hits) / _count_product(w, ref_n)  # (boot, blocks): baseline rate of block b's cases
        expected = np.nansum(w * cases[None, :] * share, axis=1)
        return np.where(expected > 0, num / expected, np.nan)


def _count_product(w: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """``w @ counts.T`` for whole-number weights and counts, exactly.

    Every product and partial sum is a whole number no larger than the result, at most
    (largest row sum of ``w``) x (largest count); below 2**24 float32 holds them all
    exactly, so the float32 product (about 2.5x faster) equals the float64 one to the bit.
    """
    if counts.size and w.size and counts.min() >= 0 and float(w.sum(1).max()) * float(counts.max()) < 2**24:
        return (w.astype(np.float32) @ counts.T.astype(np.float32)).astype(float)
    return w @ counts.T


def percentile_ci(reps: np.ndarray) -> tuple[float, float]:
    r = np.asarray(reps, float)
    r = r[np.isfinite(r)]
    if r.size < 10:
        return (math.nan, math.nan)
    lo, hi = np.percentile(r, [2.5, 97.5])
    return (float(lo), float(hi))


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
