"""Deterministic market series the replay server serves (seeded; realistic BTC/ETH levels).

Every value is a pure function of (seed, coin, slot index), so the server can
"advance time" and the rows already served never change, which is what lets
the tests assert that a second collection run fetches only the new rows.
"""

from __future__ import annotations

import datetime as dt
import math
import random
from dataclasses import dataclass
from functools import lru_cache

FIVE_MIN = 300_000
HOUR = 3_600_000
# Series origin: 2026-11-16 00:00 UTC. Tests collect a few days from here.
ORIGIN_MS = 1_794_787_200_000
MAX_SLOTS = 288 * 10  # ten days of 5-minute slots is more than any test asks for

COINS = {
    # coin: (start price USD, open interest in coins, typical 5m volume in coins)
    "BTC": (95_000.0, 82_000.0, 180.0),
    "ETH": (3_400.0, 2_100_000.0, 4_200.0),
}

# exchange -> instrument name -> coin
INSTRUMENTS = {
    "binance": {"BTCUSDT": "BTC", "ETHUSDT": "ETH"},
    "bybit": {"BTCUSDT": "BTC", "ETHUSDT": "ETH"},
    "okx": {"BTC-USDT-SWAP": "BTC", "ETH-USDT-SWAP": "ETH"},
    "hyperliquid": {"BTC": "BTC", "ETH": "ETH"},
    "dydx": {"BTC-USD": "BTC", "ETH-USD": "ETH"},
}
OKX_CT_VAL = {"BTC": "0.01", "ETH": "0.1"}
OKX_FAMILY = {"BTC-USDT": "BTC-USDT-SWAP", "ETH-USDT": "ETH-USDT-SWAP"}


@dataclass(frozen=True)
class Candle:
    ts: int
    open: float
    high: float
    low: float
    close: float
    volume: float
    taker_buy: float
    oi: float  # open interest (coins) at the slot


@lru_cache(maxsize=None)
def candles(coin: str, seed: int = 7) -> tuple[Candle, ...]:
    price0, oi0, vol0 = COINS[coin]
    rng = random.Random(f"{seed}-{coin}")
    out = []
    close = price0
    oi = oi0
    for i in range(MAX_SLOTS):
        o = close
        c = o * math.exp(rng.gauss(0, 0.0016))
        h = max(o, c) * (1 + abs(rng.gauss(0, 0.0007)))
        lo = min(o, c) * (1 - abs(rng.gauss(0, 0.0007)))
        v = vol0 * rng.lognormvariate(0, 0.5)
        tb = v * rng.uniform(0.38, 0.62)
        oi = oi * math.exp(rng.gauss(0, 0.0012))
        out.append(Candle(ORIGIN_MS + i * FIVE_MIN, round(o, 2), round(h, 2), round(lo, 2), round(c, 2),
                          round(v, 3), round(tb, 3), round(oi, 3)))
        close = round(c, 2)
    return tuple(out)


def window(coin: str, start: int | None, end: int | None, now: int) -> list[Candle]:
    """Candles with start <= ts <= min(end, now), oldest first."""
    hi = now if end is None else min(end, now)
    lo = ORIGIN_MS if start is None else start
    return [c for c in candles(coin) if lo <= c.ts <= hi]


def price_at(coin: str, ts: int) -> float:
    cs = candles(coin)
    i = max(0, min(len(cs) - 1, (ts - ORIGIN_MS) // FIVE_MIN))
    return cs[i].close


def funding(coin: str, every_ms: int, start: int | None, end: int | None, now: int) -> list[tuple[int, float]]:
    """(time, rate) every ``every_ms`` from the origin, oldest first."""
    hi = now if end is None else min(end, now)
    lo = ORIGIN_MS if start is None else max(start, ORIGIN_MS)
    first = ORIGIN_MS + -(-(lo - ORIGIN_MS) // every_ms) * every_ms
    out = []
    t = first
    while t <= hi:
        r = random.Random(f"f-{coin}-{every_ms}-{t}")
        out.append((t, round(0.0001 + r.gauss(0, 0.00004), 8)))
        t += every_ms
    return out


def liquidations(coin: str, start: int | None, end: int | None, now: int) -> list[dict]:
    """Realized liquidation orders (OKX style), newest first: roughly one every 20 minutes."""
    hi = now if end is None else min(end, now)
    lo = ORIGIN_MS if start is None else start
    out = []
    t = ORIGIN_MS + 7_000
    k = 0
    while t <= hi:
        r = random.Random(f"l-{coin}-{k}")
        if t >= lo:
            px = price_at(coin, t)
            long_side = r.random() < 0.5
            out.append({
                "ts": t, "side": "sell" if long_side else "buy", "posSide": "long" if long_side else "short",
                "bkPx": round(px * (0.997 if long_side else 1.003), 1), "sz": str(r.randint(1, 400)),
            })
        k += 1
        t += 20 * 60_000 + r.randint(-120_000, 120_000)
    return sorted(out, key=lambda d: d["ts"], reverse=True)


def archive_day(coin: str, day: dt.date) -> list[Candle]:
    """288 five-minute candles of one archive day (independent of the live series)."""
    price0, oi0, vol0 = COINS[coin]
    rng = random.Random(f"a-{coin}-{day.isoformat()}")
    start = int(dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC).timestamp() * 1000)
    close = price0 * (1 + rng.uniform(-0.05, 0.05))
    oi = oi0
    out = []
    for i in range(288):
        o = close
        c = o * math.exp(rng.gauss(0, 0.0016))
        h = max(o, c) * (1 + abs(rng.gauss(0, 0.0007)))
        lo = min(o, c) * (1 - abs(rng.gauss(0, 0.0007)))
        v = vol0 * rng.lognormvariate(0, 0.5)
        oi *= math.exp(rng.gauss(0, 0.0012))
        out.append(Candle(start + i * FIVE_MIN, round(o, 2), round(h, 2), round(lo, 2), round(c, 2), round(v, 3),
                          round(v * rng.uniform(0.4, 0.6), 3), round(oi, 3)))
        close = round(c, 2)
    return out
