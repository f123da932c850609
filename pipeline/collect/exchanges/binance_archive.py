"""Binance's public bulk archive (data.binance.vision): daily zips beyond the REST API's 30 days.

Files, per USD-M symbol and UTC day:
``data/futures/um/daily/klines/{SYM}/5m/{SYM}-5m-{day}.zip`` (5-minute candles
with taker-buy volume) and ``data/futures/um/daily/metrics/{SYM}/{SYM}-metrics-{day}.zip``
(5-minute open interest since about December 2021). Each zip has a sibling
``.CHECKSUM`` file (``<sha256>  <name>``); a zip is used, and cached, only if
its sha256 matches. Metrics rows are known to arrive unsorted and duplicated:
they are sorted and de-duplicated here (the duplicates are counted, not stored).
Rows land in the same tables as the REST collector's (exchange ``binance``).
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import os
import re
import zipfile
from pathlib import Path

from pipeline import paths
from pipeline.collect.errors import HttpError
from pipeline.collect.exchanges.base import Batch, PageChecker, Reject, candle_row, oi_row, timestamp_ms
from pipeline.collect.http import HttpClient, Limit
from pipeline.timeutil import dt_to_ms

_SYMBOL = re.compile(r"^[A-Z0-9]{2,20}$")
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
KINDS = ("klines", "metrics")


class ChecksumMismatch(HttpError):
    """A downloaded zip does not match its published sha256: not used, not cached."""


def day_path(kind: str, symbol: str, day: dt.date) -> str:
    if kind == "klines":
        return f"/data/futures/um/daily/klines/{symbol}/5m/{symbol}-5m-{day:%Y-%m-%d}.zip"
    if kind == "metrics":
        return f"/data/futures/um/daily/metrics/{symbol}/{symbol}-metrics-{day:%Y-%m-%d}.zip"
    raise ValueError(kind)


def parse_checksum(text: str) -> str:
    """The sha256 from a ``.CHECKSUM`` file (``<hex>  <file name>``)."""
    token = text.strip().split()[0].lower() if text.strip() else ""
    if not _HEX64.match(token):
        raise ChecksumMismatch(f"unreadable .CHECKSUM file: {text[:80]!r}")
    return token


def _csv_rows(zip_bytes: bytes) -> list[list[str]]:
    try:
        with zipfile.ZipFile(io.BytesIO(zip_bytes)) as zf:
            names = [n for n in zf.namelist() if n.endswith(".csv")]
            if not names:
                raise ChecksumMismatch("zip holds no CSV file")
            text = zf.read(names[0]).decode("utf-8")
    except zipfile.BadZipFile as exc:
        raise ChecksumMismatch(f"not a zip file: {exc}") from None
    return [r for r in csv.reader(io.StringIO(text)) if r]


def parse_klines(zip_bytes: bytes, symbol: str, now_ms: int) -> Batch:
    rows = _csv_rows(zip_bytes)
    if rows and not rows[0][0].strip().isdigit():  # files since 2022 start with a header line
        rows = rows[1:]
    checker = PageChecker("raw_candles", "asc")

    def make(r):
        t = int(r[0]) if r and r[0].strip().isdigit() else None
        if t is None:
            raise Reject("bad timestamp")
        if t > 10**14:  # microsecond timestamps (Binance switched some archives to µs)
            t //= 1000
        ts = timestamp_ms(t, now_ms)
        if len(r) < 10:
            raise Reject("missing field")
        return candle_row("binance", symbol, ts, r[1], r[2], r[3], r[4], r[5], r[9], "USDT")

    return checker.build(rows, make)


def parse_metrics(zip_bytes: bytes, symbol: str, now_ms: int) -> Batch:
    rows = _csv_rows(zip_bytes)
    header = [h.strip() for h in rows[0]] if rows else []
    if "create_time" not in header:
        raise ChecksumMismatch("metrics CSV without the create_time header")
    idx = {h: i for i, h in enumerate(header)}
    body = rows[1:]
    batch = Batch("raw_open_interest", received=len(body))
    by_ts: dict = {}
    for r in body:
        try:
            raw_t = r[idx["create_time"]]
            t = dt.datetime.strptime(raw_t.strip(), "%Y-%m-%d %H:%M:%S")
            ts = timestamp_ms(dt_to_ms(t), now_ms)
            row = oi_row("binance", symbol, ts, r[idx["sum_open_interest"]], r[idx["sum_open_interest_value"]])
        except (IndexError, KeyError, ValueError):
            batch.rejected["missing field"] += 1
            continue
        except Reject as exc:
            batch.rejected[str(exc)] += 1
            continue
        if ts in by_ts:
            batch.skipped += 1  # a documented archive quirk, not bad data
            continue
        by_ts[ts] = row
    batch.rows = [by_ts[k] for k in sorted(by_ts)]
    return batch


class BinanceArchive:
    """Downloads (or reads from cache) and verifies one day's zip at a time."""

    name = "binance_archive"
    limits = {"": Limit(20, 10)}

    def __init__(self, http: HttpClient, cache_dir: Path):
        self.http = http
        self.cache_dir = Path(cache_dir)

    def _cache_file(self, kind: str, symbol: str, day: dt.date) -> Path:
        sym = paths.safe_name(symbol.lower())
        folder = self.cache_dir / "binance" / sym / paths.safe_name(kind)
        return folder / f"{sym}-{kind}-{day:%Y-%m-%d}.zip"

    def day_zip(self, kind: str, symbol: str, day: dt.date) -> bytes:
        """The verified zip bytes; raises NotFound (no such day) or ChecksumMismatch."""
        if not _SYMBOL.match(symbol):
            raise ValueError(f"unsafe symbol {symbol!r}")
        cached = self._cache_file(kind, symbol, day)
        sums = cached.with_suffix(".zip.sha256")
        if cached.exists() and sums.exists():
            data = cached.read_bytes()
            if hashlib.sha256(data).hexdigest() == sums.read_text().strip():
                return data
        url_path = day_path(kind, symbol, day)
        expected = parse_checksum(self.http.get_bytes(url_path + ".CHECKSUM").decode("utf-8", "replace"))
        data = self.http.get_bytes(url_path)
        got = hashlib.sha256(data).hexdigest()
        if got != expected:
            raise ChecksumMismatch(
                f"{url_path.rsplit('/', 1)[-1]}: sha256 {got[:12]}... does not match .CHECKSUM {expected[:12]}...; not used"
            )
        cached.parent.mkdir(parents=True, exist_ok=True)
        tmp = cached.with_suffix(".part")
        tmp.write_bytes(data)
        os.replace(tmp, cached)  # atomic: a crash never leaves a half-written "verified" file
        sums.write_text(got)
        return data

    def fetch(self, kind: str, symbol: str, day: dt.date, now_ms: int) -> Batch:
        data = self.day_zip(kind, symbol, day)
        return parse_klines(data, symbol, now_ms) if kind == "klines" else parse_metrics(data, symbol, now_ms)
