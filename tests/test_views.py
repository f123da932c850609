"""The asset view on its own (no site, no MkDocs) and the freshness mart that feeds it.

``model.views.asset_view`` is pure: market series in, an ``AssetView`` out. The
freshness figures come from ``sql/marts/out_market_freshness.sql``; the test
compares the mart with the numpy rule it replaced (``indicators.at_column_ends``)
on a real DuckDB store.
"""

from __future__ import annotations

import datetime as dt
import math

import numpy as np
import pytest

from pipeline import registry
from pipeline.markets import Market
from pipeline.model import indicators
from pipeline.model.params import ModelParams
from pipeline.model.views import DAY_MS, OI_MAX_AGE_MS, asset_view, current, run_market
from pipeline.store.db import Store
from pipeline.store.series import freshness, load_market

T0 = 1_790_000_000_000 - 1_790_000_000_000 % 300_000
STEP = 300_000


def _store(tmp_path, days=3, seed=1, oi_every=1, oi_gap=None):
    """A store with one OKX market: 5-minute candles, OI every ``oi_every`` candles (a hole in ``oi_gap``)."""
    rng = np.random.default_rng(seed)
    n = days * 288
    t = T0 + np.arange(n) * STEP
    close = 60_000 * np.exp(np.cumsum(rng.normal(0, 0.002, n)))
    op = np.r_[close[0], close[:-1]]
    hi = np.maximum(op, close) * 1.001
    lo = np.minimum(op, close) * 0.999
    ts = lambda ms: [dt.datetime(1970, 1, 1) + dt.timedelta(milliseconds=int(x)) for x in ms]  # noqa: E731
    coins = 50_000 + np.cumsum(rng.normal(0, 50, n))
    keep = np.arange(n) % oi_every == 0
    if oi_gap is not None:
        keep &= ~((t >= oi_gap[0]) & (t < oi_gap[1]))
    st = Store(tmp_path / "s.duckdb")
    st.upsert("raw_candles", {"exchange": ["okx"] * n, "instrument": ["BTC-USDT-SWAP"] * n, "interval_s": [300] * n,
                              "ts": ts(t), "open": op, "high": hi, "low": lo, "close": close, "volume": np.ones(n),
                              "taker_buy_volume": [None] * n, "quote": ["USDT"] * n})
    k = int(keep.sum())
    st.upsert("raw_open_interest", {"exchange": ["okx"] * k, "instrument": ["BTC-USDT-SWAP"] * k, "ts": ts(t[keep]),
                                    "oi_base": coins[keep], "oi_usd": coins[keep] * close[keep]})
    return st


MARKET = Market("btc", "okx", ("okx", "BTC-USDT-SWAP"), ("okx", "BTC-USDT-SWAP"))


@pytest.fixture
def btc():
    reg = registry.load()
    a = reg.get("btc")
    return a, ModelParams.from_asset(a, reg.settings_for(a))


@pytest.mark.parametrize("oi_every,gap_h", [(1, None), (12, None), (1, (30, 40)), (1, (60, 72))])
def test_freshness_mart_equals_the_numpy_rule(tmp_path, oi_every, gap_h):
    gap = None if gap_h is None else (T0 + gap_h[0] * 3_600_000, T0 + gap_h[1] * 3_600_000)
    with _store(tmp_path, oi_every=oi_every, oi_gap=gap) as st:
        s = load_market(st, MARKET)
        row = freshness(st, [s], OI_MAX_AGE_MS)["okx"]
    now = int(s.candles["time_ms"][-1]) + STEP
    at = np.array([now - DAY_MS, now], dtype=np.int64) + 1
    want = indicators.at_column_ends(s.oi["time_ms"], s.oi["oi_usd"], at, OI_MAX_AGE_MS)
    got = np.array([np.nan if row[k] is None else row[k] for k in ("oi_usd_day_ago", "oi_usd_now")])
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    np.testing.assert_allclose(got[np.isfinite(got)], want[np.isfinite(want)], rtol=1e-12)
    assert row["candles"] == s.candles["time_ms"].size and row["candle_s"] == 300
    assert row["first_ms"] == s.candles["time_ms"][0] and row["last_ms"] == s.candles["time_ms"][-1]
    assert row["oi_last_ms"] == s.oi["time_ms"].max()


def test_an_oi_feed_that_stopped_is_no_current_value(tmp_path):
    # OI stops 12 h before the last candle: older than OI_MAX_AGE_MS, so "now" is unknown, not flat.
    with _store(tmp_path, days=2, oi_gap=(T0 + 36 * 3_600_000, T0 + 48 * 3_600_000)) as st:
        row = freshness(st, [load_market(st, MARKET)], OI_MAX_AGE_MS)["okx"]
    assert row["oi_usd_now"] is None and row["oi_usd_day_ago"] is not None


def test_asset_view_without_a_site(tmp_path, btc):
    asset, params = btc
    with _store(tmp_path, days=3) as st:
        series = [load_market(st, MARKET)]
        fresh = freshness(st, series, OI_MAX_AGE_MS)
    v = asset_view(asset, params, series, [{"asset": "btc", "exchange": "okx"}, {"asset": "eth"}], fresh)
    assert v.has_data and [s["asset"] for s in v.sources] == ["btc"]
    # 3 days of history fill the 12h, 24h and 3d windows; the first longer one (1w) is drawn partial.
    assert [(tv.name, tv.partial) for tv in v.timeframes] == [("12h", False), ("24h", False), ("3d", False),
                                                             ("1w", True)]
    for tv in v.timeframes:
        assert tv.col_end_ms[-1] == series[0].candles["time_ms"][-1] + STEP
        assert tv.price_edges[0] < v.price < tv.price_edges[-1]
        assert all(c.side == "long" and c.price_high <= v.price * 1.001 or c.side == "short" for c in tv.clusters)
        assert tv.grid.shape == (2, tv.col_end_ms.size, asset.price_bins)
    assert v.reference is v.timeframes[-1]
    f = v.freshness[0]
    assert f["key"] == "okx" and f["candles"] == 3 * 288 and math.isfinite(f["oi_usd"])
    # One market: the asset's figures are the market's.
    assert v.oi_usd == pytest.approx(f["oi_usd"]) and v.oi_change_24h == pytest.approx(f["oi_change_24h"])
    # Without freshness rows (a snapshot being regenerated) the view still draws, with no current figures.
    bare = asset_view(asset, params, series, [])
    assert [tv.name for tv in bare.timeframes] == ["12h", "24h", "3d", "1w"] and bare.freshness == []
    assert math.isnan(bare.oi_usd)
    np.testing.assert_array_equal(bare.timeframes[0].grid, v.timeframes[0].grid)


def test_current_sums_only_markets_with_both_values(tmp_path, btc):
    _, params = btc
    with _store(tmp_path, days=2) as st:
        s = load_market(st, MARKET)
    run = run_market(s, params)
    rows = [{"oi_usd_now": 120.0, "oi_usd_day_ago": 100.0}, {"oi_usd_now": 50.0, "oi_usd_day_ago": None},
            {"oi_usd_now": None, "oi_usd_day_ago": 10.0}]
    out = current([run, run, run], rows, int(s.candles["time_ms"][-1]) + STEP)
    assert out["oi_usd"] == pytest.approx(170.0)  # every market with a value now
    assert out["oi_change_24h"] == pytest.approx(0.2)  # only the market with both: a joining market is no surge
