"""Context series (RSI, funding basis, OI aggregation) against hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pytest

from pipeline.model import indicators as ind

H = 3_600_000


def test_rsi_wilder_by_hand():
    # period 2; diffs +1 -1 +1 +1 -1: seed gains (1, 0) / losses (0, 1) -> 0.5 / 0.5 -> 50;
    # +1: ag = (0.5 + 1) / 2 = 0.75, al = 0.25 -> 75; -1... see each step below.
    close = [1, 2, 1, 2, 3, 2]
    r = ind.rsi(close, period=2)
    assert np.isnan(r[:2]).all()
    assert r[2] == pytest.approx(50.0)
    assert r[3] == pytest.approx(75.0)  # ag 0.75, al 0.25
    assert r[4] == pytest.approx(100 - 100 / (1 + 0.875 / 0.125))  # ag (0.75 + 1) / 2, al 0.25 / 2
    assert r[5] == pytest.approx(100 - 100 / (1 + 0.4375 / 0.5625))  # ag 0.875 / 2, al (0.125 + 1) / 2


def test_rsi_extremes_and_gaps():
    assert ind.rsi(np.arange(30.0))[14:] == pytest.approx(100.0)
    assert ind.rsi(np.full(30, 7.0))[14:] == pytest.approx(50.0)
    assert ind.rsi(np.arange(30.0, 0, -1))[14:] == pytest.approx(0.0)
    assert np.isnan(ind.rsi(np.arange(14.0))).all()  # too short: no value rather than a guess
    # Leading NaN shifts the start; an inner NaN is carried over, not a jump to 0.
    x = np.r_[np.nan, np.nan, np.arange(20.0)]
    r = ind.rsi(x)
    assert np.isnan(r[:16]).all() and r[16:] == pytest.approx(100.0)
    y = np.arange(40.0)
    y[25] = np.nan
    assert np.nanmin(ind.rsi(y)[14:]) > 90


def test_at_column_ends_is_strictly_before_and_ages_out():
    t = np.array([0, 10, 20, 30])
    v = np.array([1.0, 2.0, np.nan, 4.0])
    ends = np.array([0, 5, 10, 25, 31, 100])
    assert ind.at_column_ends(t, v, ends).tolist()[1:] == [1.0, 1.0, 2.0, 4.0, 4.0]
    assert math.isnan(ind.at_column_ends(t, v, ends)[0])
    aged = ind.at_column_ends(t, v, ends, max_age_ms=20)
    assert math.isnan(aged[-1]) and aged[-2] == 4.0 and aged[3] == 2.0
    assert np.isnan(ind.at_column_ends([], [], ends, max_age_ms=5)).all()


def test_funding_basis():
    hourly = np.arange(0, 24 * H, H)
    assert ind.funding_interval_ms(hourly) == H
    assert ind.funding_per_8h(hourly, np.full(24, 0.00001)) == pytest.approx(0.00008)
    eight = np.arange(0, 72 * H, 8 * H)
    assert ind.funding_per_8h(eight, np.full(9, 0.0001)) == pytest.approx(0.0001)
    assert ind.funding_interval_ms([5]) is None
    assert ind.funding_per_8h([5], [0.0003]).tolist() == [0.0003]


def test_weighted_mean_and_total_ignore_missing_markets():
    v = np.array([[0.001, np.nan, 0.002], [0.003, 0.004, np.nan]])
    w = np.array([[1.0, 1.0, np.nan], [3.0, 1.0, 1.0]])
    m = ind.weighted_mean(v, w)
    assert m[0] == pytest.approx((0.001 + 0.009) / 4)
    assert m[1] == pytest.approx(0.004)  # the first market has no value there
    assert math.isnan(m[2])  # its only value has no weight
    t = ind.total(np.array([[1.0, np.nan, np.nan], [2.0, 5.0, np.nan]]))
    assert t[:2].tolist() == [3.0, 5.0] and math.isnan(t[2])


def test_funding_across_markets_weights_by_oi_else_equally():
    f = np.array([[0.001, 0.001, np.nan], [0.003, 0.003, np.nan]])
    oi = np.array([[1.0, np.nan, 1.0], [3.0, np.nan, 1.0]])
    out = ind.funding_across(f, oi)
    assert out[0] == pytest.approx(0.0025)  # (1 x 0.001 + 3 x 0.003) / 4
    assert out[1] == pytest.approx(0.002)  # no OI known: the plain mean
    assert math.isnan(out[2])  # no funding at all
