"""Exchange collectors: one small module per exchange, sharing the pieces here.

Every collector declares a capability table and turns the exchange's pages into
:class:`Batch` objects: validated rows for one store table plus counts of what
was received and why rows were rejected. Validation is row-wise so one bad row
(a missing field, ``"n/a"`` where a price belongs, NaN, a zero price, a
duplicate, a row out of the page's order) costs that row, not the page.

Timestamps are epoch milliseconds inside collectors and naive UTC ``datetime``
in rows (the store's convention).
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator

import pyarrow as pa

from pipeline import settings
from pipeline.collect.http import BadPayload, HttpClient
from pipeline.timeutil import dt_to_ms, ms_to_dt, parse_iso_ms

INTERVAL_S = 300  # every live collector stores 5-minute candles
INTERVAL_MS = INTERVAL_S * 1000
DATASETS = ("candles", "open_interest", "funding", "liquidations")
# Capability names: what an exchange offers without an API key.
CAPABILITIES = ("candles", "taker_buy", "oi_history", "oi_current", "funding", "liquidations")

_MIN_MS = 1_262_304_000_000  # 2010-01-01: anything earlier is not a crypto perpetual
_MAX_FUTURE_MS = 86_400_000  # rows more than a day in the future are nonsense

SCHEMAS: dict[str, pa.Schema] = {
    "raw_candles": pa.schema([
        ("exchange", pa.string()), ("instrument", pa.string()), ("interval_s", pa.int32()),
        ("ts", pa.timestamp("us")), ("open", pa.float64()), ("high", pa.float64()), ("low", pa.float64()),
        ("close", pa.float64()), ("volume", pa.float64()), ("taker_buy_volume", pa.float64()),
        ("quote", pa.string()),
    ]),
    "raw_open_interest": pa.schema([
        ("exchange", pa.string()), ("instrument", pa.string()), ("ts", pa.timestamp("us")),
        ("oi_base", pa.float64()), ("oi_usd", pa.float64()),
    ]),
    "raw_funding": pa.schema([
        ("exchange", pa.string()), ("instrument", pa.string()), ("ts", pa.timestamp("us")), ("rate", pa.float64()),
    ]),
    "raw_liquidations": pa.schema([
        ("exchange", pa.string()), ("instrument", pa.string()), ("ts", pa.timestamp("us")), ("side", pa.string()),
        ("price", pa.float64()), ("size_base", pa.float64()), ("notional_usd", pa.float64()),
    ]),
}
KEYS = {
    "raw_candles": ("ts",),
    "raw_open_interest": ("ts",),
    "raw_funding": ("ts",),
    "raw_liquidations": ("ts", "side", "price", "size_base"),
}
DATASET_TABLE = {
    "candles": "raw_candles",
    "open_interest": "raw_open_interest",
    "funding": "raw_funding",
    "liquidations": "raw_liquidations",
}


class Reject(Exception):
    """One row is unusable; the message is a short reason used as a counter key."""


class ApiError(Exception):
    """The exchange answered with a well-formed error document (e.g. Bybit retCode != 0)."""


class Unsupported(Exception):
    """The exchange does not offer this dataset without an API key or over REST."""


def expect(doc: Any, kind: type, what: str) -> Any:
    """``doc`` if it has the documented JSON type, else BadPayload naming the endpoint."""
    if not isinstance(doc, kind):
        raise BadPayload(f"{what}: expected a JSON {kind.__name__}, got {type(doc).__name__}")
    return doc


def iso_to_ms(value: Any) -> int:
    if not isinstance(value, str):
        raise Reject("bad timestamp")
    try:
        return parse_iso_ms(value)
    except ValueError:
        raise Reject("bad timestamp") from None


def get(rec: Any, key: Any) -> Any:
    """``rec[key]`` or Reject('missing field') for dicts and lists alike."""
    try:
        value = rec[key]
    except (KeyError, IndexError, TypeError):
        raise Reject("missing field") from None
    if value is None or value == "":
        raise Reject("missing field")
    return value


def number(value: Any, *, positive: bool = False, nonneg: bool = False) -> float:
    """A finite float from a JSON number or a numeric string (exchanges send decimals as strings)."""
    if isinstance(value, bool) or value is None:
        raise Reject("not a number")
    if isinstance(value, str):
        try:
            x = float(value.strip())
        except ValueError:
            raise Reject("not a number") from None
    elif isinstance(value, (int, float)):
        x = float(value)
    else:
        raise Reject("not a number")
    if not math.isfinite(x):
        raise Reject("NaN or infinite")
    if positive and x <= 0:
        raise Reject("zero or negative")
    if nonneg and x < 0:
        raise Reject("negative")
    return x


def timestamp_ms(value: Any, now_ms: int) -> int:
    if isinstance(value, bool):
        raise Reject("bad timestamp")
    if isinstance(value, str):
        if not value.strip().isdigit():
            raise Reject("bad timestamp")
        value = int(value)
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if not isinstance(value, int):
        raise Reject("bad timestamp")
    if value < _MIN_MS or value > now_ms + _MAX_FUTURE_MS:
        raise Reject("timestamp out of range")
    return value


# -- row builders: one place that knows what a valid row of each table is ----------
def candle_row(exchange, instrument, ts_ms, o, h, l, c, volume, taker_buy, quote) -> dict:
    if ts_ms % INTERVAL_MS:
        raise Reject("not on the 5-minute grid")
    o, h, l, c = (number(x, positive=True) for x in (o, h, l, c))
    if not (l <= min(o, c) and h >= max(o, c) and h >= l):
        raise Reject("inconsistent OHLC")
    vol = number(volume, nonneg=True) if volume is not None else None
    tb = number(taker_buy, nonneg=True) if taker_buy is not None else None
    if tb is not None and vol is not None and tb > vol * (1 + 1e-9):
        raise Reject("taker buy above volume")
    return {
        "exchange": exchange, "instrument": instrument, "interval_s": INTERVAL_S, "ts": ms_to_dt(ts_ms),
        "open": o, "high": h, "low": l, "close": c, "volume": vol, "taker_buy_volume": tb, "quote": quote,
    }


def oi_row(exchange, instrument, ts_ms, oi_base=None, oi_usd=None) -> dict:
    base = number(oi_base, nonneg=True) if oi_base is not None else None
    usd = number(oi_usd, nonneg=True) if oi_usd is not None else None
    if base is None and usd is None:
        raise Reject("missing field")
    return {"exchange": exchange, "instrument": instrument, "ts": ms_to_dt(ts_ms), "oi_base": base, "oi_usd": usd}


def funding_row(exchange, instrument, ts_ms, rate) -> dict:
    r = number(rate)
    if abs(r) >= 1:  # a funding rate of 100 % per interval is a unit error, not a market
        raise Reject("funding rate out of range")
    return {"exchange": exchange, "instrument": instrument, "ts": ms_to_dt(ts_ms), "rate": r}


def liquidation_row(exchange, instrument, ts_ms, side, price, size_base, usd_per_quote: float = 1.0) -> dict:
    if side not in ("long", "short"):
        raise Reject("bad side")
    p = number(price, positive=True)
    s = number(size_base, positive=True)
    return {
        "exchange": exchange, "instrument": instrument, "ts": ms_to_dt(ts_ms), "side": side,
        "price": p, "size_base": s, "notional_usd": p * s * usd_per_quote,
    }


@dataclass
class Batch:
    """Validated rows of one page for one table, with what was received and rejected."""

    table: str
    rows: list[dict] = field(default_factory=list)
    received: int = 0
    rejected: Counter = field(default_factory=Counter)
    skipped: int = 0  # rows deliberately not stored (an unfinished candle), not errors

    @property
    def n_rejected(self) -> int:
        return sum(self.rejected.values())

    def to_arrow(self) -> pa.Table:
        return pa.Table.from_pylist(self.rows, schema=SCHEMAS[self.table])

    def last_ms(self) -> int | None:
        return max((dt_to_ms(r["ts"]) for r in self.rows), default=None)


class PageChecker:
    """Checks order and duplicates across the pages of one source.

    ``order`` is the order the endpoint documents for a page ("asc" or "desc");
    a row going against it is rejected as out of order, a repeated key as a
    duplicate. ``order=None`` skips the order check (endpoints with no promise).
    """

    def __init__(self, table: str, order: str | None):
        self.table = table
        self.order = order
        self.seen: set = set()

    def build(self, records: Iterable[Any], make, *, received: int | None = None) -> Batch:
        """Run ``make(record) -> row`` over ``records``; collect valid rows and reasons."""
        batch = Batch(self.table)
        last: int | None = None
        recs = list(records)
        batch.received = len(recs) if received is None else received
        for rec in recs:
            try:
                row = make(rec)
            except Reject as exc:
                batch.rejected[str(exc)] += 1
                continue
            if row is None:  # deliberately skipped
                batch.skipped += 1
                continue
            key = tuple(row[k] for k in KEYS[self.table])
            if key in self.seen:
                batch.rejected["duplicate"] += 1
                continue
            ts = row["ts"]
            if self.order and last is not None and ((self.order == "asc" and ts < last) or (self.order == "desc" and ts > last)):
                batch.rejected["out of order"] += 1
                continue
            self.seen.add(key)
            last = ts
            batch.rows.append(row)
        return batch


class Exchange:
    """Base class: name, capability table, HTTP client, fetch dispatch."""

    name: str = ""
    quote: str = "USDT"
    # Capability table: capability -> True/False (see CAPABILITIES).
    capabilities: dict[str, bool] = {}
    # Datasets produced as a side effect of another dataset's requests.
    derived: dict[str, str] = {}

    def __init__(self, http: HttpClient):
        self.http = http

    @classmethod
    def default_base_url(cls) -> str:
        return settings.get().base_url(cls.name)

    def supports(self, dataset: str) -> bool:
        caps = self.capabilities
        return {
            "candles": caps.get("candles", False),
            "open_interest": caps.get("oi_history", False) or caps.get("oi_current", False),
            "funding": caps.get("funding", False),
            "liquidations": caps.get("liquidations", False),
        }[dataset]

    def fetch(self, dataset: str, instrument: str, since_ms: int, now_ms: int) -> Iterator[Batch]:
        """Pages of validated rows for ``dataset`` newer than ``since_ms`` (roughly), up to ``now_ms``."""
        if not self.supports(dataset):
            raise Unsupported(f"{self.name} does not publish {dataset.replace('_', ' ')} over public REST")
        return getattr(self, f"fetch_{dataset}")(instrument, since_ms, now_ms)

    # helpers -------------------------------------------------------------
    def closed(self, ts_ms: int, now_ms: int) -> bool:
        """A candle is final once its interval has ended; the forming one is skipped."""
        return ts_ms + INTERVAL_MS <= now_ms


def int_or_none(rec: Any, key: Any) -> int | None:
    """``int(rec[key])`` for pagination bookkeeping; None when the row is malformed."""
    try:
        return int(rec[key])
    except (TypeError, ValueError, KeyError, IndexError):
        return None
