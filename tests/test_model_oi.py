"""Open interest sampled less often than candles: a pure price move must open and close nothing.

The artefact these tests pin down: OI carried forward between its samples in USD and
divided by each candle's close made every price tick look like OI flow (billions of
USD on 1-minute candles against 5-minute OI). The model carries coins between samples.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from pipeline import registry
from pipeline.markets import SAMPLE_MARKET
from pipeline.model import book as model
from pipeline.model.params import ModelParams
from pipeline.store import sample
from pipeline.store.db import Store

MIN = 60_000
T0 = 1_790_000_000_000 - 1_790_000_000_000 % (3_600_000)  # on the hour, so 5-minute samples fall on candles


def registry_params(**kw) -> ModelParams:
    reg = registry.load()
    a = reg.get("btc")
    p = ModelParams.from_asset(a, reg.settings_for(a))
    return dataclasses.replace(p, **kw)


def random_walk_candles(n, step_ms, seed=0, vol=0.001):
    rng = np.random.default_rng(seed)
    t = T0 + step_ms * np.arange(n, dtype=np.int64)
    c = 60_000 * np.exp(np.cumsum(rng.normal(0, vol, n)))
    o = np.r_[c[0], c[:-1]]
    h = np.maximum(o, c) * (1 + np.abs(rng.normal(0, vol / 2, n)))
    lo = np.minimum(o, c) * (1 - np.abs(rng.normal(0, vol / 2, n)))
    return t, o, h, lo, c


def close_as_of(t, c, when_ms):
    """Close of the latest candle at or before each time: how the store and userio value coins in USD."""
    return c[np.searchsorted(t, when_ms, side="right") - 1]


def run_aligned(t, o, h, lo, c, oi_t, oi_usd, p):
    return model.run(t, o, h, lo, c, model.align_oi(t, oi_t, oi_usd), p)


def test_one_minute_candles_five_minute_usd_oi_constant_coins_open_nothing():
    t, o, h, lo, c = random_walk_candles(3 * 1440, MIN)  # three days of 1-minute candles
    oi_t = t[::5]
    coins = 50_000.0
    oi_usd = coins * close_as_of(t, c, oi_t)  # ~3 billion USD, moving only with price
    p = registry_params()
    assert p.oi_change == "base"
    r = run_aligned(t, o, h, lo, c, oi_t, oi_usd, p)
    assert r.totals()["added"] == 0 and r.totals()["removed"] == 0 and r.level_birth.size == 0
    # The same prices with real flow do open and close: the test can see both.
    flow = coins * np.exp(np.cumsum(np.random.default_rng(1).normal(0, 0.001, oi_t.size)))
    tot = run_aligned(t, o, h, lo, c, oi_t, flow * close_as_of(t, c, oi_t), p).totals()
    assert tot["added"] > 1e7 and tot["removed"] > 1e7


def test_usd_oi_valued_at_the_sample_instant_opens_only_at_samples():
    # An exchange values its OI at its own price at the sample instant (here: the
    # candle's open), not at our close: what remains is noise at sample candles only,
    # one candle's return per sample, never a flow on every candle in between.
    t, o, h, lo, c = random_walk_candles(1440, MIN, seed=2)
    oi_t = t[::5]
    r = run_aligned(t, o, h, lo, c, oi_t, 50_000.0 * o[::5], registry_params())
    opened = np.flatnonzero(r.added_usd > 0)
    assert opened.size and set(opened.tolist()) <= set(range(0, t.size, 5))
    assert np.all(np.flatnonzero(r.removed_usd > 0) % 5 == 0)
    # bound: |coins * (open/close - 1)| * price per sample, summed
    bound = float(np.sum(50_000.0 * np.abs(o[::5] / c[::5] - 1) * h[::5]))
    assert r.totals()["added"] <= bound


def test_sparse_hyperliquid_like_oi_constant_coins_nothing_between_samples():
    # 5-minute candles, one OI value every 2 h at an odd second inside a candle (a
    # collector run), valued at the candle it is aligned to.
    t, o, h, lo, c = random_walk_candles(7 * 288, 5 * MIN, seed=3, vol=0.003)
    oi_t = t[::24][1:] - 137_000
    receiving = np.searchsorted(t, oi_t, side="left")  # first candle at or after each sample
    coins = 20_000.0
    p = registry_params()
    r = run_aligned(t, o, h, lo, c, oi_t, coins * c[receiving], p)
    assert r.totals()["added"] == 0 and r.totals()["removed"] == 0 and r.level_birth.size == 0
    # Valued at the candle the sample fell in (the store's as-of close): opens, if
    # any, only at the candles that received a sample.
    r = run_aligned(t, o, h, lo, c, oi_t, coins * close_as_of(t, c, oi_t), p)
    assert set(np.flatnonzero(r.added_usd > 0).tolist()) <= set(receiving.tolist())
    assert set(np.flatnonzero(r.removed_usd > 0).tolist()) <= set(receiving.tolist())


def test_real_coin_increase_opens_at_its_sample_and_only_there():
    t, o, h, lo, c = random_walk_candles(600, MIN, seed=4)
    oi_t = t[::5]
    coins = np.full(oi_t.size, 1_000.0)
    coins[40:] = 1_500.0  # 500 coins opened by sample 40
    coins[90:] = 1_200.0  # 300 of 1,500 coins closed by sample 90 (a fifth)
    p = registry_params(entry_price="typical", fade_half_life_hours=None)
    r = run_aligned(t, o, h, lo, c, oi_t, coins * close_as_of(t, c, oi_t), p)
    k = 40 * 5  # the candle that receives sample 40
    assert np.flatnonzero(r.added_usd > 1.0).tolist() == [k]
    assert r.added_usd[k] == pytest.approx(500 * (h[k] + lo[k] + c[k]) / 3, rel=1e-9)
    assert set(r.level_birth.tolist()) <= {k}
    assert r.level_birth.size == 2 * len(p.leverage)
    j = 90 * 5
    assert np.flatnonzero(r.removed_usd > 1.0).tolist() == [j]
    before = r.book_usd[j - 1] - r.liquidations_long_usd[j] - r.liquidations_short_usd[j]
    assert r.removed_usd[j] == pytest.approx(0.2 * before, rel=1e-9)


@pytest.mark.parametrize("oi_change", ["base", "usd"])
def test_forward_filled_and_sample_only_oi_agree(oi_change):
    t, o, h, lo, c = random_walk_candles(2000, MIN, seed=5)
    rng = np.random.default_rng(6)
    oi_t = np.sort(rng.choice(t, 300, replace=False)) + 1_000  # between candles
    oi_usd = 1e9 * np.exp(np.cumsum(rng.normal(0, 0.003, oi_t.size)))
    filled = model.align_oi(t, oi_t, oi_usd)
    fresh = np.r_[True, filled[1:] != filled[:-1]] & np.isfinite(filled)
    only_samples = np.where(fresh, filled, np.nan)
    p = registry_params(oi_change=oi_change)
    a, b = model.run(t, o, h, lo, c, filled, p), model.run(t, o, h, lo, c, only_samples, p)
    assert a.totals() == pytest.approx(b.totals(), rel=1e-12)
    np.testing.assert_array_equal(a.level_birth, b.level_birth)
    # opens happen only where a sample arrived
    assert set(np.flatnonzero(a.added_usd > 0).tolist()) <= set(np.flatnonzero(fresh).tolist())


def test_bundled_sample_runs_with_opens_only_at_oi_samples(tmp_path):
    with Store(tmp_path / "s.duckdb") as st:
        sample.load(st)
        cd = st.arrays("market_candles", exchange=SAMPLE_MARKET.candles[0],
                       instrument=SAMPLE_MARKET.candles[1], since_ms=0)
        od = st.arrays("market_open_interest", exchange=SAMPLE_MARKET.oi[0],
                       instrument=SAMPLE_MARKET.oi[1], since_ms=0)
    t = cd["time_ms"].astype(np.int64)
    oi = model.align_oi(t, od["time_ms"], od["oi_usd"])
    p = registry_params()
    r = model.run(t, cd["open"], cd["high"], cd["low"], cd["close"], oi, p,
                  volume=cd["volume"], taker_buy_volume=cd["taker_buy_volume"])
    fresh = np.flatnonzero(np.isfinite(oi) & np.r_[True, oi[1:] != oi[:-1]])
    opened = np.flatnonzero(r.added_usd > 0)
    assert 0 < opened.size <= fresh.size < t.size // 4  # 5-minute OI on 1-minute candles
    assert set(opened.tolist()) <= set(fresh.tolist())
    tot = r.totals()
    mean_oi = float(np.nanmean(oi))
    # Two days of OKX BTC OI (~3.1 billion USD): the modelled opens are a fraction of
    # the OI, not the multiple a price-driven artefact produced (3.0 billion).
    assert 0.05 * mean_oi < tot["added"] < 0.6 * mean_oi
    assert tot["removed"] < 0.2 * mean_oi
    assert tot["added"] == pytest.approx(tot["active"] + tot["consumed"] + tot["removed"] + tot["faded"], rel=1e-9)
    book = r.book()
    px = float(cd["close"][-1])
    longs, shorts = book["side"] == model.LONG, book["side"] == model.SHORT
    assert longs.any() and shorts.any()
    assert np.all(book["price"][longs] < px * 1.01) and np.all(book["price"][shorts] > px * 0.99)


# ----------------------------------------------------------------------------- compute: registry defaults


def write_inputs(d, seed=7):
    """1-minute candles, 5-minute USD OI with real flow and price moves (base and usd modes differ)."""
    t, o, h, lo, c = random_walk_candles(720, MIN, seed=seed, vol=0.002)
    oi_t = t[::5]
    coins = 40_000.0 * np.exp(np.cumsum(np.random.default_rng(seed + 1).normal(0, 0.004, oi_t.size)))
    oi_usd = coins * close_as_of(t, c, oi_t)
    cf, of = write_files(d, (t, o, h, lo, c), oi_t, oi_usd, "open_interest_usd")
    return cf, of, (t, o, h, lo, c, oi_t, oi_usd)


def write_files(d, candles, oi_t, oi_values, oi_column):
    """``liqmap compute`` input files (epoch-ms times, full float precision)."""
    cf, of = d / "candles.csv", d / "oi.csv"
    with open(cf, "w") as fh:
        fh.write("time,open,high,low,close,volume\n")
        fh.writelines(f"{a},{b!r},{e!r},{f!r},{g!r},1.0\n" for a, b, e, f, g in zip(*(x.tolist() for x in candles)))
    with open(of, "w") as fh:
        fh.write(f"time,{oi_column}\n")
        fh.writelines(f"{a},{b!r}\n" for a, b in zip(oi_t.tolist(), oi_values.tolist()))
    return cf, of


def compute_levels(tmp_path, cf, of, *flags, name="levels.csv"):
    """Final level book written by ``liqmap compute --levels``: sorted prices, long and short USD totals."""
    from pipeline import cli

    out = tmp_path / name
    assert cli.main(["compute", "--candles", str(cf), "--oi", str(of), "--out", str(tmp_path / "g.csv"),
                     "--levels", str(out), *flags]) == 0
    rows = np.genfromtxt(out, delimiter=",", names=True, dtype=None, encoding="utf-8")
    long = rows["side"] == "long"
    return np.sort(rows["price"]), float(rows["notional_usd"][long].sum()), float(rows["notional_usd"][~long].sum())


def model_levels(arrays, params):
    t, o, h, lo, c, oi_t, oi_usd = arrays
    book = run_aligned(t, o, h, lo, c, oi_t, oi_usd, params).book()
    long = book["side"] == model.LONG
    return np.sort(book["price"]), float(book["notional_usd"][long].sum()), float(book["notional_usd"][~long].sum())


def assert_same_book(got, want):
    np.testing.assert_allclose(got[0], want[0], rtol=1e-12)
    assert got[1:] == pytest.approx(want[1:], rel=1e-9)


def test_compute_without_flags_is_the_registry_model(tmp_path):
    cf, of, arrays = write_inputs(tmp_path)
    got = compute_levels(tmp_path, cf, of)
    assert_same_book(got, model_levels(arrays, registry_params()))
    # A flag overrides only its own field, and changes the result on these inputs.
    got_usd = compute_levels(tmp_path, cf, of, "--oi-change", "usd", name="usd.csv")
    assert_same_book(got_usd, model_levels(arrays, registry_params(oi_change="usd")))
    assert abs(sum(got_usd[1:]) - sum(got[1:])) > 1e5


def test_compute_candle_tilt_and_side_split_default_to_the_asset_settings(tmp_path, monkeypatch):
    from pipeline import paths

    text = paths.ASSETS_YAML.read_text(encoding="utf-8")
    old = "  candle_tilt: 0.25 "
    assert old in text and "  side_split: equal " in text
    text = text.replace(old, "  candle_tilt: 0.45 ").replace("  side_split: equal ", "  side_split: candle ")
    (tmp_path / "assets.yaml").write_text(text, encoding="utf-8")
    monkeypatch.setattr(paths, "ASSETS_YAML", tmp_path / "assets.yaml")
    reg = registry.load()
    a = reg.get("btc")
    p = ModelParams.from_asset(a, reg.settings_for(a))
    assert (p.candle_tilt, p.side_split, p.oi_change) == (0.45, "candle", "base")
    cf, of, arrays = write_inputs(tmp_path, seed=9)
    # the long/short split of new notional follows the registry's tilt, not a hard-coded 0.25
    got = compute_levels(tmp_path, cf, of)
    assert_same_book(got, model_levels(arrays, p))
    old_tilt = model_levels(arrays, dataclasses.replace(p, candle_tilt=0.25))
    assert abs(got[1] - old_tilt[1]) > 1.0
    assert_same_book(compute_levels(tmp_path, cf, of, "--candle-tilt", "0.25", name="t.csv"), old_tilt)


# ----------------------------------------------------------------------------- exchange coins, exactly


def hyperliquid_like(seed=11):
    """5-minute candles; constant coins sampled every 2 h at odd seconds; USD valued at a mark price
    that is not any candle price (as the exchange reports it)."""
    t, o, h, lo, c = random_walk_candles(3 * 288, 5 * MIN, seed=seed, vol=0.003)
    oi_t = t[::24][1:] - 137_000
    mark = close_as_of(t, c, oi_t) * (1 + np.random.default_rng(seed).normal(0, 0.002, oi_t.size))
    coins = np.full(oi_t.size, 20_000.0)
    return (t, o, h, lo, c), oi_t, coins, coins * mark


def test_align_oi_with_coins_gives_the_model_the_exact_coins():
    (t, o, h, lo, c), oi_t, coins, usd = hyperliquid_like()
    p = registry_params()
    # The exchange's USD figure at its own mark price still leaves noise at each sample ...
    assert run_aligned(t, o, h, lo, c, oi_t, usd, p).totals()["added"] > 1e5
    # ... the coins it also reports leave none.
    aligned = model.align_oi(t, oi_t, usd, oi_base=coins, close=c)
    r = model.run(t, o, h, lo, c, aligned, p)
    assert r.totals()["added"] == 0 and r.totals()["removed"] == 0
    # Samples without coins fall back to their USD value; more coins open at their sample only.
    more = coins.copy()
    more[5:] = 21_000.0
    partial = np.where(np.arange(oi_t.size) == 2, np.nan, more)
    r = model.run(t, o, h, lo, c, model.align_oi(t, oi_t, usd, oi_base=partial, close=c), p)
    k = int(np.searchsorted(t, oi_t[5]))
    assert r.added_usd[k] == pytest.approx(1_000 * (h[k] + lo[k] + c[k]) / 3, rel=1e-9)
    assert set(np.flatnonzero(r.added_usd > 0).tolist()) <= {k, int(np.searchsorted(t, oi_t[2])),
                                                               int(np.searchsorted(t, oi_t[3]))}
    with pytest.raises(ValueError, match="oi_base"):
        model.align_oi(t, oi_t, usd, oi_base=coins[:-1], close=c)


def test_compute_with_base_unit_oi_file_opens_nothing_for_constant_coins(tmp_path):
    candles, oi_t, coins, _ = hyperliquid_like(seed=12)
    cf, of = write_files(tmp_path, candles, oi_t, coins, "open_interest")
    price, long_usd, short_usd = compute_levels(tmp_path, cf, of)
    assert price.size == 0 and long_usd == 0 and short_usd == 0


def test_stored_market_oi_uses_the_stored_coins(tmp_path):
    """The site and the backtest read a stored market's OI through store.series + book.market_oi."""
    from pipeline.markets import Market
    from pipeline.store.series import load_market

    (t, o, h, lo, c), oi_t, coins, usd = hyperliquid_like(seed=13)
    ts = lambda ms: np.asarray(ms, dtype="datetime64[ms]").astype("datetime64[us]")  # noqa: E731
    n, m = t.size, oi_t.size
    with Store(tmp_path / "s.duckdb") as st:
        st.upsert("raw_candles", {
            "exchange": ["hyperliquid"] * n, "instrument": ["BTC"] * n, "interval_s": [300] * n, "ts": ts(t),
            "open": o, "high": h, "low": lo, "close": c, "volume": np.ones(n), "taker_buy_volume": [None] * n,
            "quote": ["USD"] * n})
        st.upsert("raw_open_interest", {"exchange": ["hyperliquid"] * m, "instrument": ["BTC"] * m, "ts": ts(oi_t),
                                        "oi_base": coins, "oi_usd": usd})
        series = load_market(st, Market("btc", "hyperliquid", ("hyperliquid", "BTC"), ("hyperliquid", "BTC")))
    candles = series.candles
    oi_usd = model.market_oi(candles, series.oi)
    r = model.run(candles["time_ms"], candles["open"], candles["high"], candles["low"], candles["close"],
                  oi_usd, registry_params())
    assert r.totals()["added"] == 0 and r.level_birth.size == 0
