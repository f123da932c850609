"""Tests for pipeline.model: hand-computed cases plus a slow, obvious reference implementation.

The reference (``naive_run``) walks candle by candle over a Python list of levels,
exactly as docs/domain.md describes the model; the vectorized model must agree
with it on a random series.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from pipeline import registry
from pipeline.model import book as model
from pipeline.model import params as model_params
from pipeline.model.params import LONG, SHORT, ModelParams

H = 3_600_000
T0 = 1_790_000_000_000


def params(**kw) -> ModelParams:
    # Hand-computed cases below count OI in USD so the arithmetic stays readable;
    # the "base" default is tested on its own.
    base = dict(leverage=(10.0,), weights=(1.0,), mmr_tiers=((0.0, 0.005),), oi_change="usd")
    base.update(kw)
    return ModelParams(**base)


def flat_candles(n, price=100.0, step_ms=H):
    t = T0 + step_ms * np.arange(n, dtype=np.int64)
    p = np.full(n, price)
    return t, p.copy(), p.copy(), p.copy(), p.copy()


# ----------------------------------------------------------------------------- liquidation price


def binance_lp(wb, cum, side, q, e, mmr):
    """Binance USD-M published form, single isolated position."""
    return (wb + cum - side * q * e) / (q * mmr - side * q)


@pytest.mark.parametrize("side", [LONG, SHORT])
@pytest.mark.parametrize("lev", [5.0, 20.0, 100.0])
@pytest.mark.parametrize("notional,expected_mmr,expected_cum", [(10_000.0, 0.004, 0.0), (100_000.0, 0.005, 50.0), (1_000_000.0, 0.01, 2550.0)])
def test_liquidation_price_matches_binance_form(side, lev, notional, expected_mmr, expected_cum):
    tiers = ((0, 0.004), (50_000, 0.005), (500_000, 0.01))
    mmr, cum = model_params.margin_bracket(tiers, notional)
    # cum by hand: 50k*(0.005-0.004)=50; 50 + 500k*(0.01-0.005)=2550
    assert mmr == pytest.approx(expected_mmr) and cum == pytest.approx(expected_cum)
    e = 60_000.0
    q = notional / e
    got = model_params.liquidation_price(e, lev, mmr, cum, notional, side)
    assert float(got) == pytest.approx(binance_lp(notional / lev, cum, side, q, e, mmr), rel=1e-12)


def test_liquidation_price_hand_values():
    # cum = 0: long E(1-1/L)/(1-MMR), short E(1+1/L)/(1+MMR)
    assert float(model_params.liquidation_price(100.0, 10, 0.005, 0.0, 1e4, LONG)) == pytest.approx(90 / 0.995)
    assert float(model_params.liquidation_price(100.0, 10, 0.005, 0.0, 1e4, SHORT)) == pytest.approx(110 / 1.005)
    # with cum: cum/N = 50/100000 = 0.0005
    assert float(model_params.liquidation_price(100.0, 10, 0.005, 50.0, 1e5, LONG)) == pytest.approx(100 * (0.9 - 0.0005) / 0.995)
    assert float(model_params.liquidation_price(100.0, 10, 0.005, 50.0, 1e5, SHORT)) == pytest.approx(100 * (1.1 + 0.0005) / 1.005)
    # broadcasting over sides
    both = model_params.liquidation_price(100.0, np.array([10.0]), 0.005, 0.0, 1e4, np.array([[1], [-1]]))
    assert both.shape == (2, 1)


def test_margin_bracket_boundary_is_inclusive():
    assert model_params.margin_bracket(((0, 0.004), (50_000, 0.005)), 50_000) == pytest.approx((0.005, 50.0))
    assert model_params.margin_bracket(((0, 0.004), (50_000, 0.005)), 49_999.99) == pytest.approx((0.004, 0.0))


def test_from_asset_uses_registry():
    reg = registry.load()
    btc = reg.get("btc")
    p = ModelParams.from_asset(btc, reg.settings_for(btc))
    assert p.leverage == (5.0, 10.0, 25.0, 50.0, 100.0)
    assert sum(p.weights) == pytest.approx(1)
    assert p.mmr_tiers[0] == (0.0, 0.004)
    assert p.side_split == "equal" and p.entry_price == "typical" and p.position_notional_usd == 10_000


def test_params_validation():
    with pytest.raises(ValueError, match="sum to"):
        params(leverage=(5, 10), weights=(0.5, 0.6))
    with pytest.raises(ValueError, match="side_split"):
        params(side_split="random")
    with pytest.raises(ValueError, match="weights"):
        params(leverage=(5, 10), weights=(1.0,))


# ----------------------------------------------------------------------------- consumption


def one_level_setup(lows, highs=None, oi=None):
    """Candle 0 sets the OI baseline, candle 1 opens $1000 at entry 100 (10x, cum 0)."""
    n = len(lows)
    t, o, h, lo, c = flat_candles(n)
    lo[:] = lows
    if highs is not None:
        h[:] = highs
    if oi is None:
        oi = np.full(n, 1000.0)
        oi[0] = 0.0
    return t, o, h, lo, c, np.asarray(oi, dtype=float)


def test_level_consumed_when_crossed_and_not_before():
    lp_long = 100 * 0.9 / 0.995  # 90.452...
    # candle 1: birth (its own low touches the LP: must NOT consume); candle 2: just above; candle 3: touches
    lows = [100, lp_long - 5, lp_long + 0.01, lp_long, 100, 100]
    t, o, h, lo, c, oi = one_level_setup(lows)
    r = model.run(t, o, h, lo, c, oi, params(entry_price="close"))
    np.testing.assert_allclose(r.liquidations_long_usd, [0, 0, 0, 500, 0, 0])
    assert r.liquidations_short_usd.sum() == 0
    book2 = r.book(int(t[2]))
    assert list(book2["side"]) == [LONG, SHORT]
    np.testing.assert_allclose(book2["price"], [lp_long, 100 * 1.1 / 1.005])
    np.testing.assert_allclose(book2["notional_usd"], [500, 500])
    end = r.book()
    assert list(end["side"]) == [SHORT] and end["leverage"][0] == 10


def test_short_level_consumed_on_high():
    lp_short = 100 * 1.1 / 1.005
    t, o, h, lo, c, oi = one_level_setup([100] * 4, highs=[100, lp_short + 1, lp_short - 0.01, lp_short + 0.5])
    r = model.run(t, o, h, lo, c, oi, params(entry_price="close"))
    np.testing.assert_allclose(r.liquidations_short_usd, [0, 0, 0, 500])


def test_before_first_candle_book_is_empty():
    t, o, h, lo, c, oi = one_level_setup([100] * 3)
    r = model.run(t, o, h, lo, c, oi, params())
    assert r.book(int(t[0]) - 1)["price"].size == 0
    assert r.book(int(t[0]))["price"].size == 0  # baseline candle: nothing opened yet
    assert r.book(int(t[1]))["price"].size == 2


# ----------------------------------------------------------------------------- removal and fade


def test_oi_decrease_removes_proportionally():
    # OI: 0 -> 1000 (open 1000) -> 750 (25 % closed) -> 750 -> 1500 (open 750) -> 750 (50 % closed)
    t, o, h, lo, c = flat_candles(6)
    oi = np.array([0, 1000, 750, 750, 1500, 750], dtype=float)
    r = model.run(t, o, h, lo, c, oi, params())
    np.testing.assert_allclose(r.book(int(t[2]))["notional_usd"], [375, 375])
    np.testing.assert_allclose(r.removed_usd, [0, 0, 250, 0, 0, 750])
    b = r.book()
    # old level 375 -> 187.5 and the new 375 -> 187.5, per side
    np.testing.assert_allclose(np.sort(b["notional_usd"]), [187.5] * 4)
    tot = r.totals()
    assert tot == pytest.approx({"added": 1750, "active": 750, "consumed": 0, "removed": 1000, "faded": 0})


def test_full_close_wipes_the_book_and_model_continues():
    t, o, h, lo, c = flat_candles(5)
    oi = np.array([0, 1000, 0, 400, 400], dtype=float)
    r = model.run(t, o, h, lo, c, oi, params())
    assert r.book(int(t[2]))["price"].size == 0
    # after a close to 0 the next increase is measured against 0 and opens 400
    np.testing.assert_allclose(r.book()["notional_usd"], [200, 200])
    tot = r.totals()
    assert tot["removed"] == pytest.approx(1000) and tot["active"] == pytest.approx(400)


def test_nan_oi_means_no_change():
    t, o, h, lo, c = flat_candles(5)
    oi = np.array([100, np.nan, 300, np.nan, 200], dtype=float)
    r = model.run(t, o, h, lo, c, oi, params())
    np.testing.assert_allclose(r.added_usd, [0, 0, 200, 0, 0])
    np.testing.assert_allclose(r.removed_usd, [0, 0, 0, 0, 200 / 3])


def test_fade_halves_after_one_half_life():
    t, o, h, lo, c = flat_candles(8)  # hourly candles
    oi = np.array([0, 1000, 1000, 1000, 1000, 1000, 1000, 1000], dtype=float)
    r = model.run(t, o, h, lo, c, oi, params(fade_half_life_hours=3.0))
    assert r.book(int(t[4]))["notional_usd"].sum() == pytest.approx(500)  # 3 h after birth at candle 1
    assert r.book(int(t[7]))["notional_usd"].sum() == pytest.approx(250)
    tot = r.totals()
    assert tot["faded"] == pytest.approx(750) and tot["active"] == pytest.approx(250)


def test_conservation_random_with_everything_on():
    t, o, h, lo, c, oi, vol, tb = random_series(400, seed=3)
    for split in ("equal", "taker", "candle"):
        p = ModelParams((5, 10, 25, 50, 100), (0.15, 0.3, 0.25, 0.2, 0.1), ((0, 0.004), (50_000, 0.005)),
                        side_split=split, fade_half_life_hours=6.0)
        tot = model.run(t, o, h, lo, c, oi, p, volume=vol, taker_buy_volume=tb).totals()
        assert tot["consumed"] > 0 and tot["removed"] > 0 and tot["faded"] > 0 and tot["active"] > 0
        rest = tot["active"] + tot["consumed"] + tot["removed"] + tot["faded"]
        assert rest == pytest.approx(tot["added"], rel=1e-9)


def test_long_run_of_closing_does_not_underflow():
    # 20 000 candles each closing 5 % and reopening: the cumulative removal factor is
    # exp(-1000) (far below float64), yet recent levels must keep sane values.
    n = 20_000
    t, o, h, lo, c = flat_candles(n, step_ms=60_000)
    oi = np.where(np.arange(n) % 2 == 0, 1000.0, 950.0)
    r = model.run(t, o, h, lo, c, oi, params(fade_half_life_hours=1.0))
    tot = r.totals()
    assert all(math.isfinite(v) for v in tot.values())
    assert tot["active"] + tot["consumed"] + tot["removed"] + tot["faded"] == pytest.approx(tot["added"], rel=1e-9)
    g = r.grid(model.time_columns(t[0], t[-1], 50, 60_000), np.linspace(50, 150, 21))
    assert np.isfinite(g).all() and g[:, -1].sum() == pytest.approx(r.book_usd[-1], rel=1e-9)


# ----------------------------------------------------------------------------- side split


def test_side_split_variants():
    t, o, h, lo, c = flat_candles(2)
    oi = np.array([0.0, 1000.0])
    o[1], h[1], lo[1], c[1] = 98.0, 103.0, 97.0, 102.0  # green candle, body 4 / range 6
    vol, tb = np.array([10.0, 10.0]), np.array([5.0, 8.0])

    def sides(split, **kw):
        r = model.run(t, o, h, lo, c, oi, params(side_split=split, **kw), volume=vol, taker_buy_volume=tb)
        b = r.book()
        return b["notional_usd"][b["side"] == LONG].sum(), b["notional_usd"][b["side"] == SHORT].sum()

    assert sides("equal") == pytest.approx((500, 500))
    assert sides("taker") == pytest.approx((800, 200))
    assert sides("candle") == pytest.approx((1000 * (0.5 + 0.25 * 4 / 6), 1000 * (0.5 - 0.25 * 4 / 6)))
    assert sides("candle", candle_tilt=0.5) == pytest.approx((1000 * (0.5 + 0.5 * 4 / 6), 1000 * (0.5 - 0.5 * 4 / 6)))
    # taker without taker data falls back to 50/50
    r = model.run(t, o, h, lo, c, oi, params(side_split="taker"))
    assert r.book()["notional_usd"] == pytest.approx([500, 500])


def test_entry_price_and_tiers():
    t, o, h, lo, c = flat_candles(2)
    oi = np.array([0.0, 1000.0])
    h[1], lo[1], c[1] = 110.0, 95.0, 104.0  # typical = 103
    p = params(leverage=(5, 10), weights=(0.25, 0.75))
    b = model.run(t, o, h, lo, c, oi, p).book()
    longs = b["side"] == LONG
    np.testing.assert_allclose(b["price"][longs], [103 * 0.8 / 0.995, 103 * 0.9 / 0.995])
    np.testing.assert_allclose(b["leverage"][longs], [5, 10])
    np.testing.assert_allclose(b["notional_usd"][longs], [125, 375])
    bc = model.run(t, o, h, lo, c, oi, params(entry_price="close")).book()
    assert bc["price"][0] == pytest.approx(104 * 0.9 / 0.995)


def test_oi_change_base_values_contracts_at_entry():
    t, o, h, lo, c = flat_candles(3)
    c[2] = h[2] = lo[2] = o[2] = 200.0
    oi = np.array([1000.0, 1000.0, 2000.0])  # USD OI doubles only because price doubled
    assert model.run(t, o, h, lo, c, oi, params()).totals()["added"] == pytest.approx(1000)
    assert model.run(t, o, h, lo, c, oi, params(oi_change="base")).totals()["added"] == pytest.approx(0)


# ----------------------------------------------------------------------------- grid and helpers


def test_grid_column_semantics():
    t, o, h, lo, c = flat_candles(4)
    oi = np.array([0.0, 1000.0, 1000.0, 1000.0])
    r = model.run(t, o, h, lo, c, oi, params(entry_price="close"))
    edges = np.array([80.0, 95.0, 105.0, 120.0])
    cols = np.array([t[0], t[1], t[1] + 1, t[3] + 1, t[3] + 10 * H])
    g = r.grid(cols, edges)
    assert g.shape == (2, 5, 3)
    # col 0: no candle before t0; col 1: only the baseline candle; col 2: after candle 1
    assert g[:, :2].sum() == 0
    np.testing.assert_allclose(g[0, 2], [500, 0, 0])  # long LP 90.45 in [80, 95)
    np.testing.assert_allclose(g[1, 2], [0, 0, 500])  # short LP 109.45 in [105, 120)
    np.testing.assert_allclose(g[:, 3], g[:, 2])
    np.testing.assert_allclose(g[:, 4], g[:, 2])
    # levels outside the edges are dropped
    assert r.grid(cols, np.array([95.0, 105.0])).sum() == 0


def test_grid_drops_consumed_levels_in_the_right_column():
    t, o, h, lo, c = flat_candles(5)
    lo[3] = 90.0  # consumes the 10x long (LP 90.45) at candle 3
    oi = np.array([0.0, 1000.0, 1000.0, 1000.0, 1000.0])
    r = model.run(t, o, h, lo, c, oi, params(entry_price="close"))
    g = r.grid(t + 1, np.array([50.0, 100.0, 150.0]))
    np.testing.assert_allclose(g[0, :, 0], [0, 500, 500, 0, 0])
    np.testing.assert_allclose(g[1, :, 1], [0, 500, 500, 500, 500])


def test_time_columns():
    cols = model.time_columns(0, 299 * 300_000, max_cols=100, candle_ms=300_000)
    assert len(cols) == 100 and cols[0] == 3 * 300_000 and cols[-1] == 300 * 300_000
    cols = model.time_columns(0, 301 * 300_000, max_cols=100, candle_ms=300_000)
    assert len(cols) <= 100 and cols[-1] > 301 * 300_000 and (np.diff(cols) % 300_000 == 0).all()
    assert list(model.time_columns(0, 0, candle_ms=60_000)) == [60_000]


def test_align_oi_as_of():
    ct = np.array([0, 60, 120, 180, 240, 300])
    got = model.align_oi(ct, np.array([300, 60, 180]), np.array([3.0, 1.0, np.nan]))
    np.testing.assert_array_equal(got, [np.nan, 1, 1, 1, 1, 3])


# ----------------------------------------------------------------------------- reference implementation


def random_series(n, seed=0, step_ms=300_000):
    rng = np.random.default_rng(seed)
    t = T0 + step_ms * np.arange(n, dtype=np.int64)
    c = 50_000 * np.exp(np.cumsum(rng.normal(0, 0.004, n)))
    o = np.r_[c[0], c[:-1]]
    h = np.maximum(o, c) * (1 + np.abs(rng.normal(0, 0.002, n)))
    lo = np.minimum(o, c) * (1 - np.abs(rng.normal(0, 0.002, n)))
    oi = 1e9 * np.exp(np.cumsum(rng.normal(0.0002, 0.004, n)))
    oi[rng.random(n) < 0.05] = np.nan
    oi[n // 2] = 0.0  # one whole-book close
    vol = rng.uniform(1, 10, n)
    tb = vol * rng.uniform(0, 1, n)
    return t, o, h, lo, c, oi, vol, tb


def naive_run(t, o, h, lo, c, oi, p: ModelParams, volume=None, taker=None):
    """Candle-by-candle reference: a Python list of [birth, side, tier, price, value]."""
    mmr, cum = p.bracket
    levels = []
    liq = np.zeros((2, len(t)))
    removed = faded = added = 0.0
    prev = None
    last_raw = math.nan
    book_at = []
    for i in range(len(t)):
        # 1. consume
        keep = []
        for lv in levels:
            crossed = (lv[1] == LONG and lv[3] >= lo[i]) or (lv[1] == SHORT and lv[3] <= h[i])
            if crossed:
                liq[0 if lv[1] == LONG else 1, i] += lv[4]
            else:
                keep.append(lv)
        levels = keep
        # 2./3. OI change
        cur = oi[i]
        d = 0.0
        if not math.isnan(cur) and cur != last_raw:  # an equal value is the last sample carried
            last_raw = cur
            if p.oi_change == "base":
                cur = cur / c[i]
            if prev is not None:
                d = cur - prev
            prev = cur
        if d < 0:
            f = min(1.0, -d / (cur - d)) if (cur - d) > 0 else 1.0
            if f >= 1 - 1e-12:
                removed += sum(lv[4] for lv in levels)
                levels = []
            else:
                for lv in levels:
                    removed += lv[4] * f
                    lv[4] *= 1 - f
        # 4. fade (existing levels only)
        if p.fade_half_life_hours and i:
            phi = 0.5 ** ((t[i] - t[i - 1]) / (p.fade_half_life_hours * H))
            for lv in levels:
                faded += lv[4] * (1 - phi)
                lv[4] *= phi
        if d > 0:
            usd = d * ((h[i] + lo[i] + c[i]) / 3 if p.entry_price == "typical" else c[i]) if p.oi_change == "base" else d
            e = (h[i] + lo[i] + c[i]) / 3 if p.entry_price == "typical" else c[i]
            if p.side_split == "equal":
                s = 0.5
            elif p.side_split == "taker":
                s = taker[i] / volume[i] if volume is not None and volume[i] > 0 else 0.5
            else:
                s = 0.5 + p.candle_tilt * (c[i] - o[i]) / (h[i] - lo[i]) if h[i] > lo[i] else 0.5
            for side, share in ((LONG, s), (SHORT, 1 - s)):
                for k, (lev, w) in enumerate(zip(p.leverage, p.weights)):
                    v = usd * share * w
                    if v > 0:
                        price = e * (1 - side / lev - side * cum / p.position_notional_usd) / (1 - side * mmr)
                        levels.append([i, side, k, price, v])
                        added += v
        book_at.append([list(lv) for lv in levels])
    return liq, added, removed, faded, book_at


def naive_grid(book_at, t, cols, edges):
    k = len(edges) - 1
    g = np.zeros((2, len(cols), k))
    for j, end in enumerate(cols):
        idx = int(np.sum(t < end)) - 1
        if idx < 0:
            continue
        for lv in book_at[idx]:
            if edges[0] <= lv[3] <= edges[-1]:
                b = min(int(np.searchsorted(edges, lv[3], side="right")) - 1, k - 1)
                g[0 if lv[1] == LONG else 1, j, b] += lv[4]
    return g


@pytest.mark.parametrize(
    "kw",
    [
        {},
        {"fade_half_life_hours": 2.0, "side_split": "taker"},
        {"side_split": "candle", "entry_price": "close", "position_notional_usd": 120_000.0},
        {"oi_change": "base", "fade_half_life_hours": 0.5},
    ],
)
def test_vectorized_equals_naive_reference(kw):
    t, o, h, lo, c, oi, vol, tb = random_series(300, seed=11)
    p = ModelParams((5, 10, 25, 50, 100), (0.15, 0.3, 0.25, 0.2, 0.1),
                    ((0, 0.004), (50_000, 0.005), (500_000, 0.01)), **kw)
    r = model.run(t, o, h, lo, c, oi, p, volume=vol, taker_buy_volume=tb)
    liq, added, removed, faded, book_at = naive_run(t, o, h, lo, c, oi, p, vol, tb)
    np.testing.assert_allclose(r.liquidations_long_usd, liq[0], rtol=1e-9, atol=1e-3)
    np.testing.assert_allclose(r.liquidations_short_usd, liq[1], rtol=1e-9, atol=1e-3)
    tot = r.totals()
    assert tot["added"] == pytest.approx(added, rel=1e-12)
    assert tot["removed"] == pytest.approx(removed, rel=1e-9)
    assert tot["faded"] == pytest.approx(faded, rel=1e-9, abs=1e-3)
    assert tot["active"] == pytest.approx(sum(lv[4] for lv in book_at[-1]), rel=1e-9)
    # book at an intermediate time
    mid = r.book(int(t[200]))
    ref = sorted((lv[1], lv[3], lv[4]) for lv in book_at[200])
    got = sorted(zip(mid["side"].tolist(), mid["price"].tolist(), mid["notional_usd"].tolist()))
    assert len(got) == len(ref)
    np.testing.assert_allclose(np.array(got), np.array(ref), rtol=1e-9)
    # grid
    cols = model.time_columns(t[0], t[-1], max_cols=37, candle_ms=300_000)
    edges = np.linspace(c.min() * 0.8, c.max() * 1.2, 61)
    np.testing.assert_allclose(r.grid(cols, edges), naive_grid(book_at, t, cols, edges), rtol=1e-9, atol=1e-4)


def test_grid_accepts_unsorted_columns():
    t, o, h, lo, c, oi, vol, tb = random_series(200, seed=5)
    p = ModelParams((10, 50), (0.5, 0.5), ((0, 0.004),), fade_half_life_hours=3.0)
    r = model.run(t, o, h, lo, c, oi, p)
    cols = t[[150, 20, 199, 20, 75]] + 1
    edges = np.linspace(c.min() * 0.9, c.max() * 1.1, 31)
    g = r.grid(cols, edges)
    for j, col in enumerate(cols):
        np.testing.assert_allclose(g[:, j], r.grid([col], edges)[:, 0], rtol=1e-12)


def test_leverage_beyond_maintenance_is_rejected():
    with pytest.raises(ValueError, match="maintenance"):
        params(leverage=(300.0,), mmr_tiers=((0.0, 0.004),))


def test_oi_change_base_ignores_pure_price_moves():
    # OI in USD rises 10 % only because price rose 10 %: no coin changed hands.
    t, o, h, lo, c = flat_candles(3)
    c = np.array([100.0, 110.0, 110.0]); o = c.copy(); h = c + 0.5; lo = c - 0.5
    oi = np.array([1000.0, 1100.0, 1210.0])  # 10, 10, 11 coins
    r = model.run(t, o, h, lo, c, oi, params(oi_change="base", entry_price="close"))
    assert r.totals()["added"] == pytest.approx(1.0 * 110.0)  # only the third candle's extra coin
    assert model.run(t, o, h, lo, c, oi, params(oi_change="usd")).totals()["added"] == pytest.approx(210.0)
