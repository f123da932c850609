"""A local replay server speaking each exchange's public protocol on 127.0.0.1.

Each exchange lives under its own prefix (``http://127.0.0.1:PORT/binance``,
``/bybit``, ``/okx``, ``/hyperliquid``, ``/dydx``, ``/binance_archive``), so the
collectors run unchanged with their base URL pointed here. Responses have the
documented shapes (``fixtures/*.json`` hold recorded examples; a test checks
the generated answers against them) and are generated from the seeded series in
:mod:`tests.replay.series`, with query-aware paging: ``startTime``/``endTime``,
``limit``, Bybit's newest-first pages (anchored at ``start`` when it is given,
as Bybit's kline endpoint is) and ``cursor``, OKX's ``after``/``before``/
``begin``/``end``, dYdX's ``toISO``.

``server.now_ms`` is the server's clock: rows after it do not exist yet;
``advance()`` lets time pass. Faults are injected per exchange and path with
:meth:`ReplayServer.inject`.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import io
import json
import threading
import time
import zipfile
from collections import Counter
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable
from urllib.parse import parse_qs, urlsplit

from . import series as S

FIXTURES = Path(__file__).parent / "fixtures"
EXCHANGES = ("binance", "bybit", "okx", "hyperliquid", "dydx", "binance_archive")


def fixture(name: str):
    return json.loads((FIXTURES / f"{name}.json").read_text())


@dataclass
class Fault:
    exchange: str
    kind: str  # 429 418 503 451 403 500 garbage html slow badrows bad_checksum apierror transform
    path: str = ""  # substring of the path (or of the /info body type) the fault applies to
    times: int | None = None  # None = forever
    skip: int = 0  # let this many matching requests through first
    retry_after: str | None = "1"
    delay_s: float = 2.0
    # apierror: the exchange's own error document with this code and message, at this HTTP status
    code: Any = None
    msg: str = ""
    status: int = 200
    # transform: a function of the decoded JSON answer returning the document to send instead
    transform: Callable[[Any], Any] | None = None
    seen: int = 0
    fired: int = 0


def _f(x: float, nd: int = 8) -> str:
    s = f"{x:.{nd}f}"
    return s.rstrip("0").rstrip(".") if "." in s else s


def _iso(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def _from_iso(s: str) -> int:
    return int(dt.datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp() * 1000)


class ReplayServer:
    def __init__(self, now_ms: int | None = None):
        self.now_ms = now_ms if now_ms is not None else S.ORIGIN_MS + 3 * 86_400_000
        self.faults: list[Fault] = []
        self.counts: Counter = Counter()  # exchange -> requests
        self.paths: Counter = Counter()  # (exchange, path or info type) -> requests
        self.queries: list[tuple[str, str, dict]] = []  # (exchange, path, query or body) per request
        self.archive_missing_before = dt.date(2021, 12, 1)  # metrics start (about) here
        self.hl_candle_max = 5000
        self.archive_corrupt: set[tuple[str, str]] = set()  # (kind, date) whose zip does not match its CHECKSUM
        self._lock = threading.Lock()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    # -- control -----------------------------------------------------------
    def __enter__(self) -> "ReplayServer":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    @property
    def port(self) -> int:
        return self.httpd.server_address[1]

    def url(self, exchange: str) -> str:
        return f"http://127.0.0.1:{self.port}/{exchange}"

    def base_urls(self) -> dict[str, str]:
        return {e: self.url(e) for e in EXCHANGES}

    def env(self) -> dict[str, str]:
        return {f"LIQMAP_{e.upper()}_BASE_URL": self.url(e) for e in EXCHANGES}

    def advance(self, ms: int) -> None:
        self.now_ms += ms

    def inject(self, exchange: str, kind: str, **kw) -> Fault:
        f = Fault(exchange, kind, **kw)
        self.faults.append(f)
        return f

    def clear(self) -> None:
        self.faults.clear()

    def reset_counts(self) -> None:
        self.counts.clear()
        self.paths.clear()
        self.queries.clear()

    # -- HTTP --------------------------------------------------------------
    def _handler(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body go out in separate writes; without TCP_NODELAY the client's
            # delayed ACK adds ~40 ms to every keep-alive request.
            disable_nagle_algorithm = True

            def log_message(self, *a):  # keep test output clean
                pass

            def do_GET(self):
                server._serve(self, None)

            def do_POST(self):
                n = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(n) if n else b""
                try:
                    body = json.loads(raw or b"{}")
                except ValueError:
                    body = {}
                server._serve(self, body)

        return Handler

    def _send(self, h, status: int, body: bytes, ctype: str = "application/json", headers: dict | None = None):
        try:
            h.send_response(status)
            h.send_header("Content-Type", ctype)
            h.send_header("Content-Length", str(len(body)))
            for k, v in (headers or {}).items():
                h.send_header(k, v)
            h.end_headers()
            h.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout tests)
            pass

    def _serve(self, h, body):
        parts = urlsplit(h.path)
        segs = parts.path.split("/", 2)
        exchange = segs[1] if len(segs) > 1 else ""
        path = "/" + (segs[2] if len(segs) > 2 else "")
        q = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        label = body.get("type", path) if isinstance(body, dict) and path == "/info" else path
        with self._lock:
            self.counts[exchange] += 1
            self.paths[(exchange, label)] += 1
            self.queries.append((exchange, path, body if isinstance(body, dict) else q))
            fault = None
            for f in self.faults:
                if f.exchange == exchange and f.path in (label if path == "/info" else path):
                    f.seen += 1
                    if f.seen > f.skip and (f.times is None or f.fired < f.times):
                        f.fired += 1
                        fault = f
                        break
        if fault is not None and fault.kind != "bad_checksum":
            if self._fault(h, fault):
                return
        try:
            status, payload, ctype = self._route(exchange, path, q, body)
        except KeyError as exc:
            status, payload, ctype = 400, json.dumps({"msg": f"missing parameter {exc}"}).encode(), "application/json"
        if fault is not None and fault.kind == "badrows" and status == 200:
            payload = _corrupt_rows(payload)
        if fault is not None and fault.kind == "transform" and status == 200 and fault.transform is not None:
            payload = json.dumps(fault.transform(json.loads(payload))).encode()
        if fault is not None and fault.kind == "bad_checksum" and path.endswith(".CHECKSUM"):
            payload = (hashlib.sha256(b"something else").hexdigest() + "  " + path.rsplit("/", 1)[-1][:-9]).encode()
        self._send(h, status, payload, ctype)

    def _fault(self, h, f: Fault) -> bool:
        k = f.kind
        if k in ("429", "418", "500", "503", "451", "403"):
            headers = {"Retry-After": f.retry_after} if f.retry_after is not None and k in ("429", "418", "503") else {}
            body = b'{"code":-1003,"msg":"Too many requests"}' if k in ("429", "418") else b"{}"
            if k in ("451", "403"):
                body = b'{"code":0,"msg":"Service unavailable from a restricted location"}'
            self._send(h, int(k), body, headers=headers)
            return True
        if k == "apierror":
            self._send(h, f.status, json.dumps(api_error_document(f.exchange, f.code, f.msg)).encode())
            return True
        if k == "garbage":
            self._send(h, 200, b'[[1794787200000,"95000.1","95010.0","94990.',)  # truncated mid-number
            return True
        if k == "html":
            self._send(h, 200, b"<!DOCTYPE html><html><head><title>Maintenance</title></head>"
                               b"<body>We'll be back soon.</body></html>", "text/html; charset=utf-8")
            return True
        if k == "slow":
            time.sleep(f.delay_s)
            return False  # then answer normally (the client has given up by now)
        return False

    # -- routing -----------------------------------------------------------
    def _route(self, ex: str, path: str, q: dict, body):
        now = self.now_ms
        js = lambda obj: (200, json.dumps(obj).encode(), "application/json")  # noqa: E731
        if ex == "binance":
            coin = S.INSTRUMENTS["binance"].get(q.get("symbol", ""))
            if coin is None:
                return 400, b'{"code":-1121,"msg":"Invalid symbol."}', "application/json"
            start, end = _int(q.get("startTime")), _int(q.get("endTime"))
            if path == "/fapi/v1/klines":
                rows = _head_or_tail(S.window(coin, start, end, now), start, _limit(q, 500, 1500))
                return js([[c.ts, _f(c.open, 2), _f(c.high, 2), _f(c.low, 2), _f(c.close, 2), _f(c.volume, 3),
                            c.ts + S.FIVE_MIN - 1, _f(c.volume * c.close, 2), 1000, _f(c.taker_buy, 3),
                            _f(c.taker_buy * c.close, 2), "0"] for c in rows])
            if path == "/futures/data/openInterestHist":
                rows = _head_or_tail(S.window(coin, start, end, now), start, _limit(q, 30, 500))
                return js([{"symbol": q["symbol"], "sumOpenInterest": _f(c.oi), "sumOpenInterestValue": _f(c.oi * c.close),
                            "CMCCirculatingSupply": "19790000.00", "timestamp": c.ts} for c in rows])
            if path == "/fapi/v1/fundingRate":
                rows = _head_or_tail(S.funding(coin, 8 * S.HOUR, start, end, now), start, _limit(q, 100, 1000))
                return js([{"symbol": q["symbol"], "fundingTime": t, "fundingRate": _f(r), "markPrice": _f(S.price_at(coin, t))}
                           for t, r in rows])
        elif ex == "bybit":
            coin = S.INSTRUMENTS["bybit"].get(q.get("symbol", ""))
            if coin is None:
                return js({"retCode": 10001, "retMsg": "params error: symbol invalid", "result": {}, "time": now})
            wrap = lambda res: js({"retCode": 0, "retMsg": "OK", "result": res, "retExtInfo": {}, "time": now})  # noqa: E731
            if path == "/v5/market/kline":
                # With ``start``: the oldest ``limit`` candles from it (asking start=9999&limit=1
                # gives a symbol's first candle); without: the newest up to ``end``. Newest first.
                start = _int(q.get("start"))
                rows = _head_or_tail(S.window(coin, start, _int(q.get("end")), now), start, _limit(q, 200, 1000))[::-1]
                return wrap({"symbol": q["symbol"], "category": "linear", "list": [
                    [str(c.ts), _f(c.open, 2), _f(c.high, 2), _f(c.low, 2), _f(c.close, 2), _f(c.volume, 3),
                     _f(c.volume * c.close, 4)] for c in rows]})
            if path == "/v5/market/open-interest":
                rows = S.window(coin, _int(q.get("startTime")), _int(q.get("endTime")), now)[::-1]
                off = int(base64.b64decode(q["cursor"]).decode()) if q.get("cursor") else 0
                lim = _limit(q, 50, 200)
                page = rows[off: off + lim]
                nxt = base64.b64encode(str(off + lim).encode()).decode() if off + lim < len(rows) else ""
                return wrap({"symbol": q["symbol"], "category": "linear", "nextPageCursor": nxt, "list": [
                    {"openInterest": _f(c.oi), "timestamp": str(c.ts)} for c in page]})
            if path == "/v5/market/funding/history":
                rows = S.funding(coin, 8 * S.HOUR, _int(q.get("startTime")), _int(q.get("endTime")), now)[::-1]
                return wrap({"category": "linear", "list": [
                    {"symbol": q["symbol"], "fundingRate": _f(r), "fundingRateTimestamp": str(t)}
                    for t, r in rows[: _limit(q, 200, 200)]]})
        elif ex == "okx":
            ok = lambda data: js({"code": "0", "msg": "", "data": data})  # noqa: E731
            if path == "/api/v5/public/liquidation-orders":
                fam = q.get("instFamily") or q.get("uly") or ""
                inst = S.OKX_FAMILY.get(fam)
                if inst is None:
                    return js({"code": "51000", "msg": "Parameter instFamily error", "data": []})
                coin = S.INSTRUMENTS["okx"][inst]
                after, before = _int(q.get("after")), _int(q.get("before"))
                rows = [d for d in S.liquidations(coin, None, None, now)
                        if (after is None or d["ts"] < after) and (before is None or d["ts"] > before)]
                rows = rows[: _limit(q, 100, 100)]
                details = [{"bkLoss": "0", "bkPx": _f(d["bkPx"], 1), "ccy": "", "posSide": d["posSide"],
                            "side": d["side"], "sz": d["sz"], "ts": str(d["ts"])} for d in rows]
                return ok([{"details": details, "instFamily": fam, "instId": inst, "instType": "SWAP",
                            "totalLoss": "0", "uly": fam}])
            coin = S.INSTRUMENTS["okx"].get(q.get("instId", ""))
            if coin is None:
                return js({"code": "51001", "msg": "Instrument ID does not exist", "data": []})
            inst = q["instId"]
            if path == "/api/v5/market/history-candles":
                after, before = _int(q.get("after")), _int(q.get("before"))
                rows = [c for c in S.window(coin, None, None, now)[::-1]
                        if (after is None or c.ts < after) and (before is None or c.ts > before)]
                rows = rows[: _limit(q, 100, 100)]
                ct = float(S.OKX_CT_VAL[coin])
                return ok([[str(c.ts), _f(c.open, 2), _f(c.high, 2), _f(c.low, 2), _f(c.close, 2),
                            _f(c.volume / ct, 0), _f(c.volume, 3), _f(c.volume * c.close, 2),
                            "0" if c.ts + S.FIVE_MIN > now else "1"] for c in rows])
            if path == "/api/v5/rubik/stat/contracts/open-interest-history":
                rows = S.window(coin, _int(q.get("begin")), _int(q.get("end")), now)[::-1][: _limit(q, 100, 100)]
                ct = float(S.OKX_CT_VAL[coin])
                return ok([[str(c.ts), _f(c.oi / ct, 2), _f(c.oi, 4), _f(c.oi * c.close, 2)] for c in rows])
            if path == "/api/v5/public/funding-rate-history":
                after, before = _int(q.get("after")), _int(q.get("before"))
                rows = [(t, r) for t, r in S.funding(coin, 8 * S.HOUR, None, None, now)[::-1]
                        if (after is None or t < after) and (before is None or t > before)]
                return ok([{"formulaType": "withRate", "fundingRate": _f(r), "fundingTime": str(t), "instId": inst,
                            "instType": "SWAP", "method": "current_period", "realizedRate": _f(r)}
                           for t, r in rows[: _limit(q, 100, 400)]])
            if path == "/api/v5/public/instruments":
                return ok([{"instType": "SWAP", "instId": inst, "instFamily": inst[:-5], "uly": inst[:-5],
                            "ctVal": S.OKX_CT_VAL[coin], "ctMult": "1", "ctValCcy": coin, "settleCcy": "USDT",
                            "tickSz": "0.1", "lotSz": "0.01", "minSz": "0.01", "state": "live", "lever": "100"}])
        elif ex == "hyperliquid" and path == "/info" and isinstance(body, dict):
            kind = body.get("type")
            if kind == "metaAndAssetCtxs":
                universe, ctxs = [], []
                for coin in ("BTC", "ETH", "SOL"):
                    cs = S.window(coin, None, None, now) if coin in S.COINS else []
                    last = cs[-1] if cs else None
                    universe.append({"name": coin, "szDecimals": 5 if coin == "BTC" else 4, "maxLeverage": 40})
                    ctxs.append({"dayNtlVlm": "1169046.29406", "funding": "0.0000125", "impactPxs": ["1", "2"],
                                 "markPx": _f(last.close, 1) if last else "150.0", "midPx": _f(last.close, 1) if last else "150.0",
                                 "openInterest": _f(last.oi / 4, 4) if last else "1000.0", "oraclePx": _f(last.close, 1) if last else "150.0",
                                 "premium": "0.00031774", "prevDayPx": _f(last.open, 1) if last else "150.0"})
                return js([{"universe": universe}, ctxs])
            if kind == "candleSnapshot":
                req = body.get("req") or {}
                coin = req.get("coin")
                if coin not in S.COINS:
                    return js([])
                # From startTime forward, at most hl_candle_max (the docs: continue from the last timestamp).
                rows = S.window(coin, _int(req.get("startTime")), _int(req.get("endTime")), now)[: self.hl_candle_max]
                return js([{"T": c.ts + S.FIVE_MIN - 1, "c": _f(c.close, 1), "h": _f(c.high, 1), "i": "5m",
                            "l": _f(c.low, 1), "n": 1123, "o": _f(c.open, 1), "s": coin, "t": c.ts,
                            "v": _f(c.volume / 4, 5)} for c in rows])
            if kind == "fundingHistory":
                coin = body.get("coin")
                if coin not in S.COINS:
                    return js([])
                rows = S.funding(coin, S.HOUR, _int(body.get("startTime")), _int(body.get("endTime")), now)[:500]
                return js([{"coin": coin, "fundingRate": _f(r / 8), "premium": _f(r / 10), "time": t} for t, r in rows])
            return 422, b"Failed to deserialize the JSON body", "text/plain"
        elif ex == "dydx":
            ticker = path.rsplit("/", 1)[-1]
            coin = S.INSTRUMENTS["dydx"].get(ticker)
            if coin is None and path.startswith(("/v4/candles/perpetualMarkets/", "/v4/historicalFunding/")):
                return 404, b'{"errors":[{"msg":"ticker not found"}]}', "application/json"
            if path.startswith("/v4/candles/perpetualMarkets/"):
                lo = _from_iso(q["fromISO"]) if q.get("fromISO") else None
                hi = _from_iso(q["toISO"]) if q.get("toISO") else None
                rows = S.window(coin, lo, hi, now)[::-1][: _limit(q, 100, 1000)]
                return js({"candles": [{
                    "startedAt": _iso(c.ts), "ticker": ticker, "resolution": "5MINS", "low": _f(c.low, 0 if coin == "BTC" else 1),
                    "high": _f(c.high, 0 if coin == "BTC" else 1), "open": _f(c.open, 0 if coin == "BTC" else 1),
                    "close": _f(c.close, 0 if coin == "BTC" else 1), "baseTokenVolume": _f(c.volume / 20, 4),
                    "usdVolume": _f(c.volume / 20 * c.close, 4), "trades": 42,
                    "startingOpenInterest": _f(c.oi / 40, 4), "id": f"{ticker}-{c.ts}"} for c in rows]})
            if path.startswith("/v4/historicalFunding/"):
                hi = _from_iso(q["effectiveBeforeOrAt"]) if q.get("effectiveBeforeOrAt") else None
                rows = S.funding(coin, S.HOUR, None, hi, now)[::-1][: _limit(q, 100, 1000)]
                return js({"historicalFunding": [{"ticker": ticker, "rate": _f(r / 8, 10), "price": _f(S.price_at(coin, t), 5),
                                                  "effectiveAt": _iso(t), "effectiveAtHeight": str(30_000_000 + t // 1000)}
                                                 for t, r in rows]})
        elif ex == "binance_archive":
            return self._archive(path)
        return 404, b'{"msg":"no such endpoint"}', "application/json"

    # -- archive -----------------------------------------------------------
    def archive_zip(self, kind: str, symbol: str, day: dt.date) -> tuple[str, bytes]:
        coin = S.INSTRUMENTS["binance"][symbol]
        rows = S.archive_day(coin, day)
        out = io.StringIO()
        if kind == "klines":
            name = f"{symbol}-5m-{day:%Y-%m-%d}"
            out.write("open_time,open,high,low,close,volume,close_time,quote_volume,count,taker_buy_volume,"
                      "taker_buy_quote_volume,ignore\n")
            for c in rows:
                out.write(f"{c.ts},{c.open},{c.high},{c.low},{c.close},{c.volume},{c.ts + S.FIVE_MIN - 1},"
                          f"{c.volume * c.close:.2f},900,{c.taker_buy},{c.taker_buy * c.close:.2f},0\n")
        else:
            name = f"{symbol}-metrics-{day:%Y-%m-%d}"
            out.write("create_time,symbol,sum_open_interest,sum_open_interest_value,count_toptrader_long_short_ratio,"
                      "sum_toptrader_long_short_ratio,count_long_short_ratio,sum_taker_long_short_vol_ratio\n")
            # The real files are unsorted in places and repeat rows: so do these.
            order = list(range(len(rows)))
            order[10:20] = order[10:20][::-1]
            order += [5, 6, 7]
            for i in order:
                c = rows[i]
                t = dt.datetime.fromtimestamp(c.ts / 1000, dt.UTC).strftime("%Y-%m-%d %H:%M:%S")
                out.write(f"{t},{symbol},{c.oi:.4f},{c.oi * c.close:.8f},1.9,1.5,1.9,0.98\n")
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
            # a fixed date_time keeps the zip bytes (and so the sha256) deterministic
            zf.writestr(zipfile.ZipInfo(f"{name}.csv", date_time=(2024, 1, 1, 0, 0, 0)), out.getvalue())
        return f"{name}.zip", buf.getvalue()

    def _archive(self, path: str):
        parts = path.strip("/").split("/")
        # data/futures/um/daily/{kind}/{SYM}/[5m/]{file}
        if len(parts) < 7 or parts[:4] != ["data", "futures", "um", "daily"] or parts[4] not in ("klines", "metrics"):
            return 404, b"<Error><Code>NoSuchKey</Code></Error>", "application/xml"
        kind, symbol, fname = parts[4], parts[5], parts[-1]
        if symbol not in S.INSTRUMENTS["binance"]:
            return 404, b"<Error><Code>NoSuchKey</Code></Error>", "application/xml"
        checksum = fname.endswith(".CHECKSUM")
        stem = fname[:-9] if checksum else fname
        try:
            day = dt.date.fromisoformat(stem[-14:-4])
        except ValueError:
            return 404, b"<Error><Code>NoSuchKey</Code></Error>", "application/xml"
        if (kind == "metrics" and day < self.archive_missing_before) or \
                day >= dt.datetime.fromtimestamp(self.now_ms / 1000, dt.UTC).date():
            return 404, b"<Error><Code>NoSuchKey</Code></Error>", "application/xml"
        name, data = self.archive_zip(kind, symbol, day)
        if checksum:
            digest = hashlib.sha256(data).hexdigest()
            if (kind, day.isoformat()) in self.archive_corrupt:
                digest = hashlib.sha256(data + b"tampered").hexdigest()
            return 200, f"{digest}  {name}\n".encode(), "text/plain"
        return 200, data, "application/zip"


def api_error_document(exchange: str, code, msg: str):
    """An exchange's own error document (what arrives inside an HTTP 200 or 4xx)."""
    if exchange == "binance":
        return {"code": code, "msg": msg}
    if exchange == "bybit":
        return {"retCode": code, "retMsg": msg, "result": {}, "retExtInfo": {}, "time": 1794787200000}
    if exchange == "okx":
        return {"code": str(code), "msg": msg, "data": []}
    if exchange == "dydx":
        return {"errors": [{"value": "x", "msg": msg, "param": "ticker", "location": "params", "code": code}]}
    if exchange == "hyperliquid":
        return {"status": "err", "response": msg}
    raise ValueError(exchange)


def _corrupt_rows(payload: bytes) -> bytes:
    """Spoil a few rows of a list-of-lists answer (Binance klines shape): NaN-ish text, a zero price, a repeat."""
    rows = json.loads(payload)
    if isinstance(rows, list) and len(rows) > 4 and isinstance(rows[0], list):
        rows[1][4] = "n/a"
        rows[2][1] = "0"
        rows.insert(3, list(rows[3]))
        del rows[0][5:]
    return json.dumps(rows).encode()


def _int(v) -> int | None:
    if v is None or v == "":
        return None
    return int(v)


def _limit(q: dict, default: int, cap: int) -> int:
    return max(1, min(cap, int(q.get("limit") or default)))


def _head_or_tail(rows: list, start, limit: int) -> list:
    """Binance semantics: with startTime, the first ``limit`` rows; without, the latest ``limit``."""
    return rows[:limit] if start is not None else rows[-limit:]
