"""Exchange collectors: documented response shapes parse into valid rows; bad rows are rejected with counts;
pagination walks each exchange's scheme (Binance forward, Bybit newest-first + cursor, OKX ``after``,
Hyperliquid forward, dYdX ``toISO``) against the local replay server."""

from __future__ import annotations

import datetime as dt
import math

import pytest
from replay import series as S
from replay.harness import factory
from replay.server import ReplayServer, fixture

from pipeline import settings
from pipeline.collect.errors import ApiError, BadPayload
from pipeline.collect.exchanges import venues
from pipeline.collect.exchanges.base import INTERVAL_MS, Batch, PageChecker, Reject, candle_row, number
from pipeline.collect.exchanges.binance import Binance
from pipeline.collect.exchanges.bybit import Bybit
from pipeline.collect.exchanges.dydx import Dydx
from pipeline.collect.exchanges.hyperliquid import Hyperliquid
from pipeline.collect.exchanges.okx import Okx
from pipeline.timeutil import ms_to_dt

NOW = S.ORIGIN_MS + 3 * 86_400_000
FIX_NOW = S.ORIGIN_MS + 86_400_000  # "now" for the recorded fixtures (all rows are before it)


class FakeHttp:
    """Returns recorded documents by path (or /info type); counts requests like the real client."""

    name = "fake"

    def __init__(self, docs: dict):
        self.docs = docs
        self.requests = 0
        self.calls = []

    def _doc(self, key):
        self.requests += 1
        for k, v in self.docs.items():
            if key.startswith(k):
                return v
        raise AssertionError(f"no fixture for {key}")

    def get_json(self, path, params=None, weight=1.0):
        self.calls.append((path, dict(params or {})))
        return self._doc(path)

    def post_json(self, path, body, weight=1.0):
        self.calls.append((path, body))
        return self._doc(body["type"])


def collect_all(ex, dataset, inst, since=S.ORIGIN_MS - 86_400_000, now=FIX_NOW) -> dict[str, Batch]:
    out: dict[str, Batch] = {}
    for b in ex.fetch(dataset, inst, since, now):
        agg = out.setdefault(b.table, Batch(b.table))
        agg.rows += b.rows
        agg.received += b.received
        agg.rejected.update(b.rejected)
        agg.skipped += b.skipped
    return out


# -- recorded shapes -------------------------------------------------------------
def test_binance_fixtures_parse():
    ex = Binance(FakeHttp(fixture("binance")))
    c = collect_all(ex, "candles", "BTCUSDT")["raw_candles"]
    assert [r["ts"] for r in c.rows] == [ms_to_dt(S.ORIGIN_MS), ms_to_dt(S.ORIGIN_MS + INTERVAL_MS)]
    r = c.rows[0]
    assert (r["open"], r["high"], r["low"], r["close"], r["volume"], r["taker_buy_volume"]) == \
        (95012.40, 95120.00, 94980.10, 95088.70, 182.431, 97.220)
    assert r["quote"] == "USDT" and r["interval_s"] == 300 and r["exchange"] == "binance"
    oi = collect_all(ex, "open_interest", "BTCUSDT")["raw_open_interest"].rows
    assert oi[0]["oi_base"] == 82014.381 and oi[0]["oi_usd"] == pytest.approx(7792356770.1234)
    f = collect_all(ex, "funding", "BTCUSDT")["raw_funding"].rows
    assert [x["rate"] for x in f] == [0.0001, 0.00008412]
    with pytest.raises(Exception, match="liquidations"):
        list(ex.fetch("liquidations", "BTCUSDT", 0, FIX_NOW))


def test_bybit_fixtures_parse_newest_first():
    ex = Bybit(FakeHttp(fixture("bybit")))
    c = collect_all(ex, "candles", "BTCUSDT")["raw_candles"]
    assert c.n_rejected == 0 and [r["close"] for r in c.rows] == [95031.4, 95090.1]
    assert c.rows[0]["taker_buy_volume"] is None
    oi = collect_all(ex, "open_interest", "BTCUSDT")["raw_open_interest"].rows
    assert oi[0]["oi_base"] == 54120.311 and oi[0]["oi_usd"] is None
    assert len(collect_all(ex, "funding", "BTCUSDT")["raw_funding"].rows) == 2


def test_bybit_api_error_is_reported():
    ex = Bybit(FakeHttp({"/v5/market/kline": {"retCode": 10001, "retMsg": "params error", "result": {}}}))
    with pytest.raises(ApiError, match="retCode 10001: params error"):
        collect_all(ex, "candles", "BTCUSDT")


def test_okx_fixtures_parse_contracts_and_liquidation_sides():
    ex = Okx(FakeHttp(fixture("okx")))
    c = collect_all(ex, "candles", "BTC-USDT-SWAP")["raw_candles"].rows
    assert c[0]["volume"] == 98.11  # volCcy (base), not contracts
    oi = collect_all(ex, "open_interest", "BTC-USDT-SWAP")["raw_open_interest"].rows
    assert (oi[0]["oi_base"], oi[0]["oi_usd"]) == (31204.5521, 2965367312.11)
    f = collect_all(ex, "funding", "BTC-USDT-SWAP")["raw_funding"].rows
    assert f[0]["rate"] == pytest.approx(0.0000746572464476)
    liq = collect_all(ex, "liquidations", "BTC-USDT-SWAP")["raw_liquidations"].rows
    # 40 contracts * 0.01 BTC; net-mode forced buy = a short liquidated
    assert [(x["side"], x["size_base"]) for x in liq] == [("long", 0.4), ("short", 0.03)]
    assert liq[0]["notional_usd"] == pytest.approx(0.4 * 94801.3)


def test_okx_error_code():
    ex = Okx(FakeHttp({"/api/v5/market/history-candles": {"code": "50011", "msg": "Too Many Requests", "data": []}}))
    with pytest.raises(ApiError, match="50011"):
        collect_all(ex, "candles", "BTC-USDT-SWAP")


def test_hyperliquid_fixtures_parse_and_current_oi():
    http = FakeHttp(fixture("hyperliquid"))
    ex = Hyperliquid(http)
    c = collect_all(ex, "candles", "BTC")["raw_candles"].rows
    assert c[0]["close"] == 95085.0 and c[0]["quote"] == "USDC"
    oi = collect_all(ex, "open_interest", "BTC")["raw_open_interest"].rows
    assert oi[0]["oi_base"] == 20512.44321 and oi[0]["oi_usd"] == pytest.approx(20512.44321 * 95030.5)
    assert oi[0]["ts"] == ms_to_dt(FIX_NOW)  # observation time = the run, on the minute
    eth = collect_all(ex, "open_interest", "ETH")["raw_open_interest"].rows
    assert eth[0]["oi_base"] == 525012.1204
    assert [p for p, b in http.calls if isinstance(b, dict) and b.get("type") == "metaAndAssetCtxs"].__len__() == 1
    with pytest.raises(ApiError, match="no perpetual named 'DOGE'"):
        collect_all(ex, "open_interest", "DOGE")


def test_dydx_candles_carry_open_interest():
    ex = Dydx(FakeHttp(fixture("dydx")))
    out = collect_all(ex, "candles", "BTC-USD")
    assert [r["oi_base"] for r in out["raw_open_interest"].rows] == [2051.4421, 2050.1102]
    assert out["raw_candles"].rows[0]["ts"] == dt.datetime(2026, 11, 16, 0, 5)
    assert len(collect_all(ex, "funding", "BTC-USD")["raw_funding"].rows) == 2
    assert ex.derived == {"open_interest": "candles"}


def test_capability_tables():
    reg = venues()
    assert set(reg) == {"binance", "bybit", "okx", "hyperliquid", "dydx"}
    for cls in reg.values():
        assert set(cls.capabilities) == {"candles", "taker_buy", "oi_history", "oi_current", "funding", "liquidations"}
    assert reg["binance"].capabilities["taker_buy"] and reg["okx"].capabilities["liquidations"]
    assert not reg["hyperliquid"].capabilities["oi_history"] and reg["hyperliquid"].capabilities["oi_current"]


# -- row-wise validation --------------------------------------------------------------
def test_bad_rows_are_rejected_with_counts():
    t = S.ORIGIN_MS
    good = lambda i, p=95000.0: [t + i * INTERVAL_MS, str(p), str(p + 10), str(p - 10), str(p + 5), "10", 0, "0", 1, "4", "0", "0"]  # noqa: E731
    page = [
        good(0),
        [t + INTERVAL_MS, "95000", "95010"],                        # missing fields
        good(2)[:1] + ["n/a"] + good(2)[2:],                         # a string where a number belongs
        good(3)[:4] + [math.nan] + good(3)[5:],                      # NaN
        good(4, p=0.0)[:1] + ["0", "10", "0", "5"] + good(4)[5:],    # zero price
        good(5, p=-3.0),                                             # negative price
        good(6),
        good(6),                                                     # duplicate
        good(1),                                                     # out of order: put in its place, kept
        good(7)[:2] + ["94000"] + good(7)[3:],                       # high below open: inconsistent
        [t + 8 * INTERVAL_MS + 1000] + good(8)[1:],                  # off the 5-minute grid
        good(9)[:9] + ["11"] + good(9)[10:],                         # taker buy above volume
        good(10),
    ]
    ex = Binance(FakeHttp({"/fapi/v1/klines": page}))
    b = collect_all(ex, "candles", "BTCUSDT")["raw_candles"]
    assert [r["ts"] for r in b.rows] == [ms_to_dt(t + i * INTERVAL_MS) for i in (0, 1, 6, 10)]
    assert b.received == len(page)
    assert dict(b.rejected) == {
        "missing field": 1, "not a number": 1, "NaN or infinite": 1, "zero or negative": 2, "duplicate": 1,
        "inconsistent OHLC": 1, "not on the 5-minute grid": 1, "taker buy above volume": 1,
    }


def test_funding_and_oi_validation():
    ex = Bybit(FakeHttp({"/v5/market/open-interest": {"retCode": 0, "result": {"list": [
        {"openInterest": "5", "timestamp": str(S.ORIGIN_MS + 600_000)},
        {"openInterest": "-1", "timestamp": str(S.ORIGIN_MS + 300_000)},
        {"timestamp": str(S.ORIGIN_MS)},
        {"openInterest": "5", "timestamp": "yesterday"},
        {"openInterest": "5", "timestamp": "99999999999999"},
    ], "nextPageCursor": ""}}}))
    b = collect_all(ex, "open_interest", "BTCUSDT")["raw_open_interest"]
    assert len(b.rows) == 1
    assert dict(b.rejected) == {"negative": 1, "missing field": 1, "bad timestamp": 1, "timestamp out of range": 1}


def test_number_and_row_helpers():
    assert number("1e3") == 1000.0 and number(7) == 7.0
    for bad in (True, None, "", "abc", [1], float("inf")):
        with pytest.raises(Reject):
            number(bad)
    with pytest.raises(Reject, match="inconsistent"):
        candle_row("x", "y", S.ORIGIN_MS, 10, 9, 8, 9.5, 1, None, "USD")
    chk = PageChecker("raw_funding", "desc")
    b = chk.build([(2, 0.1), (1, 0.2), (3, 0.3)], lambda r: {"ts": ms_to_dt(S.ORIGIN_MS + r[0]), "rate": r[1]})
    assert [r["rate"] for r in b.rows] == [0.3, 0.1, 0.2] and not b.rejected  # put in the documented order


def test_wrong_document_type_is_bad_payload():
    # (Binance's own {"code", "msg"} error document is an ApiError: tests/test_collect_trust.py)
    ex = Binance(FakeHttp({"/fapi/v1/klines": {"unexpected": "object"}}))
    with pytest.raises(BadPayload, match="expected a JSON list"):
        collect_all(ex, "candles", "BTCUSDT")


# -- against the replay server: shapes and paging -------------------------------------------
@pytest.fixture(scope="module")
def srv():
    with ReplayServer(now_ms=NOW) as s:
        yield s


def _shape(x):
    if isinstance(x, dict):
        return {k: _shape(v) for k, v in sorted(x.items())}
    if isinstance(x, list):
        return [_shape(x[0])] if x else []
    return type(x).__name__


@pytest.mark.parametrize("exchange,path,params", [
    ("binance", "/fapi/v1/klines", {"symbol": "BTCUSDT", "interval": "5m", "limit": 2}),
    ("binance", "/futures/data/openInterestHist", {"symbol": "BTCUSDT", "period": "5m", "limit": 2}),
    ("binance", "/fapi/v1/fundingRate", {"symbol": "BTCUSDT", "limit": 2}),
    ("bybit", "/v5/market/kline", {"category": "linear", "symbol": "BTCUSDT", "interval": "5", "limit": 2}),
    ("bybit", "/v5/market/open-interest", {"category": "linear", "symbol": "BTCUSDT", "intervalTime": "5min", "limit": 2}),
    ("bybit", "/v5/market/funding/history", {"category": "linear", "symbol": "BTCUSDT", "limit": 2}),
    ("okx", "/api/v5/market/history-candles", {"instId": "BTC-USDT-SWAP", "bar": "5m", "limit": 2}),
    ("okx", "/api/v5/rubik/stat/contracts/open-interest-history", {"instId": "BTC-USDT-SWAP", "period": "5m", "limit": 2}),
    ("okx", "/api/v5/public/funding-rate-history", {"instId": "BTC-USDT-SWAP", "limit": 2}),
    ("okx", "/api/v5/public/instruments", {"instType": "SWAP", "instId": "BTC-USDT-SWAP"}),
    ("okx", "/api/v5/public/liquidation-orders", {"instType": "SWAP", "instFamily": "BTC-USDT", "state": "filled"}),
    ("dydx", "/v4/candles/perpetualMarkets/BTC-USD", {"resolution": "5MINS", "limit": 2}),
    ("dydx", "/v4/historicalFunding/BTC-USD", {"limit": 2}),
])
def test_replay_answers_match_recorded_shapes(srv, exchange, path, params):
    http = factory().client(venues()[exchange], srv.url(exchange))
    got = http.get_json(path, params)
    rec = fixture(exchange)
    key = path if path in rec else path.rsplit("/", 1)[0] + "/"
    want = rec[key]
    assert _shape(got if not isinstance(got, dict) else {k: v for k, v in got.items() if k in want}) == \
        _shape(want if not isinstance(want, dict) else {k: v for k, v in want.items() if k in got})


@pytest.mark.parametrize("kind,body", [
    ("candleSnapshot", {"type": "candleSnapshot", "req": {"coin": "BTC", "interval": "5m", "startTime": S.ORIGIN_MS, "endTime": S.ORIGIN_MS + 600_000}}),
    ("metaAndAssetCtxs", {"type": "metaAndAssetCtxs"}),
    ("fundingHistory", {"type": "fundingHistory", "coin": "BTC", "startTime": S.ORIGIN_MS}),
])
def test_replay_hyperliquid_shapes(srv, kind, body):
    got = factory().client(Hyperliquid, srv.url("hyperliquid")).post_json("/info", body)
    want = fixture("hyperliquid")[kind]
    if kind == "metaAndAssetCtxs":
        assert _shape(got[0]) == _shape(want[0]) and _shape(got[1]) == _shape(want[1])
    else:
        assert _shape(got) == _shape(want)


def _walk(ex, dataset, inst, since, now=NOW):
    out = collect_all(ex, dataset, inst, since, now)
    return out


def _assert_contiguous(rows, since, now):
    ts = sorted(r["ts"] for r in rows)
    assert len(set(ts)) == len(ts)
    step = dt.timedelta(milliseconds=INTERVAL_MS)
    assert all(b - a == step for a, b in zip(ts, ts[1:])), "gap or overlap between pages"
    assert ts[0] <= ms_to_dt(since + INTERVAL_MS) and ts[-1] == ms_to_dt(now - INTERVAL_MS)


@pytest.mark.parametrize("cls,inst,attr", [
    (Binance, "BTCUSDT", "KLINES_LIMIT"), (Bybit, "ETHUSDT", "KLINE_LIMIT"), (Okx, "BTC-USDT-SWAP", "CANDLE_LIMIT"),
    (Hyperliquid, "ETH", "CANDLE_PAGE"), (Dydx, "ETH-USD", "CANDLE_LIMIT"),
])
def test_candle_pagination_is_contiguous(srv, monkeypatch, cls, inst, attr):
    monkeypatch.setattr(cls, attr, 97)  # force many pages with an odd page size
    monkeypatch.setattr(srv, "hl_candle_max", 97)  # Hyperliquid has no limit parameter: the server caps
    since = NOW - 86_400_000
    srv.reset_counts()
    ex = cls(factory().client(cls, srv.url(cls.name)))
    rows = _walk(ex, "candles", inst, since)["raw_candles"].rows
    _assert_contiguous(rows, since, NOW)
    assert ex.http.requests == srv.counts[cls.name] and 288 // 97 + 1 <= ex.http.requests <= 288 // 97 + 2
    coin = S.INSTRUMENTS[cls.name][inst]
    byts = {c.ts: c for c in S.candles(coin)}
    r = rows[5]
    assert r["close"] == pytest.approx(byts[int((r["ts"] - dt.datetime(1970, 1, 1)).total_seconds() * 1000)].close, rel=1e-4)


def test_bybit_open_interest_follows_the_cursor(srv, monkeypatch):
    monkeypatch.setattr(Bybit, "OI_LIMIT", 50)
    since = NOW - 86_400_000
    srv.reset_counts()
    ex = Bybit(factory().client(Bybit, srv.url("bybit")))
    rows = _walk(ex, "open_interest", "BTCUSDT", since)["raw_open_interest"].rows
    assert len(rows) == 289 and ex.http.requests == 6  # ceil(289 / 50)
    cursors = [q.get("cursor") for ex_, path, q in srv.queries if path == "/v5/market/open-interest"]
    assert cursors[0] is None and all(cursors[1:]) and len(set(cursors[1:])) == 5


def test_okx_open_interest_pages_by_end(srv):
    since = NOW - 86_400_000
    ex = Okx(factory().client(Okx, srv.url("okx")))
    rows = _walk(ex, "open_interest", "ETH-USDT-SWAP", since)["raw_open_interest"].rows
    assert len(rows) == 289 and ex.http.requests == 3


def test_funding_pagination_each_exchange(srv, monkeypatch):
    since = S.ORIGIN_MS
    expected = {"binance": 10, "bybit": 10, "okx": 10, "hyperliquid": 73, "dydx": 73}
    for cls, inst in ((Binance, "BTCUSDT"), (Bybit, "BTCUSDT"), (Okx, "BTC-USDT-SWAP"), (Hyperliquid, "BTC"),
                      (Dydx, "BTC-USD")):
        for attr in ("FUNDING_LIMIT", "FUNDING_MAX"):
            if hasattr(cls, attr):
                monkeypatch.setattr(cls, attr, 4)
        ex = cls(factory().client(cls, srv.url(cls.name)))
        rows = _walk(ex, "funding", inst, since)["raw_funding"].rows
        assert len(rows) == expected[cls.name], cls.name
        assert len({r["ts"] for r in rows}) == len(rows)


def test_okx_liquidations_pages_back_to_since(srv, monkeypatch):
    monkeypatch.setattr(Okx, "LIQ_LIMIT", 20)
    srv.reset_counts()
    ex = Okx(factory().client(Okx, srv.url("okx")))
    since = NOW - 86_400_000
    rows = _walk(ex, "liquidations", "BTC-USDT-SWAP", since)["raw_liquidations"].rows
    want = S.liquidations("BTC", since, None, NOW)
    assert len(rows) >= len(want) and min(r["ts"] for r in rows) <= ms_to_dt(since)
    assert ex.http.requests == 1 + math.ceil(len(rows) / 20)  # instruments (ctVal) + pages
    assert all(abs(r["size_base"] / 0.01 - round(r["size_base"] / 0.01)) < 1e-9 for r in rows)  # whole contracts
    afters = [q.get("after") for _, path, q in srv.queries if path == "/api/v5/public/liquidation-orders"]
    assert afters[0] is None and all(afters[1:])


def test_base_urls_come_from_settings(monkeypatch):
    monkeypatch.setenv("LIQMAP_OKX_BASE_URL", "http://127.0.0.1:1/okx-mirror/")
    monkeypatch.setenv("LIQMAP_BINANCE_ARCHIVE_BASE_URL", "http://127.0.0.1:1/archive")
    settings.get.cache_clear()
    try:
        assert Okx.default_base_url() == "http://127.0.0.1:1/okx-mirror"
        assert settings.get().base_url("binance_archive") == "http://127.0.0.1:1/archive"
    finally:
        settings.get.cache_clear()
