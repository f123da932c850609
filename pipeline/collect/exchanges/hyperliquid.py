"""Hyperliquid perpetuals (public ``POST /info``, no key).

Candles ``{"type": "candleSnapshot"}`` (oldest first, at most 5000 per answer
and only the most recent 5000 exist), funding ``{"type": "fundingHistory"}``
(oldest first, at most 500 per answer). Open interest has no history endpoint:
``{"type": "metaAndAssetCtxs"}`` gives the current value of every coin, so each
run records one observation and the history accumulates in our own store. One
metaAndAssetCtxs answer serves every asset of a run.
"""

from __future__ import annotations

import time
from typing import Iterator

from pipeline.collect.errors import ApiError
from pipeline.collect.exchanges.base import (
    FOREVER_MS,
    INTERVAL_MS,
    Batch,
    Exchange,
    PageChecker,
    Reject,
    candle_row,
    expect,
    funding_row,
    get,
    int_or_none,
    number,
    oi_row,
    timestamp_ms,
)
from pipeline.collect.http import Limit

MAX_PAGES = 200
CTX_TTL_S = 60.0  # one snapshot per run is the point; a long run may refresh it


class Hyperliquid(Exchange):
    name = "hyperliquid"
    quote = "USDC"
    capabilities = {
        "candles": True, "taker_buy": False, "oi_history": False, "oi_current": True,
        "funding": True, "liquidations": False,
    }
    # 1200 weight per minute; most /info requests weigh 20.
    limits = {"": Limit(1200, 20)}
    # Only the most recent 5000 candles exist; open interest is the current value only.
    reach_ms = {"candles": 5000 * INTERVAL_MS, "open_interest": 0, "funding": FOREVER_MS, "liquidations": 0}
    # Time-range answers hold at most 500 elements (candleSnapshot up to 5000): a page
    # shorter than this is the last one; a longer one may be followed by more.
    CANDLE_PAGE = 500
    FUNDING_MAX = 500

    def __init__(self, http):
        super().__init__(http)
        self._ctx: tuple[float, dict[str, dict]] | None = None

    def _info(self, body: dict, weight: float = 20) -> object:
        # Most /info requests weigh 20 of the 1200-per-minute budget.
        return self.checked(self.http.post_json("/info", body, weight=weight), f"/info {body.get('type', '')}")

    def _forward(self, body_for, limit, since_ms, now_ms, checker, make, ts_of, step_ms) -> Iterator[Batch]:
        start = since_ms
        for _ in range(MAX_PAGES):
            page = expect(self._info(body_for(start)), list, "Hyperliquid /info")
            yield checker.build(page, make)
            stamps = [t for t in (ts_of(r) for r in page) if t is not None]
            if len(page) < limit or not stamps:
                return
            nxt = max(stamps) + step_ms
            if nxt <= start or nxt >= now_ms:
                return
            start = nxt

    def fetch_candles(self, instrument: str, since_ms: int, now_ms: int) -> Iterator[Batch]:
        checker = PageChecker("raw_candles", "asc")

        def make(r):
            ts = timestamp_ms(get(r, "t"), now_ms)
            if not self.closed(ts, now_ms):
                return None
            return candle_row(self.name, instrument, ts, get(r, "o"), get(r, "h"), get(r, "l"), get(r, "c"),
                              get(r, "v"), None, self.quote)

        def body(start):
            return {"type": "candleSnapshot",
                    "req": {"coin": instrument, "interval": "5m", "startTime": start, "endTime": now_ms}}

        return self._forward(body, self.CANDLE_PAGE, since_ms, now_ms, checker, make,
                             lambda r: int_or_none(r, "t"), INTERVAL_MS)

    def fetch_funding(self, instrument: str, since_ms: int, now_ms: int) -> Iterator[Batch]:
        checker = PageChecker("raw_funding", "asc")

        def make(r):
            return funding_row(self.name, instrument, timestamp_ms(get(r, "time"), now_ms), get(r, "fundingRate"))

        def body(start):
            return {"type": "fundingHistory", "coin": instrument, "startTime": start, "endTime": now_ms}

        return self._forward(body, self.FUNDING_MAX, since_ms, now_ms, checker, make,
                             lambda r: int_or_none(r, "time"), 1)

    def asset_contexts(self) -> dict[str, dict]:
        """coin -> its asset context (openInterest in coins, markPx, funding ...)."""
        if self._ctx is None or time.monotonic() - self._ctx[0] > CTX_TTL_S:
            doc = expect(self._info({"type": "metaAndAssetCtxs"}), list, "Hyperliquid metaAndAssetCtxs")
            if len(doc) != 2 or not isinstance(doc[0], dict) or not isinstance(doc[1], list):
                raise ApiError("Hyperliquid metaAndAssetCtxs: expected [meta, assetCtxs]")
            universe = expect(doc[0].get("universe"), list, "Hyperliquid meta.universe")
            ctxs = {}
            for meta, ctx in zip(universe, doc[1]):
                if isinstance(meta, dict) and isinstance(meta.get("name"), str) and isinstance(ctx, dict):
                    ctxs[meta["name"]] = ctx
            self._ctx = (time.monotonic(), ctxs)
        return self._ctx[1]

    def fetch_open_interest(self, instrument: str, since_ms: int, now_ms: int) -> Iterator[Batch]:
        checker = PageChecker("raw_open_interest", None)
        ctx = self.asset_contexts().get(instrument)
        if ctx is None:
            raise ApiError(f"Hyperliquid lists no perpetual named {instrument!r}")
        # The observation time is ours (the answer carries none), on the minute so a
        # repeated run within the same minute stores the row once.
        ts = now_ms - now_ms % 60_000

        def make(c):
            row = oi_row(self.name, instrument, ts, oi_base=get(c, "openInterest"))
            try:
                row["oi_usd"] = row["oi_base"] * number(get(c, "markPx"), positive=True)
            except Reject:
                pass
            return row

        yield checker.build([ctx], make)
