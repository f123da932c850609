"""Bybit v5, linear (USDT) perpetuals (public REST, no key).

Candles ``/v5/market/kline`` (newest first, 1000 per request; with ``start``
given, a range holding more than ``limit`` candles answers the oldest ``limit``
of them, so candles are asked for in windows of at most ``limit`` candles,
oldest window first), open interest ``/v5/market/open-interest``
(newest first, 200 per request, ``nextPageCursor`` pagination, full history),
funding ``/v5/market/funding/history`` (newest first, 200 per request, page
backwards with ``endTime``). Every answer is wrapped in
``{"retCode": 0, "result": {...}}``; a non-zero retCode is an API error
(10006 and 10018, "slow down", are retried by the HTTP layer).
Liquidations are websocket-only (``allLiquidation``). Bybit answers HTTP 403 to
US addresses.
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

MAX_PAGES = 500  # a bound, so a server that ignores paging parameters cannot loop us forever


class Bybit(Exchange):
    name = "bybit"
    quote = "USDT"
    capabilities = {
        "candles": True, "taker_buy": False, "oi_history": True, "oi_current": True,
        "funding": True, "liquidations": False,
    }
    # v5: 600 requests per 5 seconds per IP (we stay far below it).
    limits = {"": Limit(100, 20)}
    reach_ms = {"candles": FOREVER_MS, "open_interest": FOREVER_MS, "funding": FOREVER_MS, "liquidations": 0}
    KLINE_LIMIT = 1000
    OI_LIMIT = 200
    FUNDING_LIMIT = 200

    def _result(self, path: str, params: dict) -> dict:
        doc = expect(self.checked(self.http.get_json(path, params), path), dict, f"Bybit {path}")
        result = expect(doc.get("result"), dict, f"Bybit {path} result")
        expect(result.get("list"), list, f"Bybit {path} result.list")
        return result

    def _backward(self, path, params, end_key, limit, since_ms, now_ms, checker, make, ts_of) -> Iterator[Batch]:
        """Newest-first pagination: next page ends just before the oldest row seen."""
        end = now_ms
        for _ in range(MAX_PAGES):
            result = self._result(path, {**params, end_key: end, "limit": limit})
            page = result["list"]
            yield checker.build(page, make)
            stamps = [t for t in (ts_of(r) for r in page) if t is not None]
            if len(page) < limit or not stamps or min(stamps) <= since_ms or min(stamps) - 1 >= end:
                return
            end = min(stamps) - 1

    def fetch_candles(self, instrument: str, since_ms: int, now_ms: int) -> Iterator[Batch]:
        checker = PageChecker("raw_candles", "desc")

        def make(r):
            ts = timestamp_ms(get(r, 0), now_ms)
            if not self.closed(ts, now_ms):
                return None
            # [startTime, open, high, low, close, volume (base), turnover (quote)]
            return candle_row(self.name, instrument, ts, get(r, 1), get(r, 2), get(r, 3), get(r, 4),
                              get(r, 5), None, self.quote)

        return self._windows(instrument, since_ms, now_ms, checker, make)

    def _windows(self, instrument, since_ms, now_ms, checker, make) -> Iterator[Batch]:
        # [start, end] spans at most KLINE_LIMIT grid points, so the answer is the whole
        # window whichever end Bybit anchors the page at. Oldest window first: a failure
        # midway leaves stored rows that end where the next run starts, not a hole below.
        span = (self.KLINE_LIMIT - 1) * INTERVAL_MS
        start = since_ms
        for _ in range(MAX_PAGES):
            if start > now_ms:
                return
            end = min(start + span, now_ms)
            result = self._result("/v5/market/kline", {"category": "linear", "symbol": instrument, "interval": "5",
                                                       "start": start, "end": end, "limit": self.KLINE_LIMIT})
            yield checker.build(result["list"], make)
            start = end + 1

    def fetch_open_interest(self, instrument: str, since_ms: int, now_ms: int) -> Iterator[Batch]:
        checker = PageChecker("raw_open_interest", "desc")

        def make(r):
            ts = timestamp_ms(get(r, "timestamp"), now_ms)
            return oi_row(self.name, instrument, ts, oi_base=get(r, "openInterest"))  # linear: base coin

        params = {"category": "linear", "symbol": instrument, "intervalTime": "5min",
                  "startTime": since_ms, "endTime": now_ms, "limit": self.OI_LIMIT}
        cursor = None
        for _ in range(MAX_PAGES):
            result = self._result("/v5/market/open-interest", {**params, **({"cursor": cursor} if cursor else {})})
            yield checker.build(result["list"], make)
            nxt = result.get("nextPageCursor") or None
            if not nxt or nxt == cursor or not result["list"]:
                return
            cursor = nxt

    def fetch_funding(self, instrument: str, since_ms: int, now_ms: int) -> Iterator[Batch]:
        checker = PageChecker("raw_funding", "desc")

        def make(r):
            ts = timestamp_ms(get(r, "fundingRateTimestamp"), now_ms)
            return funding_row(self.name, instrument, ts, get(r, "fundingRate"))

        params = {"category": "linear", "symbol": instrument, "startTime": since_ms}
        return self._backward("/v5/market/funding/history", params, "endTime", self.FUNDING_LIMIT, since_ms, now_ms,
                              checker, make, lambda r: int_or_none(r, "fundingRateTimestamp"))

