"""Collector trust (issue 10): what the HTTP layer and the exchange classes let through.

* No secret leaves in a message: a base URL with user-info and token-like query
  parameters, made to fail every way the replay server can (timeout, 5xx, 429,
  truncated JSON, HTML, geo-block, 404, malformed URL, the exchange's own error
  document), never shows up in an exception, a traceback, a log line, the run
  report or ``raw_source_runs``.
* Exchanges' own errors inside 200 (and 4xx) bodies are reported with their code
  and message, plain and capped; "slow down" codes are retried.
* At the door: zero open interest and rows stamped ahead of the run's clock are
  rejected and counted; rows swapped inside a page are put in order and kept;
  a key seen twice with different values is stored once, the same one whatever
  the arrival order.
* Bybit's first collection fetches the whole range, not the oldest 1,000 candles.

Real HTTP against the local replay server, real DuckDB for whole runs.
"""

from __future__ import annotations

import copy
import datetime as dt
import logging
import random
import traceback

import pytest
from replay import series as S
from replay.harness import FAST, factory, new_store, registry_for_tests
from replay.server import ReplayServer

from pipeline.collect.errors import (
    MAX_MESSAGE,
    ApiError,
    ApiRateLimited,
    ApiUnavailable,
    BadPayload,
    GeoBlocked,
    HttpError,
    NotFound,
    RateLimited,
    TransientError,
    redact,
)
from pipeline.collect.exchanges.base import (
    INTERVAL_MS,
    MAX_AHEAD_MS,
    PageChecker,
    Reject,
    candle_row,
    oi_row,
    timestamp_ms,
)
from pipeline.collect.exchanges.binance import Binance
from pipeline.collect.exchanges.bybit import Bybit
from pipeline.collect.exchanges.dydx import Dydx
from pipeline.collect.exchanges.hyperliquid import Hyperliquid
from pipeline.collect.exchanges.okx import Okx
from pipeline.collect.http import HttpClient, RateLimiter, RetryPolicy
from pipeline.collect.live import collect
from pipeline.collect.report import progress_line
from pipeline.timeutil import ms_to_dt

DAY = 86_400_000
NOW = S.ORIGIN_MS + 3 * DAY
REG = registry_for_tests()
USER, PASSWORD = "alice", "s3cr3t-Pw"
PARAM_SECRETS = {"signature": "SIGSECRET", "apiKey": "KEYSECRET", "X-Token": "TOKSECRET"}
SECRETS = (USER, PASSWORD, *PARAM_SECRETS.values())
CLASSES = {"binance": Binance, "bybit": Bybit, "okx": Okx, "hyperliquid": Hyperliquid, "dydx": Dydx}
INST = {"binance": "BTCUSDT", "bybit": "BTCUSDT", "okx": "BTC-USDT-SWAP", "hyperliquid": "BTC", "dydx": "BTC-USD"}


@pytest.fixture
def srv():
    with ReplayServer(now_ms=NOW) as s:
        yield s


def cred_url(srv, exchange: str, port: int | str | None = None) -> str:
    return f"http://{USER}:{PASSWORD}@127.0.0.1:{port or srv.port}/{exchange}"


def cred_urls(srv) -> dict[str, str]:
    return {e: cred_url(srv, e) for e in srv.base_urls()}


def assert_clean(text: str, where: str = "") -> None:
    """No secret, no control character."""
    leaked = [s for s in SECRETS if s.lower() in text.lower()]
    assert not leaked, f"{where}: {leaked} in {text!r}"
    assert all(ch.isprintable() for ch in text), f"{where}: control character in {text!r}"


def assert_exception_clean(exc: BaseException) -> None:
    assert_clean(str(exc), "str")
    assert_clean(repr(exc), "repr")
    assert_clean("".join(traceback.format_exception(exc)).replace("\n", " "), "traceback")
    assert len(str(exc)) <= MAX_MESSAGE


def client(url: str, exchange: str, policy: RetryPolicy = FAST) -> HttpClient:
    return HttpClient(exchange, url, policy=policy, limiter=RateLimiter({}), sleep=lambda s: None,
                      rng=random.Random(1))


def run(store, srv, *, urls=None, days=1.0, policy=FAST, assets=("btc",), exchanges=None, progress=None):
    return collect(store, assets=list(assets), exchanges=exchanges, reg=REG, base_urls=urls or srv.base_urls(),
                   factory=factory(policy), now_ms=srv.now_ms, lookback_days=days, progress=progress)


def one(report, exchange, dataset):
    [o] = report.by(exchange, dataset, "btc")
    return o


# -- 1. redact ---------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["key", "token", "secret", "signature", "apikey", "passphrase", "password",
                                  "KEY", "Token", "apiKey", "api_key", "X-MBX-APIKEY", "access_token",
                                  "client_secret", "OK-ACCESS-PASSPHRASE", "sign"])
def test_redact_token_like_parameters_any_case(name):
    text = f"HTTP 400 for http://127.0.0.1:5/x/y?symbol=BTCUSDT&{name}=V4lue.9%2F&startTime=17&limit=5: body"
    out = redact(text)
    assert "V4lue" not in out and f"{name}=***" in out
    assert "symbol=BTCUSDT" in out and "startTime=17" in out and "limit=5" in out and "127.0.0.1:5/x/y" in out


@pytest.mark.parametrize("text,gone,kept", [
    ("failed: http://alice:s3cr3t-Pw@127.0.0.1:9/okx/api", ["alice", "s3cr3t"], ["http://***@127.0.0.1:9/okx/api"]),
    ("HTTPS://alice:p@ss:w/rd@host.example/x", ["alice", "p@ss", "rd@host"], ["@host.example/x"]),
    ("socks5h://bob:hunter2@proxy:1080 refused", ["bob", "hunter2"], ["socks5h://***@proxy:1080"]),
    ("proxy alice:s3cr3t@proxy.local:8080 refused", ["alice", "s3cr3t"], ["***@proxy.local:8080"]),
    ('echo {"apiKey": "KEYSECRET", "Secret":"S2", "symbol": "BTC"}', ["KEYSECRET", "S2"], ['"symbol": "BTC"']),
    ("Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.abc", ["eyJhbGci"], ["Authorization"]),
    ("password : hunter2 , passphrase:pp1, token: t0k", ["hunter2", "pp1", "t0k"], ["password"]),
    ("to\nken=abc", [], ["to ken=abc"]),  # a control character does not hide a name; not a secret either
    ("key=\x00SECRET", ["SECRET"], ["key= ***"]),  # ... nor a value
])
def test_redact_user_info_json_headers(text, gone, kept):
    out = redact(text)
    for g in gone:
        assert g not in out, (g, out)
    for k in kept:
        assert k in out, (k, out)
    assert out.isprintable()


def test_redact_keeps_ordinary_messages_and_strips_control_characters():
    ok = "Binance /fapi/v1/klines: API error code -1121: Invalid symbol. (12:30 at bob@example.com, ratio=1:2)"
    assert redact(ok) == ok
    assert redact("a\r\nb\tc\x1b[31m\u202eevil\u200b\x7f\u2028z") == "a b c [31m evil z"


# -- 1 + 7. secrets never leave: the HTTP layer ---------------------------------------------
KLINES = "/fapi/v1/klines"
QUERY = {"symbol": "BTCUSDT", "interval": "5m", "limit": 3, **PARAM_SECRETS}


@pytest.mark.parametrize("fault,kw,exc_type", [
    ("500", {}, TransientError),
    ("503", {"retry_after": "0"}, TransientError),
    ("429", {"retry_after": "0"}, RateLimited),
    ("418", {"retry_after": "7200"}, RateLimited),
    ("slow", {"delay_s": 0.6}, TransientError),
    ("garbage", {}, BadPayload),
    ("html", {}, BadPayload),
    ("451", {}, GeoBlocked),
    ("403", {}, GeoBlocked),
    ("apierror", {"code": -2015, "msg": f"Invalid API-key, IP. echo apiKey={PARAM_SECRETS['apiKey']} "
                                        f"http://{USER}:{PASSWORD}@h"}, ApiError),
    ("apierror", {"code": -1003, "msg": "Too many requests", "status": 200}, ApiRateLimited),
    ("apierror", {"code": -1121, "msg": "Invalid symbol.", "status": 400}, ApiError),
])
def test_http_errors_carry_no_credentials(srv, caplog, fault, kw, exc_type):
    caplog.set_level(logging.DEBUG)
    srv.inject("binance", fault, path=KLINES, **kw)
    policy = RetryPolicy(retries=1, backoff_base_s=0.0, read_timeout_s=0.25, connect_timeout_s=0.5,
                         retry_after_cap_s=3.0)
    c = client(cred_url(srv, "binance"), "binance", policy)
    with pytest.raises(exc_type) as ei:
        c.get_json(KLINES, QUERY)
    assert_exception_clean(ei.value)
    assert srv.counts["binance"] >= 1  # it did reach the server: the credentials were in use
    assert "127.0.0.1" in caplog.text  # urllib3's request lines were logged ...
    assert_clean(caplog.text.replace("\n", " "), "log")  # ... redacted


def test_not_found_and_4xx_quote_the_url_redacted(srv):
    c = client(cred_url(srv, "dydx"), "dydx")
    with pytest.raises(NotFound) as ei:
        c.get_json("/v4/no/such/endpoint", PARAM_SECRETS)
    assert "/v4/no/such/endpoint" in str(ei.value)
    assert_exception_clean(ei.value)
    srv.inject("okx", "apierror", code=50113, msg="Invalid Sign", status=401)
    with pytest.raises(ApiError) as ei:
        client(cred_url(srv, "okx"), "okx").get_json("/api/v5/market/history-candles", PARAM_SECRETS)
    assert str(ei.value) == "OKX /api/v5/market/history-candles: API error code 50113: Invalid Sign"
    assert ei.value.status == 401


def test_malformed_and_unreachable_base_urls_are_redacted():
    bad_port = client(f"http://{USER}:{PASSWORD}@127.0.0.1:notaport/binance", "binance")
    with pytest.raises(HttpError) as ei:
        bad_port.get_json(KLINES, QUERY)
    assert "request failed (InvalidURL)" in str(ei.value)
    assert_exception_clean(ei.value)
    refused = client(f"http://{USER}:{PASSWORD}@127.0.0.1:1/binance", "binance")
    with pytest.raises(TransientError) as ei:
        refused.get_json(KLINES, QUERY)
    assert "connection failed" in str(ei.value) and "http://***@127.0.0.1:1/binance" in str(ei.value)
    assert_exception_clean(ei.value)


# -- 1 + 7. secrets never leave: whole runs, the status table and raw_source_runs ---------------
HOSTILE_MSG = (f"Invalid symbol.\x1b[2J\r\n<img src=x onerror=alert(1)> {{: onmouseover=alert(2) }} "
               f"apiKey={PARAM_SECRETS['apiKey']} http://{USER}:{PASSWORD}@evil.example/ " + "A" * 3000)


def test_a_run_with_credentials_in_every_base_url(srv, tmp_path):
    srv.inject("binance", "apierror", path="/fapi/v1/klines", code=-1121, msg=HOSTILE_MSG)
    srv.inject("okx", "500", path="/api/v5/rubik/")
    srv.inject("bybit", "403")
    srv.inject("hyperliquid", "garbage", path="metaAndAssetCtxs")  # open interest
    srv.inject("dydx", "html")
    lines = []
    with new_store(tmp_path) as store:
        rep = run(store, srv, urls=cred_urls(srv), progress=lambda o: lines.append(progress_line(o)))
        assert sum(srv.counts.values()) > 10  # everything went through the credentialed URLs
        b = one(rep, "binance", "candles")
        assert b.status == "error" and b.message.startswith("Binance /fapi/v1/klines: API error code -1121: "
                                                            "Invalid symbol. [2J <img src=x onerror=alert(1)> "
                                                            "{: onmouseover=alert(2) } apiKey=*** http://***@")
        assert b.message.endswith("...") and len(b.message) < 260
        assert one(rep, "binance", "open_interest").status == "ok"  # an API error is that answer's, not the exchange's
        assert one(rep, "okx", "open_interest").status == "error" and one(rep, "okx", "candles").status == "ok"
        assert one(rep, "hyperliquid", "open_interest").status == "error"
        assert one(rep, "bybit", "candles").status == "blocked" and one(rep, "dydx", "candles").status == "error"
        failing = [o for o in rep.outcomes if o.status in ("error", "blocked")]
        assert len(failing) >= 8
        for o in rep.outcomes:
            assert_clean(o.message, f"{o.exchange} {o.dataset}")
        assert_clean(rep.table().replace("\n", " "), "table")
        assert_clean(" ".join(lines), "progress")
        stored = store.con.execute("SELECT * FROM raw_source_runs").fetchall()
        assert len(stored) == len(rep.outcomes)
        for row in stored:
            assert_clean(" ".join(str(v) for v in row), "raw_source_runs")


def test_open_interest_through_credentialed_urls_is_collected(srv, tmp_path):
    with new_store(tmp_path) as store:
        rep = run(store, srv, urls=cred_urls(srv))
        assert {o.status for o in rep.outcomes} == {"ok", "unsupported"}, rep.table()
        n = dict(store.con.execute(
            "SELECT exchange, count(*) FROM raw_open_interest GROUP BY ALL").fetchall())
        assert n == {"binance": 289, "bybit": 289, "okx": 289, "hyperliquid": 1, "dydx": 289}


# -- 2. exchanges' own errors ---------------------------------------------------------------
@pytest.mark.parametrize("exchange,dataset,code,want", [
    ("binance", "candles", -1121, "Binance /fapi/v1/klines: API error code -1121: Invalid symbol."),
    ("bybit", "candles", 10001, "Bybit /v5/market/kline: API error retCode 10001: Invalid symbol."),
    ("bybit", "open_interest", "10001", "Bybit /v5/market/open-interest: API error retCode 10001: Invalid symbol."),
    ("okx", "candles", 51001, "OKX /api/v5/market/history-candles: API error code 51001: Invalid symbol."),
    ("okx", "liquidations", 51000, "OKX /api/v5/public/instruments: API error code 51000: Invalid symbol."),
    ("dydx", "funding", None, "dYdX /v4/historicalFunding/BTC-USD: API error: Invalid symbol."),
    ("hyperliquid", "candles", None, "Hyperliquid /info candleSnapshot: API error status err: Invalid symbol."),
])
def test_api_error_in_a_200_body_keeps_the_exchanges_code_and_message(srv, exchange, dataset, code, want):
    srv.inject(exchange, "apierror", code=code, msg="Invalid symbol.")
    ex = CLASSES[exchange](client(srv.url(exchange), exchange))
    with pytest.raises(ApiError) as ei:
        list(ex.fetch(dataset, INST[exchange], NOW - DAY, NOW))
    assert str(ei.value) == want
    assert ex.http.requests == 1  # not a code worth retrying
    assert ei.value.code == ("" if code is None else str(code)) or exchange == "hyperliquid"


def test_api_error_in_a_4xx_body(srv):
    # The replay server answers an unknown Binance symbol like Binance: HTTP 400 with {"code": -1121, ...}.
    with pytest.raises(ApiError) as ei:
        list(Binance(client(srv.url("binance"), "binance")).fetch("candles", "NOPEUSDT", NOW - DAY, NOW))
    assert str(ei.value) == "Binance /fapi/v1/klines: API error code -1121: Invalid symbol."
    assert ei.value.status == 400 and ei.value.code == "-1121"


@pytest.mark.parametrize("exchange,dataset,code,exc_type", [
    ("binance", "candles", -1003, ApiRateLimited),
    ("binance", "funding", -1008, ApiUnavailable),
    ("bybit", "candles", 10006, ApiRateLimited),
    ("bybit", "funding", 10018, ApiRateLimited),
    ("okx", "candles", 50011, ApiRateLimited),
    ("okx", "open_interest", 50001, ApiUnavailable),
])
def test_slow_down_codes_are_retried_then_given_up(srv, exchange, dataset, code, exc_type):
    # Once: the retry gets the data, and nothing is lost.
    f = srv.inject(exchange, "apierror", code=code, msg="Too many visits", times=1)
    ex = CLASSES[exchange](client(srv.url(exchange), exchange))
    rows = [r for b in ex.fetch(dataset, INST[exchange], NOW - DAY, NOW) for r in b.rows]
    assert f.fired == 1 and rows and ex.http.retries == 1
    want = len([r for b in CLASSES[exchange](client(srv.url(exchange), exchange)).fetch(
        dataset, INST[exchange], NOW - DAY, NOW) for r in b.rows])
    assert len(rows) == want
    # Forever: given up after the policy's attempts, as a rate limit / transient failure.
    srv.clear()
    srv.inject(exchange, "apierror", code=code, msg="Too many visits")
    ex = CLASSES[exchange](client(srv.url(exchange), exchange))
    with pytest.raises(exc_type) as ei:
        list(ex.fetch(dataset, INST[exchange], NOW - DAY, NOW))
    assert isinstance(ei.value, (RateLimited, TransientError)) and isinstance(ei.value, ApiError)
    assert ex.http.requests == FAST.retries + 1 and f"{code}: Too many visits" in str(ei.value)


def test_a_rate_limit_code_rests_the_exchange_for_the_run(srv, tmp_path):
    srv.inject("binance", "apierror", code=-1003, msg="Too much request weight used; current limit is 2400")
    with new_store(tmp_path) as store:
        rep = run(store, srv, exchanges=["binance", "okx"])
        mine = [o for o in rep.outcomes if o.exchange == "binance" and o.status != "unsupported"]
        assert {o.status for o in mine} == {"error"}
        assert "API error code -1003: Too much request weight used" in mine[0].message
        assert srv.counts["binance"] == FAST.retries + 1  # not hammered for the other datasets
        assert {o.status for o in rep.outcomes if o.exchange == "okx"} == {"ok"}


# -- 3. zero open interest ---------------------------------------------------------------
def _zero_oi(exchange):
    """A transform that sets one row's open interest to zero in ``exchange``'s answer."""
    def t(doc):
        doc = copy.deepcopy(doc)
        if exchange == "binance":
            doc[3]["sumOpenInterest"] = "0"
            doc[4]["sumOpenInterestValue"] = "0.0"
        elif exchange == "bybit":
            doc["result"]["list"][3]["openInterest"] = "0"
        elif exchange == "okx":
            doc["data"][3][2] = "0"
        elif exchange == "dydx":
            doc["candles"][3]["startingOpenInterest"] = "0"
        elif exchange == "hyperliquid":
            doc[1][0]["openInterest"] = "0.0"
        return doc
    return t


@pytest.mark.parametrize("exchange,path,zeros,expected", [
    ("binance", "/futures/data/openInterestHist", 2, 289),
    ("bybit", "/v5/market/open-interest", 1, 289),
    ("okx", "/api/v5/rubik/stat/contracts/open-interest-history", 1, 289),
    ("dydx", "/v4/candles/", 1, 289),
    ("hyperliquid", "metaAndAssetCtxs", 1, 1),
])
def test_zero_open_interest_is_rejected_and_counted(srv, tmp_path, exchange, path, zeros, expected):
    srv.inject(exchange, "transform", path=path, times=1, transform=_zero_oi(exchange))
    with new_store(tmp_path) as store:
        rep = run(store, srv, exchanges=[exchange])
        o = one(rep, exchange, "open_interest")
        assert o.status == "partial" and o.reasons == {"zero open interest": zeros}, o.message
        assert f"{zeros} zero open interest" in o.message
        assert o.stored == expected - zeros  # every other row is stored
        assert store.con.execute("SELECT count(*) FROM raw_open_interest WHERE oi_base <= 0 OR oi_usd <= 0"
                                 ).fetchone() == (0,)
        if exchange == "dydx":  # the candle that carried it is fine and stored
            assert one(rep, "dydx", "candles").stored == 288


def test_oi_row_refuses_zero_and_negative():
    for bad, why in ((0, "zero open interest"), ("0.000", "zero open interest"), ("-1", "negative")):
        with pytest.raises(Reject, match=why):
            oi_row("x", "y", S.ORIGIN_MS, oi_base=bad)
        with pytest.raises(Reject, match=why):
            oi_row("x", "y", S.ORIGIN_MS, oi_base="5", oi_usd=bad)
    assert oi_row("x", "y", S.ORIGIN_MS, oi_base="1e-8")["oi_base"] == 1e-8


# -- 4. rows ahead of the run's clock -----------------------------------------------------------
def test_timestamps_more_than_one_interval_ahead_are_rejected():
    assert MAX_AHEAD_MS == INTERVAL_MS
    assert timestamp_ms(NOW + INTERVAL_MS, NOW) == NOW + INTERVAL_MS
    for ahead in (INTERVAL_MS + 1, 6 * 3_600_000, DAY - 1):
        with pytest.raises(Reject, match="timestamp out of range"):
            timestamp_ms(NOW + ahead, NOW)


def test_a_future_row_is_rejected_and_does_not_block_its_series(srv, tmp_path):
    def future_kline(doc):
        last = list(doc[-1])
        last[0] = NOW + 6 * 3_600_000  # six hours ahead: was stored, and the next runs started from it
        return doc + [last]

    def future_oi(doc):
        row = dict(doc[-1], timestamp=NOW + 10 * 60_000)
        return doc + [row]

    srv.inject("binance", "transform", path="/fapi/v1/klines", times=1, transform=future_kline)
    srv.inject("binance", "transform", path="/futures/data/openInterestHist", times=1, transform=future_oi)
    with new_store(tmp_path) as store:
        rep = run(store, srv, exchanges=["binance"])
        assert one(rep, "binance", "candles").reasons == {"timestamp out of range": 1}
        assert one(rep, "binance", "open_interest").reasons == {"timestamp out of range": 1}
        srv.advance(3_600_000)
        run(store, srv, exchanges=["binance"])
        ts = [r[0] for r in store.con.execute(
            "SELECT ts FROM raw_candles WHERE exchange = 'binance' ORDER BY ts").fetchall()]
        step = dt.timedelta(milliseconds=INTERVAL_MS)
        assert ts[-1] == ms_to_dt(srv.now_ms - INTERVAL_MS)  # the series moved on with the clock
        assert all(b - a == step for a, b in zip(ts, ts[1:])) and len(ts) == 288 + 12
        assert store.con.execute("SELECT max(ts) FROM raw_open_interest").fetchone()[0] <= ms_to_dt(srv.now_ms)


# -- 5. order and duplicates inside a page --------------------------------------------------------
def _swap(rows_of):
    def t(doc):
        doc = copy.deepcopy(doc)
        rows = rows_of(doc)
        for i in range(5, len(rows) - 1, 17):  # several neighbours swapped on every page
            rows[i], rows[i + 1] = rows[i + 1], rows[i]
        rows[0], rows[-1] = rows[-1], rows[0]  # and the page's ends
        return doc
    return t


@pytest.mark.parametrize("exchange,path,rows_of", [
    ("binance", "/fapi/v1/klines", lambda d: d),
    ("bybit", "/v5/market/kline", lambda d: d["result"]["list"]),
    ("okx", "/api/v5/market/history-candles", lambda d: d["data"]),
    ("hyperliquid", "candleSnapshot", lambda d: d),
    ("dydx", "/v4/candles/", lambda d: d["candles"]),
])
def test_rows_out_of_order_inside_a_page_are_kept(srv, tmp_path, exchange, path, rows_of):
    stored = {}
    for name in ("clean", "swapped"):
        if name == "swapped":
            srv.inject(exchange, "transform", path=path, transform=_swap(rows_of))
        with new_store(tmp_path, f"{name}.duckdb") as store:
            rep = run(store, srv, exchanges=[exchange])
            o = one(rep, exchange, "candles")
            assert o.status == "ok" and o.rejected == 0 and o.stored >= 288, o.message
            stored[name] = store.con.execute(
                "SELECT * FROM raw_candles WHERE exchange = ? ORDER BY ts", [exchange]).fetchall()
    assert stored["swapped"] == stored["clean"]  # every row, every value: nothing lost to the swaps
    ts = [r[3] for r in stored["swapped"]]
    step = dt.timedelta(milliseconds=INTERVAL_MS)
    assert all(b - a == step for a, b in zip(ts, ts[1:])) and ts[-1] == ms_to_dt(NOW - INTERVAL_MS)


def test_a_key_twice_with_different_values_is_stored_once_whatever_the_order(srv, tmp_path):
    def twin(first: bool):
        def t(doc):
            doc = copy.deepcopy(doc)
            orig = doc[40]
            other = list(orig)
            other[4] = other[2]  # close at the high: a different, still consistent candle
            other[5] = f"{float(orig[5]) * 2:.3f}"  # the later revision: more volume
            other[9] = orig[9]
            doc.insert(40 if first else 41, other)
            return doc
        return t

    stored = []
    for i, first in enumerate((True, False)):
        srv.clear()
        srv.inject("binance", "transform", path="/fapi/v1/klines", transform=twin(first))
        with new_store(tmp_path, f"s{i}.duckdb") as store:
            rep = run(store, srv, exchanges=["binance"])
            o = one(rep, "binance", "candles")
            assert o.reasons == {"duplicate with different values": 1} and o.stored == 288
            assert "1 duplicate with different values" in o.message
            stored.append(store.con.execute(
                "SELECT * FROM raw_candles WHERE exchange = 'binance' ORDER BY ts").fetchall())
    assert stored[0] == stored[1]
    twin_ts = ms_to_dt(S.window("BTC", NOW - DAY, None, NOW)[40].ts)
    [row] = [r for r in stored[0] if twin_ts in r]
    assert row[7] == row[5]  # the revision with more volume won (close == high)


def test_page_checker_keeps_one_row_per_key_deterministically():
    def make(rec):
        ts, vol = rec
        return candle_row("x", "y", S.ORIGIN_MS + ts * INTERVAL_MS, 10, 11, 9, 10, vol, None, "USD")

    a = PageChecker("raw_candles", "asc").build([(2, 1.0), (1, 5.0), (2, 3.0), (0, 1.0), (1, 5.0)], make)
    b = PageChecker("raw_candles", "asc").build([(1, 5.0), (2, 3.0), (0, 1.0), (2, 1.0), (1, 5.0)], make)
    assert a.rows == b.rows and [r["volume"] for r in a.rows] == [1.0, 5.0, 3.0]
    assert a.rejected == b.rejected == {"duplicate": 1, "duplicate with different values": 1}
    # Across pages, the row handed on first stands (it may be stored already).
    chk = PageChecker("raw_candles", "desc")
    first = chk.build([(3, 1.0), (2, 1.0)], make)
    second = chk.build([(2, 9.0), (1, 1.0)], make)
    assert [r["volume"] for r in first.rows + second.rows] == [1.0, 1.0, 1.0]
    assert second.rejected == {"duplicate with different values": 1}


# -- 6. Bybit's first collection covers the whole range ---------------------------------------------
def test_bybit_server_pages_like_bybit(srv):
    # start=9999&limit=1 answers a symbol's first candle (Bybit's own behaviour: pages anchor at start).
    doc = client(srv.url("bybit"), "bybit").get_json(
        "/v5/market/kline", {"category": "linear", "symbol": "BTCUSDT", "interval": "5", "start": 9999, "limit": 1})
    assert [int(r[0]) for r in doc["result"]["list"]] == [S.ORIGIN_MS]


def test_bybit_first_collection_gets_more_than_1000_candles(tmp_path):
    now = S.ORIGIN_MS + 5 * DAY  # 1440 closed candles in the range, the page limit is 1000
    with ReplayServer(now_ms=now) as srv:
        ex = Bybit(client(srv.url("bybit"), "bybit"))
        rows = [r for b in ex.fetch("candles", "BTCUSDT", now - 5 * DAY, now) for r in b.rows]
        ts = sorted(r["ts"] for r in rows)
        step = dt.timedelta(milliseconds=INTERVAL_MS)
        assert len(ts) == 1440 and ts[0] == ms_to_dt(now - 5 * DAY) and ts[-1] == ms_to_dt(now - INTERVAL_MS)
        assert all(b - a == step for a, b in zip(ts, ts[1:]))
        asked = [q for _, path, q in srv.queries if path == "/v5/market/kline"]
        assert len(asked) == 2 and all(int(q["end"]) - int(q["start"]) <= 999 * INTERVAL_MS for q in asked)
        # Through a whole run into the store, for both assets.
        with new_store(tmp_path) as store:
            rep = run(store, srv, days=5, exchanges=["bybit"], assets=("btc", "eth"))
            assert [o.stored for o in rep.outcomes if o.dataset == "candles"] == [1440, 1440]


def test_bybit_failure_midway_leaves_no_hole_for_the_next_run(tmp_path):
    now = S.ORIGIN_MS + 5 * DAY
    with ReplayServer(now_ms=now) as srv, new_store(tmp_path) as store:
        srv.inject("bybit", "500", path="/v5/market/kline", skip=1)  # the second window fails
        rep = run(store, srv, days=5, exchanges=["bybit"])
        o = one(rep, "bybit", "candles")
        assert o.status == "partial" and o.stored == 1000
        srv.clear()
        srv.advance(3_600_000)
        run(store, srv, days=5, exchanges=["bybit"])
        ts = [r[0] for r in store.con.execute(
            "SELECT ts FROM raw_candles WHERE exchange = 'bybit' ORDER BY ts").fetchall()]
        step = dt.timedelta(milliseconds=INTERVAL_MS)
        assert len(ts) == 1440 + 12 and all(b - a == step for a, b in zip(ts, ts[1:]))
