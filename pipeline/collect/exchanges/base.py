"""Exchange collectors: one small module per exchange, sharing the pieces here.

Every collector declares a capability table and turns the exchange's pages into
:class:`Batch` objects: validated rows for one store table plus counts of what
was received and why rows were rejected. Validation is row-wise so one bad row
(a missing field, ``"n/a"`` where a price belongs, NaN, a zero price, zero open
interest, a timestamp ahead of the run's clock) costs that row, not the page.
Rows that arrive out of order are put in order, and a repeated key is stored
once (see :class:`PageChecker`). An exchange's own error document becomes
:class:`pipeline.http.ApiError` with its code and message.

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
from pipeline.collect.errors import BadPayload, raise_api_error
from pipeline.collect.http import HttpClient, Limit
from pipeline.store import tables
from pipeline.timeutil import dt_to_ms, ms_to_dt, parse_iso_ms

INTERVAL_S = 300  # every live collector stores 5-minute candles
INTERVAL_MS = INTERVAL_S * 1000
FOREVER_MS = 10 * 365 * 86_400_000  # an API that serves a dataset's whole history
DATASETS = ("candles", "open_interest", "funding", "liquidations")
# Capability names: what an exchange offers without an API key.
CAPABILITIES = ("candles", "taker_buy", "oi_history", "oi_current", "funding", "liquidations")

_MIN_MS = 1_262_304_000_000  # 2010-01-01: anything earlier is not a crypto perpetual
# How far ahead of the run's clock a row may be stamped: one 5-minute interval covers
# clock skew between us and the exchange. A candle stamped later cannot have closed, and
# a stored future row would hold back its series (runs continue from the newest row).
MAX_AHEAD_MS = INTERVAL_MS

DATASET_TABLE = {
    "candles": "raw_candles",
    "open_interest": "raw_open_interest",
    "funding": "raw_funding",
    "liquidations": "raw_liquidations",
}
# A batch's Arrow schema and the key of a row within its market: from the store's one table list (sql/schema).
SCHEMAS: dict[str, pa.Schema] = {t: tables.arrow_schema(t) for t in DATASET_TABLE.values()}
KEYS = {t: tables.market_key(t) for t in DATASET_TABLE.values()}


class Reject(Exception):
    """One row is unusable; the message is a short reason used as a counter key."""


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
    if value < _MIN_MS or value > now_ms + MAX_AHEAD_MS:
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


def _open_interest(value: Any) -> float | None:
    if value is None:
        return None
    x = number(value)
    if x < 0:
        raise Reject("negative")
    if x == 0:
        # Open interest of a listed perpetual is never zero: the model would read such a
        # print as every position closing and reopening at one candle's price.
        raise Reject("zero open interest")
    return x


def oi_row(exchange, instrument, ts_ms, oi_base=None, oi_usd=None) -> dict:
    base = _open_interest(oi_base)
    usd = _open_interest(oi_usd)
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


def _preference(table: str, row: dict) -> tuple:
    """Which of two rows with one key is kept: a total order on values, independent of arrival.

    For candles the larger volume wins first (a later revision of a candle has traded
    more); otherwise, and as the tie-break, the larger values field by field.
    """
    def rank(v):
        return (0, 0) if v is None else (1, v)

    first = (rank(row.get("volume")),) if table == "raw_candles" else ()
    return first + tuple(rank(row[k]) for k in sorted(row))


class PageChecker:
    """Orders and de-duplicates the rows of the pages of one source.

    ``order`` is the order the endpoint documents for a page ("asc" or "desc"):
    valid rows are handed on in that order even when the exchange swapped some
    (rejecting a swapped row would lose it for good: the next run starts after
    the newest stored row).
    A key seen twice is stored once and counted: ``duplicate`` when the rows
    agree; ``duplicate with different values`` when they do not, keeping the
    row :func:`_preference` ranks first within a page (so the result does not
    depend on the order they arrived in) and the earlier page's row across
    pages (it may be stored already). ``order=None``: no promised order; rows
    stay as they came.
    """

    def __init__(self, table: str, order: str | None):
        self.table = table
        self.order = order
        self.seen: dict[tuple, dict] = {}  # key -> row handed on in an earlier page

    def build(self, records: Iterable[Any], make, *, received: int | None = None) -> Batch:
        """Run ``make(record) -> row`` over ``records``; collect valid rows and reasons."""
        batch = Batch(self.table)
        recs = list(records)
        batch.received = len(recs) if received is None else received
        fresh: dict[tuple, dict] = {}
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
            other = self.seen.get(key, fresh.get(key))
            if other is None:
                fresh[key] = row
                continue
            batch.rejected["duplicate" if other == row else "duplicate with different values"] += 1
            if key in fresh and _preference(self.table, row) > _preference(self.table, other):
                fresh[key] = row
        rows = list(fresh.values())
        if self.order:
            rows.sort(key=lambda r: tuple(r[k] for k in KEYS[self.table]), reverse=self.order == "desc")
        self.seen.update(fresh)
        batch.rows = rows
        return batch


class Exchange:
    """Base class: name, capability table, HTTP client, fetch dispatch."""

    name: str = ""
    quote: str = "USDT"
    # Capability table: capability -> True/False (see CAPABILITIES).
    capabilities: dict[str, bool] = {}
    # Published public-endpoint limits (per IP) as token buckets: path prefix -> Limit ("" = every path).
    limits: dict[str, Limit] = {}
    # How far back the public API serves each dataset (ms; 0: only the current value, a snapshot per run).
    reach_ms: dict[str, int] = {}
    # Datasets produced as a side effect of another dataset's requests.
    derived: dict[str, str] = {}

    def __init__(self, http: HttpClient):
        self.http = http

    @classmethod
    def default_base_url(cls) -> str:
        return settings.get().base_url(cls.name)

    def checked(self, doc: Any, path: str) -> Any:
        """``doc``, or the exchange's error document raised as :class:`ApiError`.

        The HTTP layer already does this (and retries the codes that mean "slow down");
        doing it here too keeps a collector honest whatever client it is given.
        """
        return raise_api_error(self.name, path, doc)

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
