"""No permanent hole: a run that fails midway is followed by a clean run that fills everything.

Real HTTP against the local replay server, real DuckDB files. The reference is a store
collected in one clean go at the same moment: after the faulted run and one clean run, the
last two days of every series must hold exactly the reference's rows.
"""

from __future__ import annotations

import datetime as dt

import pytest
from replay import series as S
from replay.harness import factory, new_store, registry_for_tests
from replay.server import ReplayServer

from pipeline.collect.catchup import GAP_SCAN_MS
from pipeline.collect.exchanges.binance import Binance
from pipeline.collect.exchanges.bybit import Bybit
from pipeline.collect.exchanges.dydx import Dydx
from pipeline.collect.live import collect

REG = registry_for_tests()
HOUR = 3_600_000
DAY = 86_400_000
TWO_DAYS = 2 * DAY


def run(store, srv, days):
    return collect(store, assets=["btc", "eth"], reg=REG, base_urls=srv.base_urls(), factory=factory(),
                   now_ms=srv.now_ms, lookback_days=days)


def rows_since(store, since_ms: int) -> dict[str, set]:
    """Every key of every series in the window (Hyperliquid OI is a per-run snapshot, not a series)."""
    since = dt.datetime(1970, 1, 1) + dt.timedelta(milliseconds=since_ms)
    q = {
        "raw_candles": "SELECT exchange, instrument, ts, open, high, low, close FROM raw_candles WHERE ts >= ?",
        "raw_open_interest": "SELECT exchange, instrument, ts, oi_base FROM raw_open_interest "
                             "WHERE ts >= ? AND exchange <> 'hyperliquid'",
        "raw_funding": "SELECT exchange, instrument, ts, rate FROM raw_funding WHERE ts >= ?",
        "raw_liquidations": "SELECT exchange, instrument, ts, side, price FROM raw_liquidations WHERE ts >= ?",
    }
    return {t: set(store.con.execute(sql, [since]).fetchall()) for t, sql in q.items()}


def holes(store, now_ms: int, window_ms: int) -> list[tuple]:
    return [(r["exchange"], r["instrument"], r["dataset"], r["from_ms"], r["to_ms"])
            for r in store.query("catch_up", now_ms=now_ms, scan_from_ms=now_ms - window_ms).to_pylist()
            if r["kind"] in ("hole", "pending")]


@pytest.fixture
def small_pages(monkeypatch):
    # Smaller pages so twenty hours take several pages on every newest-first API.
    monkeypatch.setattr(Bybit, "KLINE_LIMIT", 100)
    monkeypatch.setattr(Dydx, "CANDLE_LIMIT", 100)
    monkeypatch.setattr(Binance, "KLINES_LIMIT", 100)


def test_failures_mid_catch_up_are_filled_by_the_next_clean_run(tmp_path, small_pages):
    t0 = S.ORIGIN_MS + 36 * HOUR
    with ReplayServer(now_ms=t0) as srv:
        store = new_store(tmp_path, "faulted.duckdb")
        assert run(store, srv, days=2).statuses()["ok"] == 32

        # Twenty hours later, every newest-first source fails after its first page(s) and
        # Binance (oldest first) after one page; each keeps what arrived.
        srv.advance(20 * HOUR)
        for ex, path, skip in [("okx", "/api/v5/market/history-candles", 2), ("okx", "open-interest-history", 1),
                               ("okx", "funding-rate-history", 0), ("okx", "liquidation-orders", 1),
                               ("bybit", "/v5/market/kline", 1), ("bybit", "/v5/market/open-interest", 1),
                               ("bybit", "/v5/market/funding", 0), ("dydx", "/v4/candles", 1),
                               ("dydx", "/v4/historicalFunding", 0), ("hyperliquid", "candleSnapshot", 0),
                               ("hyperliquid", "fundingHistory", 0)]:
            srv.inject(ex, "garbage", path=path, skip=skip)
        srv.inject("binance", "500", path="/fapi/v1/klines", skip=1)
        faulted = run(store, srv, days=2)
        assert faulted.statuses()["partial"] >= 5 and faulted.statuses()["error"] >= 10, faulted.table()
        open_before = holes(store, srv.now_ms, TWO_DAYS)
        # The failure left real holes (this is what used to stay forever): OKX BTC candles lost a stretch in the middle.
        assert any(h[:3] == ("okx", "BTC-USDT-SWAP", "candles") for h in open_before), open_before
        gaps = store.con.execute("SELECT exchange, dataset, reason FROM raw_gaps").fetchall()
        assert ("okx", "candles") in {(g[0], g[1]) for g in gaps}
        assert all(g[2].startswith(("fetch failed", "an earlier fetch failed", "not fetched")) for g in gaps), gaps
        status = {(r["exchange"], r["instrument"], r["dataset"]): r for r in store.query("source_status").to_pylist()}
        assert status[("okx", "BTC-USDT-SWAP", "candles")]["gaps"] >= 1

        # One clean run five minutes later.
        srv.clear()
        srv.advance(5 * 60_000)
        clean = run(store, srv, days=2)
        assert clean.statuses() == {"ok": 32, "unsupported": 8}, clean.table()
        assert holes(store, srv.now_ms, GAP_SCAN_MS) == []
        assert store.count("raw_gaps") == 0

        reference = new_store(tmp_path, "reference.duckdb")
        run(reference, srv, days=3)
        since = srv.now_ms - TWO_DAYS
        got, want = rows_since(store, since), rows_since(reference, since)
        for table in want:
            assert want[table], table
            missing = want[table] - got[table]
            assert not missing, (table, len(missing), sorted(missing)[:3])
        # Nothing from this normal (volatile, synthetic) market is quarantined.
        assert store.count("raw_quarantine") == 0
        store.close()
        reference.close()


def test_a_hole_the_exchange_cannot_fill_is_recorded_with_its_reason(tmp_path):
    with ReplayServer(now_ms=S.ORIGIN_MS + DAY) as srv:
        store = new_store(tmp_path)
        # A stored row six hours before the exchange's first candle: the replay server has nothing
        # in between, as an exchange would after an outage.
        early = dt.datetime(1970, 1, 1) + dt.timedelta(milliseconds=S.ORIGIN_MS - 6 * HOUR)
        store.upsert("raw_candles", {"exchange": ["binance"], "instrument": ["BTCUSDT"], "interval_s": [300],
                                     "ts": [early], "open": [95000.0], "high": [95010.0], "low": [94990.0],
                                     "close": [95000.0], "volume": [1.0], "taker_buy_volume": [0.5], "quote": ["USDT"]})
        for _ in range(2):
            srv.reset_counts()
            rep = collect(store, assets=["btc"], exchanges=["binance"], reg=REG, base_urls=srv.base_urls(),
                          factory=factory(), now_ms=srv.now_ms, lookback_days=1)
            srv.advance(HOUR)
        assert rep.by("binance", "candles")[0].status == "ok"
        # The run asked from the hole's start (not just from the newest row).
        klines = [q for ex, path, q in srv.queries if path == "/fapi/v1/klines"]
        assert int(klines[0]["startTime"]) == S.ORIGIN_MS - 6 * HOUR
        gaps = store.con.execute("SELECT exchange, instrument, dataset, gap_from, gap_to, reason FROM raw_gaps").fetchall()
        assert gaps == [("binance", "BTCUSDT", "candles", early, dt.datetime(1970, 1, 1) + dt.timedelta(milliseconds=S.ORIGIN_MS),
                         "the exchange returned no rows for this range; asked again each run while in reach")]
        [st] = [r for r in store.query("source_status").to_pylist() if r["dataset"] == "candles"]
        assert st["gaps"] == 1 and st["gap_minutes"] == 360
        store.close()


def test_a_row_from_the_future_does_not_block_its_series(tmp_path):
    with ReplayServer(now_ms=S.ORIGIN_MS + DAY) as srv:
        store = new_store(tmp_path)
        run(store, srv, days=1)
        future = dt.datetime(1970, 1, 1) + dt.timedelta(milliseconds=srv.now_ms + 12 * HOUR)
        store.upsert("raw_candles", {"exchange": ["dydx"], "instrument": ["BTC-USD"], "interval_s": [300],
                                     "ts": [future], "open": [95000.0], "high": [95010.0], "low": [94990.0],
                                     "close": [95000.0], "volume": [1.0], "taker_buy_volume": [None], "quote": ["USD"]})
        srv.advance(HOUR)
        rep = run(store, srv, days=1)
        assert rep.by("dydx", "candles", "btc")[0].stored == 12
