"""The shared HTTP layer against a real local server: retries, Retry-After, geo-blocks, bad payloads, budgets, proxy."""

from __future__ import annotations

import random
import time

import pytest
import requests
from replay.harness import FAST
from replay.server import ReplayServer

from pipeline.collect.errors import BadPayload, GeoBlocked, HttpError, NotFound, RateLimited, TransientError
from pipeline.collect.exchanges.binance import Binance
from pipeline.collect.exchanges.okx import Okx
from pipeline.collect.http import (
    ClientFactory,
    HttpClient,
    Limit,
    RateLimiter,
    RetryPolicy,
    TokenBucket,
    new_session,
)

KLINES = "/fapi/v1/klines"
Q = {"symbol": "BTCUSDT", "interval": "5m", "limit": 3}


@pytest.fixture
def srv():
    with ReplayServer() as s:
        yield s


def client(srv, exchange="binance", policy=FAST, sleeps=None, **kw) -> HttpClient:
    sleep = sleeps.append if sleeps is not None else time.sleep
    return HttpClient(exchange, srv.url(exchange), policy=policy, limiter=RateLimiter({}), sleep=sleep,
                      rng=random.Random(1), **kw)


def test_success_counts_one_request(srv):
    c = client(srv)
    rows = c.get_json(KLINES, Q)
    assert len(rows) == 3 and c.requests == 1 and srv.counts["binance"] == 1


def test_429_then_success_honours_retry_after(srv):
    srv.inject("binance", "429", path=KLINES, times=1, retry_after="1")
    c = client(srv)
    t0 = time.monotonic()
    rows = c.get_json(KLINES, Q)
    assert len(rows) == 3
    assert time.monotonic() - t0 >= 0.95  # waited what the server asked, not the tiny backoff
    assert c.requests == 2 and c.retries == 1


def test_418_retry_after_above_cap_gives_up_at_once(srv):
    srv.inject("binance", "418", path=KLINES, retry_after="120")
    c = client(srv)
    with pytest.raises(RateLimited, match="asked to wait 120s"):
        c.get_json(KLINES, Q)
    assert c.requests == 1


def test_429_forever_is_rate_limited_after_retries(srv):
    srv.inject("binance", "429", path=KLINES, retry_after=None)
    sleeps = []
    c = client(srv, sleeps=sleeps)
    with pytest.raises(RateLimited):
        c.get_json(KLINES, Q)
    assert c.requests == FAST.retries + 1 and len(sleeps) == FAST.retries


@pytest.mark.parametrize("code,exchange,name", [("451", "binance", "Binance"), ("403", "bybit", "Bybit")])
def test_geo_block_is_distinct_and_plain(srv, code, exchange, name):
    srv.inject(exchange, code)
    c = client(srv, exchange)
    with pytest.raises(GeoBlocked) as ei:
        c.get_json("/anything", {})
    msg = str(ei.value)
    assert msg == (f"{name} refuses requests from this location (HTTP {code}): "
                   "set HTTPS_PROXY or run outside the US")
    assert ei.value.status == int(code)
    assert c.requests == 1  # no point retrying a refusal


def test_500_forever_backs_off_exponentially_then_fails(srv):
    srv.inject("binance", "500", path=KLINES)
    policy = RetryPolicy(retries=4, backoff_base_s=0.5, backoff_max_s=3.0, jitter=0.2)
    sleeps = []
    c = client(srv, policy=policy, sleeps=sleeps)
    with pytest.raises(TransientError, match="HTTP 500 after 5 attempts"):
        c.get_json(KLINES, Q)
    assert c.requests == 5 and srv.counts["binance"] == 5
    # 0.5, 1, 2, then capped at 3; each within +/-20 % jitter
    for got, base in zip(sleeps, [0.5, 1.0, 2.0, 3.0]):
        assert base * 0.8 <= got <= base * 1.2


def test_truncated_json_is_bad_payload(srv):
    srv.inject("binance", "garbage", path=KLINES)
    with pytest.raises(BadPayload, match="not valid JSON"):
        client(srv).get_json(KLINES, Q)


def test_html_with_200_is_bad_payload(srv):
    srv.inject("okx", "html")
    with pytest.raises(BadPayload, match="HTML page"):
        client(srv, "okx").get_json("/api/v5/market/history-candles", {"instId": "BTC-USDT-SWAP"})


def test_slow_response_times_out_and_retries(srv):
    srv.inject("dydx", "slow", delay_s=1.0)
    policy = RetryPolicy(retries=1, backoff_base_s=0.01, read_timeout_s=0.2, connect_timeout_s=0.5)
    c = client(srv, "dydx", policy=policy)
    t0 = time.monotonic()
    with pytest.raises(TransientError, match="timed out after 2 attempts"):
        c.get_json("/v4/historicalFunding/BTC-USD", {})
    assert c.requests == 2 and time.monotonic() - t0 < 1.5


def test_connection_refused_is_transient():
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens here now
    c = HttpClient("okx", f"http://127.0.0.1:{port}", policy=FAST, limiter=RateLimiter({}), sleep=lambda _: None)
    with pytest.raises(TransientError, match="connection failed"):
        c.get_json("/x")
    assert c.requests == FAST.retries + 1


def test_unresolvable_host_gives_up_after_one_retry(monkeypatch):
    """Offline (no DNS): one retry, not the full backoff, so an offline build does not stall."""
    import socket

    real = socket.getaddrinfo

    def resolver(host, *args, **kw):  # the machine's resolver, answering "unknown host" for this name
        if host == "exchange.example":
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return real(host, *args, **kw)

    monkeypatch.setattr(socket, "getaddrinfo", resolver)
    waits = []
    policy = RetryPolicy(retries=4, backoff_base_s=0.5)
    c = HttpClient("okx", "https://exchange.example", policy=policy, limiter=RateLimiter({}), sleep=waits.append)
    with pytest.raises(TransientError, match="host name not resolved"):
        c.get_json("/x")
    assert c.requests == 2 and len(waits) == 1


def test_404_and_other_4xx(srv):
    with pytest.raises(NotFound):
        client(srv, "dydx").get_json("/v4/no/such/endpoint")
    c = client(srv)
    with pytest.raises(HttpError) as ei:
        c.get_json(KLINES, {"symbol": "NOPE"})
    assert ei.value.status == 400 and not isinstance(ei.value, (GeoBlocked, NotFound))


def test_post_json(srv):
    c = client(srv, "hyperliquid")
    doc = c.post_json("/info", {"type": "metaAndAssetCtxs"})
    assert doc[0]["universe"][0]["name"] == "BTC"


def test_session_is_shared_and_trusts_environment(srv):
    f = ClientFactory(policy=FAST)
    a, b = f.client(Binance, srv.url("binance")), f.client(Okx, srv.url("okx"))
    assert a.session is b.session and a.session.trust_env
    assert "liqmap" in a.session.headers["User-Agent"]
    assert f.client(Binance, srv.url("binance")) is a


def test_proxy_from_environment_is_used(srv, monkeypatch):
    # The replay server doubles as a forward proxy: the request line carries the absolute URL.
    for var in ("NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{srv.port}")
    monkeypatch.setenv("HTTPS_PROXY", f"http://127.0.0.1:{srv.port}")
    c = HttpClient("binance", "http://fapi.binance.invalid/binance", session=new_session(), policy=FAST,
                   limiter=RateLimiter({}))
    assert len(c.get_json(KLINES, Q)) == 3
    assert srv.counts["binance"] == 1


class FakeClock:
    def __init__(self):
        self.t = 0.0
        self.slept = []

    def __call__(self):
        return self.t

    def sleep(self, s):
        self.slept.append(s)
        self.t += s


def test_token_bucket_waits_for_refill():
    clk = FakeClock()
    b = TokenBucket(Limit(capacity=5, per_second=2.5), clock=clk, sleep=clk.sleep)
    for _ in range(5):
        assert b.acquire() == 0
    assert b.acquire() == pytest.approx(0.4)  # one token at 2.5/s
    clk.t += 10  # idle: refills to capacity, never beyond
    for _ in range(5):
        assert b.acquire() == 0
    assert b.acquire(2) == pytest.approx(0.8)


def test_rate_limiter_picks_the_endpoint_bucket():
    clk = FakeClock()
    lim = RateLimiter(Okx.limits, clock=clk, sleep=clk.sleep)
    for _ in range(5):
        lim.acquire("/api/v5/rubik/stat/contracts/open-interest-history")
    assert clk.slept == []
    lim.acquire("/api/v5/rubik/stat/contracts/open-interest-history")
    assert clk.slept == [pytest.approx(0.4)]  # 5 per 2 s
    lim.acquire("/api/v5/market/history-candles")  # its own bucket still has room
    assert len(clk.slept) == 1


def test_default_factory_applies_published_limits():
    f = ClientFactory()
    c = f.client(Binance, "http://127.0.0.1:9")
    assert set(c.limiter.buckets) == set(Binance.limits)
    assert ClientFactory(rate_limits=False).client(Binance, "http://127.0.0.1:9").limiter.buckets == {}


def test_retry_after_http_date(srv):
    from email.utils import formatdate

    srv.inject("binance", "503", path=KLINES, times=1, retry_after=formatdate(time.time() + 1, usegmt=True))
    c = client(srv)
    assert len(c.get_json(KLINES, Q)) == 3 and c.requests == 2


def test_requests_exception_types_are_not_leaked(srv):
    srv.inject("binance", "500", path=KLINES)
    with pytest.raises(HttpError):
        client(srv).get_json(KLINES, Q)
    assert issubclass(TransientError, HttpError) and not issubclass(TransientError, requests.RequestException)
