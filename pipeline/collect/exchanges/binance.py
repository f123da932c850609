"""Binance USD-M futures (public REST, no key).

Candles ``/fapi/v1/klines`` (oldest first, 1500 per request, taker-buy volume
included), open interest ``/futures/data/openInterestHist`` (oldest first, 500
per request, only the last 30 days), funding ``/fapi/v1/fundingRate`` (oldest
first, 1000 per request). Realized liquidations are websocket-only
(``forceOrder``), so not collected here. Binance answers HTTP 451 to US
addresses; the HTTP layer turns that into :class:`pipeline.http.GeoBlocked`.
"""

from __future__ import annotations

from typing import Iterator

from pipeline.collect.exchanges.base import (
    FOREVER_MS,
    INTERVAL_MS,
    Batch,
    Exchange,
    PageChecker,
    candle_row,
    expect,
    funding_row,
    get,
    int_or_none,
    oi_row,
    timestamp_ms,
)
from pipeline.collect.http import Limit
from pipeline.timeutil import DAY_MS

OI_MEMORY_MS = 30 * 86_400_000  # older startTime values are refused by the endpoint


class Binance(Exchange):
    name = "binance"
    quote = "USDT"
    capabilities = {
        "candles": True, "taker_buy": True, "oi_history": True, "oi_current": True,
        "funding": True, "liquidations": False,
    }
    # 2400 request weight per minute (klines weigh 1-10 by limit); /futures/data/*: 1000 requests per 5 minutes.
    limits = {"": Limit(2400, 40), "/futures/data/": Limit(1000 / 5, 1000 / 300)}
    reach_ms = {"candles": FOREVER_MS, "open_interest": 30 * DAY_MS, "funding": FOREVER_MS, "liquidations": 0}
    KLINES_LIMIT = 1500
    OI_LIMIT = 500
    FUNDING_LIMIT = 1000

    def _forward(self, path, params, limit, since_ms, now_ms, checker, make, ts_of, step_ms, weight=1.0):
        """Oldest-first pagination: ask from ``startTime``, continue after the last row."""
        start = since_ms
        while start < now_ms:
            page = self.http.get_json(path, {**params, "startTime": start, "endTime": now_ms, "limit": limit}, weight=weight)
            expect(self.checked(page, path), list, f"Binance {path}")
            batch = checker.build(page, make)
            yield batch
            stamps = [t for t in (ts_of(r) for r in page) if t is not None]
            if len(page) < limit or not stamps:
                return
            nxt = max(stamps) + step_ms
            if nxt <= start:  # the server ignored startTime; stop rather than loop
                return
            start = nxt

    def fetch_candles(self, instrument: str, since_ms: int, now_ms: int) -> Iterator[Batch]:
        checker = PageChecker("raw_candles", "asc")

        def make(r):
            ts = timestamp_ms(get(r, 0), now_ms)
            if not self.closed(ts, now_ms):
                return None
            return candle_row(self.name, instrument, ts, get(r, 1), get(r, 2), get(r, 3), get(r, 4),
                              get(r, 5), get(r, 9), self.quote)

        # Request weight of klines is 10 for limit > 1000 (Binance's published table).
        return self._forward("/fapi/v1/klines", {"symbol": instrument, "interval": "5m"}, self.KLINES_LIMIT,
                             since_ms, now_ms, checker, make, lambda r: int_or_none(r, 0), INTERVAL_MS, weight=10)

    def fetch_open_interest(self, instrument: str, since_ms: int, now_ms: int) -> Iterator[Batch]:
        checker = PageChecker("raw_open_interest", "asc")
        since_ms = max(since_ms, now_ms - OI_MEMORY_MS + INTERVAL_MS)

        def make(r):
            ts = timestamp_ms(get(r, "timestamp"), now_ms)
            return oi_row(self.name, instrument, ts, get(r, "sumOpenInterest"), get(r, "sumOpenInterestValue"))

        return self._forward("/futures/data/openInterestHist", {"symbol": instrument, "period": "5m"}, self.OI_LIMIT,
                             since_ms, now_ms, checker, make, lambda r: int_or_none(r, "timestamp"), INTERVAL_MS)

    def fetch_funding(self, instrument: str, since_ms: int, now_ms: int) -> Iterator[Batch]:
        checker = PageChecker("raw_funding", "asc")

        def make(r):
            ts = timestamp_ms(get(r, "fundingTime"), now_ms)
            return funding_row(self.name, instrument, ts, get(r, "fundingRate"))

        return self._forward("/fapi/v1/fundingRate", {"symbol": instrument}, self.FUNDING_LIMIT,
                             since_ms, now_ms, checker, make, lambda r: int_or_none(r, "fundingTime"), 1)
