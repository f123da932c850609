"""Context series shown beside the heatmap: RSI, funding, open interest (pure numpy, no I/O).

Readers combine a liquidation map with momentum (RSI), positioning cost (funding)
and leverage build-up (open interest), so the asset pages draw those three on the
heatmap's time axis and the home page quotes the current funding and the 24 h
change of open interest. Everything here works on arrays already read from the
store; the store and the charts live elsewhere.

Conventions
    Times are epoch milliseconds (int64), ascending. "At column ends" means the
    last observation strictly before a column's end time (for candles stamped with
    their open time, the candle that closes at the column end), as for the
    heatmap's price line.
"""

from __future__ import annotations

import numpy as np

RSI_PERIOD = 14
FUNDING_BASIS_MS = 8 * 3_600_000  # funding is quoted per 8 h, the interval most venues use


def at_column_ends(time_ms: np.ndarray, values: np.ndarray, col_end_ms: np.ndarray,
                   max_age_ms: int | None = None) -> np.ndarray:
    """Last finite value observed before each column end; NaN where there is none
    (or where the last one is older than ``max_age_ms``, so a stopped feed is a gap,
    not a flat line)."""
    t = np.asarray(time_ms, dtype=np.int64)
    v = np.asarray(values, dtype=float)
    ends = np.asarray(col_end_ms, dtype=np.int64)
    keep = np.isfinite(v)
    t, v = t[keep], v[keep]
    idx = np.searchsorted(t, ends, side="left") - 1
    out = np.full(ends.shape, np.nan)
    ok = idx >= 0
    if max_age_ms is not None and t.size:
        ok &= (ends - t[np.clip(idx, 0, None)]) <= max_age_ms
    out[ok] = v[idx[ok]]
    return out


def rsi(close: np.ndarray, period: int = RSI_PERIOD) -> np.ndarray:
    """Wilder's relative strength index (0-100) of a close series.

    The first value appears at index ``period`` (the seed is the simple mean of
    the first ``period`` gains and losses); earlier values are NaN. NaN closes are
    carried over from the previous close. A series that only rises gives 100, one
    that does not move gives 50.
    """
    c = np.asarray(close, dtype=float).copy()
    out = np.full(c.shape, np.nan)
    finite = np.flatnonzero(np.isfinite(c))
    if finite.size == 0:
        return out
    c = c[finite[0]:]
    for i in range(1, c.size):  # forward-fill gaps so one missing close is not a +-100 % move
        if not np.isfinite(c[i]):
            c[i] = c[i - 1]
    if c.size <= period:
        return out
    d = np.diff(c)
    gain, loss = np.clip(d, 0, None), np.clip(-d, 0, None)
    # Wilder smoothing is a recursive filter: a loop over at most a few thousand chart
    # columns (never over raw candles of long windows) costs well under a millisecond.
    ag, al = gain[:period].mean(), loss[:period].mean()
    res = np.empty(d.size - period + 1)
    res[0] = _rsi_value(ag, al)
    for i in range(period, d.size):
        ag = (ag * (period - 1) + gain[i]) / period
        al = (al * (period - 1) + loss[i]) / period
        res[i - period + 1] = _rsi_value(ag, al)
    out[finite[0] + period:] = res
    return out


def _rsi_value(avg_gain: float, avg_loss: float) -> float:
    if avg_loss == 0:
        return 50.0 if avg_gain == 0 else 100.0
    return 100.0 - 100.0 / (1.0 + avg_gain / avg_loss)


def funding_interval_ms(time_ms: np.ndarray) -> int | None:
    """The venue's funding interval: the median spacing of its funding events (None if < 2)."""
    t = np.unique(np.asarray(time_ms, dtype=np.int64))
    return int(np.median(np.diff(t))) if t.size >= 2 else None


def funding_per_8h(time_ms: np.ndarray, rate: np.ndarray) -> np.ndarray:
    """Funding rates rescaled to an 8-hour basis.

    Venues charge funding every 8 h (Binance, Bybit, OKX) or every hour
    (Hyperliquid, dYdX); the rates are only comparable, and only averageable
    across venues, on one basis. A single event (interval unknown) is returned as is.
    """
    r = np.asarray(rate, dtype=float)
    step = funding_interval_ms(time_ms)
    return r if not step else r * (FUNDING_BASIS_MS / step)


def weighted_mean(values: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Row-wise mean of ``values`` (markets x columns) weighted by ``weights``, ignoring NaN
    pairs; NaN where no market has both a value and a positive weight."""
    v = np.asarray(values, dtype=float)
    w = np.asarray(weights, dtype=float)
    ok = np.isfinite(v) & np.isfinite(w) & (w > 0)
    num = np.where(ok, v * w, 0.0).sum(axis=0)
    den = np.where(ok, w, 0.0).sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / den, np.nan)


def funding_across(funding: np.ndarray, oi: np.ndarray) -> np.ndarray:
    """Funding over markets (markets x columns): weighted by open interest, and an equal-weight
    mean where no market with funding has a known OI (e.g. before OI history begins)."""
    f = np.asarray(funding, dtype=float)
    weighted = weighted_mean(f, oi)
    n = np.isfinite(f).sum(axis=0)
    plain = np.where(n > 0, np.where(np.isfinite(f), f, 0.0).sum(axis=0) / np.maximum(n, 1), np.nan)
    return np.where(np.isfinite(weighted), weighted, plain)


def total(values: np.ndarray) -> np.ndarray:
    """Column sums over markets (markets x columns); NaN only where every market is NaN."""
    v = np.asarray(values, dtype=float)
    return np.where(np.isfinite(v).any(axis=0), np.nansum(v, axis=0), np.nan)
