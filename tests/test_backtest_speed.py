"""The backtest's faster counting gives the same numbers as the plain definitions."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.backtest.cases import _EPS, HOUR_MS, _reference_counts
from pipeline.backtest.stats import _count_product, block_weights, bootstrap_lift


def _brute_counts(exc, scale, block, ev, j_case, z_case, hours, d):
    """Per case and block, by the definition: eligible reference points outside the case's purge
    window (|t_ref - t_case| < horizon) whose normalised excursion reached the case's distance."""
    u = exc / scale
    hits = np.zeros((j_case.size, d), np.int64)
    tot = np.zeros((j_case.size, d), np.int64)
    for i, (jc, z) in enumerate(zip(j_case, z_case)):
        for r in range(ev.size):
            if not (np.isfinite(u[r]) and block[r] >= 0) or abs(int(ev[r]) - int(ev[jc])) < hours * HOUR_MS:
                continue
            tot[i, block[r]] += 1
            hits[i, block[r]] += u[r] >= z - _EPS
    return hits, tot


@pytest.mark.parametrize("seed", range(6))
def test_reference_counts_match_the_definition(seed):
    rng = np.random.default_rng(seed)
    m, d, hours = int(rng.integers(20, 160)), int(rng.integers(1, 12)), int(rng.choice([4, 24, 72]))
    ev = np.sort(rng.choice(2000, m, replace=False)).astype(np.int64) * HOUR_MS
    exc = np.round(rng.normal(0, 2, m), 1)  # rounded: ties between excursions and distances
    exc[rng.random(m) < 0.1] = np.nan
    scale = np.where(rng.random(m) < 0.05, np.nan, 1.0)
    block = np.minimum(ev // (2000 * HOUR_MS // d), d - 1)
    block[rng.random(m) < 0.05] = -1
    j = rng.choice(np.flatnonzero(block >= 0), 40)  # cases are scored at points with a block (evaluate)
    z = np.round(rng.normal(0, 2, 40), 1)
    hits, tot = _reference_counts(exc, scale, block, ev, j, z, hours, d)
    want_h, want_t = _brute_counts(exc, scale, block, ev, j, z, hours, d)
    assert np.array_equal(hits, want_h) and np.array_equal(tot, want_t)
    assert hits.dtype == tot.dtype == np.uint16


def test_count_product_is_the_float64_product_to_the_bit():
    rng = np.random.default_rng(0)
    w = block_weights(365, seed=24)
    small = rng.integers(0, 3000, (365, 365)).astype(float)  # float32 path: 365 x 3000 < 2**24
    big = small * 1000.0  # past 2**24: the float64 product
    for counts in (small, big, np.zeros((0, 365))):
        assert np.array_equal(_count_product(w, counts), w @ counts.T)
    cases = rng.integers(1, 40, 365).astype(float)
    hits = np.minimum(cases, rng.integers(0, 20, 365))
    ref_n = small + 1
    ref_h = np.minimum(ref_n, rng.integers(0, 3000, (365, 365)))
    got = bootstrap_lift(hits, cases, ref_h, ref_n, w)
    with np.errstate(invalid="ignore", divide="ignore"):
        share = (w @ ref_h.T) / (w @ ref_n.T)
        expected = np.nansum(w * cases[None, :] * share, axis=1)
        want = np.where(expected > 0, (w @ hits) / expected, np.nan)
    assert np.array_equal(got, want, equal_nan=True)
