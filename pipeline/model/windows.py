"""Timeframe windows: which windows a history can fill, and each window's price range (pure).

One source for the site's tabs and the backtest's per-window clusters. A window
is drawn when the history covers it, plus the first window longer than the
history ("partial": it shows all data), so even a short history gets one tab.
A window changes the time span, price range and bin width drawn, never the
positions in the book: every window shares one model run per market.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np

# Price padding around the window's low/high (fraction of price): longer windows
# show farther (lower-leverage) levels.
PRICE_PAD = {"12h": 0.05, "24h": 0.06, "3d": 0.08, "1w": 0.10, "2w": 0.12, "1M": 0.15, "3M": 0.2, "6M": 0.25, "1y": 0.3}
DEFAULT_PAD = 0.1
MAX_COLS = 1000  # time columns of a drawn window (its bars are at least one candle long)


def windows_for_span(timeframes_ms: Mapping[str, int], span_ms: int) -> list[tuple[str, bool]]:
    """(window, partial) in ascending length: every window within ``span_ms``, then the first longer one."""
    order = sorted(timeframes_ms, key=timeframes_ms.__getitem__)
    full = [(tf, False) for tf in order if timeframes_ms[tf] <= span_ms]
    longer = [tf for tf in order if timeframes_ms[tf] > span_ms]
    return full + ([(longer[0], True)] if longer else [])


def padded_range(tf: str, low: float, high: float) -> tuple[float, float]:
    """The drawn price range of window ``tf`` whose candles span ``low``..``high``."""
    pad = PRICE_PAD.get(tf, DEFAULT_PAD)
    return low * (1 - pad), high * (1 + pad)


def price_edges(tf: str, lows: Iterable[float], highs: Iterable[float], bins: int) -> np.ndarray:
    """Linear bin edges of window ``tf`` over the lowest low and highest high given."""
    lo, hi = padded_range(tf, min(lows), max(highs))
    return np.linspace(lo, hi, bins + 1)
