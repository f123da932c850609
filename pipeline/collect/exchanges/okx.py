"""OKX v5 USDT swaps (public REST, no key).

Candles ``/api/v5/market/history-candles`` (newest first, 100 per request;
``after=<ts>`` asks for rows older than ts), open interest
``/api/v5/rubik/stat/contracts/open-interest-history`` (newest first, 100 per
request, ``[ts, oi contracts, oiCcy base, oiUsd]``, paged by ``end``), funding
``/api/v5/public/funding-rate-history`` (newest first, ``after``), and realized
liquidations ``/api/v5/public/liquidation-orders`` (recent filled orders; sizes
in contracts, converted with the instrument's ``ctVal`` from
``/api/v5/public/instruments``). Answers are ``{"code": "0", "data": [...]}``;
another code is an API error (50011 and 50061, "slow down", are retried by the
HTTP layer).
"""

from __future__ import annotations

from typing import Iterator

from pipeline.collect.errors import ApiError
from pipeline.collect.exchanges.base import (
    FOREVER_MS,
    Batch,
    Exchange,
    PageChecker,
    Reject,
    candle_row,
    expect,
    funding_row,
    get,
    int_or_none,
    liquidation_row,
    number,
    oi_row,
    timestamp_ms,
)
from pipeline.collect.http import Limit
from pipeline.timeutil import DAY_MS

MAX_PAGES = 2000


class Okx(Exchange):
    name = "okx"
    quote = "USDT"
    capabilities = {
        "candles": True, "taker_buy": False, "oi_history": True, "oi_current": True,
        "funding": True, "liquidations": True,
    }
    # v5, per endpoint: history-candles 20/2s, rubik OI 5/2s, funding history 10/2s, liquidation-orders 40/2s.
    limits = {
        "": Limit(10, 5),
        "/api/v5/rubik/": Limit(5, 2.5),
        "/api/v5/public/funding-rate-history": Limit(10, 5),
        "/api/v5/market/history-candles": Limit(20, 10),
        "/api/v5/public/liquidation-orders": Limit(40, 20),
    }
    # History candles reach years back; the rubik OI statistics and liquidation orders only recent days.
    reach_ms = {"candles": FOREVER_MS, "open_interest": 30 * DAY_MS, "funding": 90 * DAY_MS, "liquidations": 7 * DAY_MS}
    CANDLE_LIMIT = 100
    OI_LIMIT = 100
    FUNDING_LIMIT = 100
    LIQ_LIMIT = 100
    LIQ_MAX_PAGES = 10  # the endpoint only keeps recent orders; a bounded look back is enough

    def __init__(self, http):
        super().__init__(http)
        self._ct_val: dict[str, float] = {}

    def _data(self, path: str, params: dict) -> list:
        doc = expect(self.checked(self.http.get_json(path, params), path), dict, f"OKX {path}")
        return expect(doc.get("data"), list, f"OKX {path} data")

    def _backward(self, path, params, cursor_key, first_cursor, limit, since_ms, checker, make, ts_of,
                  max_pages=MAX_PAGES) -> Iterator[Batch]:
        """Newest-first pagination with an exclusive ``cursor_key`` below the oldest row seen."""
        cursor = first_cursor
        for _ in range(max_pages):
            q = dict(params, limit=limit)
            if cursor is not None:
                q[cursor_key] = cursor
            page = self._data(path, q)
            yield checker.build(page, make)
            stamps = [t for t in (ts_of(r) for r in page) if t is not None]
            if len(page) < limit or not stamps or min(stamps) <= since_ms:
                return
            nxt = min(stamps) if cursor_key == "after" else min(stamps) - 1
            if cursor is not None and nxt >= cursor:
                return
            cursor = nxt

    def fetch_candles(self, instrument: str, since_ms: int, now_ms: int) -> Iterator[Batch]:
        checker = PageChecker("raw_candles", "desc")

        def make(r):
            ts = timestamp_ms(get(r, 0), now_ms)
            # confirm "0" marks the forming candle; it is stored once it is final.
            if not self.closed(ts, now_ms) or (len(r) > 8 and str(r[8]) == "0"):
                return None
            # [ts, o, h, l, c, vol (contracts), volCcy (base), volCcyQuote, confirm]
            return candle_row(self.name, instrument, ts, get(r, 1), get(r, 2), get(r, 3), get(r, 4),
                              get(r, 6), None, self.quote)

        return self._backward("/api/v5/market/history-candles", {"instId": instrument, "bar": "5m"}, "after",
                              now_ms + 1, self.CANDLE_LIMIT, since_ms, checker, make, lambda r: int_or_none(r, 0))

    def fetch_open_interest(self, instrument: str, since_ms: int, now_ms: int) -> Iterator[Batch]:
        checker = PageChecker("raw_open_interest", "desc")

        def make(r):
            ts = timestamp_ms(get(r, 0), now_ms)
            return oi_row(self.name, instrument, ts, oi_base=get(r, 2), oi_usd=get(r, 3))

        params = {"instId": instrument, "period": "5m", "begin": since_ms}
        return self._backward("/api/v5/rubik/stat/contracts/open-interest-history", params, "end", now_ms,
                              self.OI_LIMIT, since_ms, checker, make, lambda r: int_or_none(r, 0))

    def fetch_funding(self, instrument: str, since_ms: int, now_ms: int) -> Iterator[Batch]:
        checker = PageChecker("raw_funding", "desc")

        def make(r):
            ts = timestamp_ms(get(r, "fundingTime"), now_ms)
            # realizedRate is what was actually charged; fundingRate is the fallback.
            rate = r.get("realizedRate") if isinstance(r, dict) and r.get("realizedRate") not in (None, "") else get(r, "fundingRate")
            return funding_row(self.name, instrument, ts, rate)

        return self._backward("/api/v5/public/funding-rate-history", {"instId": instrument}, "after", None,
                              self.FUNDING_LIMIT, since_ms, checker, make, lambda r: int_or_none(r, "fundingTime"))

    def contract_value(self, instrument: str) -> float:
        """Base units per contract (``ctVal``), asked once per instrument and run."""
        if instrument not in self._ct_val:
            data = self._data("/api/v5/public/instruments", {"instType": "SWAP", "instId": instrument})
            try:
                self._ct_val[instrument] = number(get(data[0], "ctVal"), positive=True)
            except (IndexError, Reject) as exc:
                raise ApiError(f"OKX instruments: no usable ctVal for {instrument} ({exc})") from None
        return self._ct_val[instrument]

    def fetch_liquidations(self, instrument: str, since_ms: int, now_ms: int) -> Iterator[Batch]:
        ct_val = self.contract_value(instrument)
        family = instrument.removesuffix("-SWAP")
        checker = PageChecker("raw_liquidations", None)

        def make(d):
            ts = timestamp_ms(get(d, "ts"), now_ms)
            pos = d.get("posSide") if isinstance(d, dict) else None
            if pos in ("long", "short"):
                side = pos
            else:  # net mode: a forced sell closes a long, a forced buy closes a short
                side = {"sell": "long", "buy": "short"}.get(get(d, "side"), "?")
            return liquidation_row(self.name, instrument, ts, side, get(d, "bkPx"), number(get(d, "sz"), positive=True) * ct_val)

        def details(page):
            out = []
            for group in page:
                if isinstance(group, dict) and group.get("instId", instrument) == instrument:
                    out.extend(group.get("details") or [])
            return out

        params = {"instType": "SWAP", "instFamily": family, "state": "filled"}
        cursor = None
        for _ in range(self.LIQ_MAX_PAGES):
            q = dict(params, limit=self.LIQ_LIMIT)
            if cursor is not None:
                q["after"] = cursor
            rows = details(self._data("/api/v5/public/liquidation-orders", q))
            yield checker.build(rows, make)
            stamps = [t for t in (int_or_none(d, "ts") for d in rows) if t is not None]
            if len(rows) < self.LIQ_LIMIT or not stamps or min(stamps) <= since_ms:
                return
            if cursor is not None and min(stamps) >= cursor:
                return
            cursor = min(stamps)
