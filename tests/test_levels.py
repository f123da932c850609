"""Key levels: clusters above/below price, merging of adjacent hot bins, confluence."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.model.levels import Cluster, confluence, find_clusters, nearest

EDGES = np.arange(0.0, 101.0)  # 100 bins of width 1, price axis 0..100


def _col(**bins):
    col = np.zeros(100)
    for k, v in bins.items():
        col[int(k[1:])] = v
    return col


def test_sides_and_distance():
    col = _col(b40=10, b70=20)
    cl = find_clusters(col, EDGES, price=50.0)
    longs = [c for c in cl if c.side == "long"]
    shorts = [c for c in cl if c.side == "short"]
    assert len(longs) == 1 and len(shorts) == 1
    assert (longs[0].price_low, longs[0].price_high, longs[0].notional_usd) == (40, 41, 10)
    assert longs[0].distance_pct == pytest.approx((40.5 - 50) / 50 * 100)
    assert shorts[0].distance_pct == pytest.approx((70.5 - 50) / 50 * 100)
    assert longs[0].rank == shorts[0].rank == 1


def test_adjacent_hot_bins_merge_and_rank_by_total():
    col = _col(b60=5, b61=5, b62=5, b80=12, b90=1, b91=1, b92=1, b93=1)
    cl = [c for c in find_clusters(col, EDGES, price=50.0) if c.side == "short"]
    # 60-63 merged (15) outranks the single bin 80 (12).
    assert (cl[0].price_low, cl[0].price_high, cl[0].notional_usd) == (60, 63, 15)
    assert cl[1].notional_usd == 12
    assert [c.rank for c in cl] == list(range(1, len(cl) + 1))


def test_top_limits_each_side():
    col = np.zeros(100)
    col[0:40:2] = np.arange(1, 21)  # 20 separated hot-ish bins below
    col[60:100:2] = np.arange(1, 21)
    cl = find_clusters(col, EDGES, price=50.0, top=3, hot_quantile=0.0)
    assert sum(c.side == "long" for c in cl) == 3 and sum(c.side == "short" for c in cl) == 3
    assert [c.notional_usd for c in cl if c.side == "long"] == [20, 19, 18]


def test_empty_and_bad_inputs():
    assert find_clusters(np.zeros(100), EDGES, 50.0) == []
    assert find_clusters(_col(b10=1), EDGES, float("nan")) == []
    with pytest.raises(ValueError):
        find_clusters(np.zeros(10), EDGES, 50.0)


def test_run_never_straddles_price():
    col = _col(b48=5, b49=5, b50=5, b51=5)
    cl = find_clusters(col, EDGES, price=50.0)
    assert {c.side for c in cl} == {"long", "short"}
    assert all(c.price_high <= 50 for c in cl if c.side == "long")


def test_confluence_counts_other_timeframes():
    a = Cluster("short", 60, 62, 10, 22, 1)
    b = Cluster("short", 61, 65, 10, 26, 1)
    c = Cluster("short", 90, 91, 10, 80, 1)
    d = Cluster("long", 60, 62, 10, 22, 1)  # other side never counts
    scored = confluence({"12h": [a], "24h": [b, c], "1w": [d]})
    assert scored["12h"][0].confluence == 1
    assert [x.confluence for x in scored["24h"]] == [1, 0]
    assert scored["1w"][0].confluence == 0
    assert nearest(scored["24h"], "short").price_low == 61
    assert nearest(scored["24h"], "long") is None


def test_snapshot_book_is_binned_by_price_side_and_leverage():
    from pipeline.model.views import binned_book

    book = {
        "price": np.array([99.95, 99.91, 99.85, 100.05, 100.05, 160.0]),
        "side": np.array([1, 1, 1, -1, -1, -1], np.int8),
        "leverage": np.array([10.0, 10.0, 10.0, 25.0, 50.0, 2.0]),
        "notional_usd": np.array([1.0, 2.0, 4.0, 8.0, 16.0, 32.0]),
    }
    b = binned_book(book, 100.0, width=0.001, span=0.5)  # bins of $0.10 anchored at $100
    rows = sorted(zip(b["price_low"].round(2), b["side"], b["leverage"], b["notional_usd"], b["levels"]))
    assert rows == [(99.8, "long", 10.0, 4.0, 1), (99.9, "long", 10.0, 3.0, 2),
                    (100.0, "short", 25.0, 8.0, 1), (100.0, "short", 50.0, 16.0, 1)]  # 160 is beyond +-50 %
    assert np.allclose(b["price_high"] - b["price_low"], 0.1)
