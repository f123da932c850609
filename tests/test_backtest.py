"""Backtest evaluation logic on constructed series whose answers are known in advance."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pytest

from pipeline.backtest import cases as bcases
from pipeline.backtest import realized as brealized
from pipeline.backtest import stats, variants
from pipeline.backtest import summary as bsummary
from pipeline.model import levels

H = bcases.HOUR_MS
M5 = 300_000


@dataclass(frozen=True)
class C:
    """A minimal cluster (duck-typed like levels.Cluster)."""

    side: str
    price_low: float
    price_high: float
    notional_usd: float = 1.0
    rank: int = 1
    confluence: float = 0.0


def series(close: np.ndarray, spread: float = 0.0, t0: int = 1_700_000_000_000 // H * H):
    t = t0 + np.arange(close.size, dtype=np.int64) * M5
    return t, close * (1 + spread), close * (1 - spread), close


def symmetric_clusters(paths, dist_pct, width_pct=0.1):
    """One cluster above and one below every point, near edges at +/- dist_pct[j] %."""
    out = []
    for j, p in enumerate(paths.price):
        d = dist_pct[j] if np.ndim(dist_pct) else dist_pct
        lo_a = p * (1 + d / 100)
        hi_b = p * (1 - d / 100)
        out.append([
            C("short", lo_a, lo_a * (1 + width_pct / 100)),
            C("long", hi_b * (1 - width_pct / 100), hi_b),
        ])
    return out


# -- price paths: no look-ahead, horizons past the data skipped --
def test_price_is_last_close_before_point_and_horizon_skip():
    close = np.linspace(100, 110, 12 * 30)  # 30 h of 5-minute candles
    t, hi, lo, c = series(close)
    ev = bcases.eval_times(t, warmup_ms=2 * H)
    p = bcases.price_paths(t, hi, lo, c, ev, horizons_h=(4, 24))
    j = 0
    i_last = np.searchsorted(t, ev[j]) - 1
    assert p.price[j] == c[i_last] and t[i_last] < ev[j]
    # 24 h horizons fit only for points at most 6 h after the start (30 h of data).
    ok24 = np.isfinite(p.up_pct[:, 1])
    assert ok24.any() and not ok24.all()
    assert (ev[ok24] + 24 * H <= t[-1] + M5).all()
    assert (ev[~ok24] + 24 * H > t[-1] + M5).all()


# -- always / never reached --
def oscillating(days=8, amp=0.02, period_h=2):
    n = days * 24 * 12
    k = np.arange(n)
    return 100.0 * (1 + amp * np.sin(2 * np.pi * k / (period_h * 12)))


def test_clusters_always_reached_hit_rate_one():
    t, hi, lo, c = series(oscillating())
    ev = bcases.eval_times(t)
    paths = bcases.price_paths(t, hi, lo, c, ev)
    # Price swings +/-2 % every 2 h, so a cluster within 0.5 % of price is always reached.
    cases = bcases.evaluate(paths, symmetric_clusters(paths, 0.5))
    rows = bsummary.summarize(cases)
    for r in rows:
        if not r["skipped"]:
            assert r["hit_rate"] == 1.0
            assert r["baseline_rate"] == 1.0
            assert r["lift"] == 1.0
    assert any(r["horizon_h"] == 72 and not r["skipped"] for r in rows)


def test_clusters_never_reached_hit_rate_zero():
    t, hi, lo, c = series(oscillating())
    ev = bcases.eval_times(t)
    paths = bcases.price_paths(t, hi, lo, c, ev)
    cases = bcases.evaluate(paths, symmetric_clusters(paths, 50.0))
    for r in bsummary.summarize(cases):
        if not r["skipped"]:
            assert r["hits"] == 0 and r["hit_rate"] == 0.0
            assert r["hit_ci"][0] in (0.0, None) and (r["hit_ci"][1] is None or r["hit_ci"][1] < 0.05)
            assert r["lift"] is None  # 0/0: no lift to report


def test_touch_uses_near_edge():
    # Barely moving around 100 (some volatility to measure distances in), one spike to 101
    # in the 2nd hour after the first point.
    close = 100.0 * (1 + 1e-4 * np.sin(np.arange(12 * 40)))
    t, hi, lo, c = series(close)
    ev = bcases.eval_times(t, warmup_ms=6 * H)
    i_spike = np.searchsorted(t, ev[0] + 90 * 60_000)
    hi = hi.copy()
    hi[i_spike] = 101.0
    paths = bcases.price_paths(t, hi, lo, c, ev, horizons_h=(4,))
    reach = [[C("short", 101.0, 105.0)]] + [[] for _ in ev[1:]]  # near edge exactly at the high
    miss = [[C("short", 101.01, 101.5)]] + [[] for _ in ev[1:]]
    assert bcases.evaluate(paths, reach).hit.tolist() == [True]
    assert bcases.evaluate(paths, miss).hit.tolist() == [False]
    assert bcases.evaluate(paths, reach).baseline.tolist() == [0.0]  # no other point saw a 1 % rise


# -- random walk with clusters independent of the future: lift ~ 1 --
def test_random_walk_symmetric_clusters_lift_near_one():
    rng = np.random.default_rng(7)
    n = 90 * 24 * 12  # 90 days of 5-minute candles
    close = 30_000 * np.exp(np.cumsum(rng.normal(0, 0.0015, n)))
    t, _, _, c = series(close)
    hi = c * (1 + np.abs(rng.normal(0, 0.0005, n)))
    lo = c * (1 - np.abs(rng.normal(0, 0.0005, n)))
    ev = bcases.eval_times(t)
    paths = bcases.price_paths(t, hi, lo, c, ev)
    dist = rng.uniform(0.2, 4.0, ev.size)  # chosen without looking at the future
    cases = bcases.evaluate(paths, symmetric_clusters(paths, dist))
    for r in bsummary.summarize(cases):
        if r["side"] == "both" and not r["skipped"]:
            lo_ci, hi_ci = r["lift_ci"]
            assert lo_ci <= 1.0 <= hi_ci, r
            assert abs(r["lift"] - 1) < 0.15, r
            # The rates' own intervals overlap too.
            assert r["hit_ci"][0] <= r["baseline_rate"] <= r["hit_ci"][1] or abs(r["lift"] - 1) < 0.05


def test_oracle_clusters_show_lift_above_one():
    # Clusters placed where price *will* go (cheating on purpose) must beat the baseline:
    # proves the baseline can detect a real signal.
    rng = np.random.default_rng(3)
    n = 60 * 24 * 12
    close = 30_000 * np.exp(np.cumsum(rng.normal(0, 0.0015, n)))
    t, hi, lo, c = series(close)
    ev = bcases.eval_times(t)
    paths = bcases.price_paths(t, hi, lo, c, ev, horizons_h=(24,))
    cl = []
    for j, p in enumerate(paths.price):
        up = paths.up_pct[j, 0]
        if not np.isfinite(up):
            cl.append([])
            continue
        near = up - 0.001  # just inside tomorrow's high
        cl.append([C("short", p * (1 + near / 100), p * (1 + near / 100) * 1.001)])
    r = [x for x in bsummary.summarize(bcases.evaluate(paths, cl)) if x["side"] == "above"][0]
    assert r["hit_rate"] == 1.0
    assert r["lift"] > 1.5 and r["lift_ci"][0] > 1.0


def test_baseline_purges_overlapping_neighbours_and_counts_in_volatility_units():
    # Five points 4 h apart, horizon 4 h: only the point itself overlaps its own window,
    # so every other point is a reference. Distances are compared in units of each point's
    # own volatility: a 1.5 % level at a point whose unit is 1 % is z = 1.5.
    p = bcases.Paths(
        eval_ms=np.arange(5) * 4 * H, price=np.full(5, 100.0), horizons_h=(4,),
        up_pct=np.array([[1.0], [2.0], [3.0], [4.0], [6.0]]), down_pct=np.zeros((5, 1)),
        scale_pct=np.array([[1.0], [1.0], [1.0], [2.0], [2.0]]), block=np.zeros((5, 1), np.int64),
        block_h=(24.0,), n_blocks=(1,),
    )
    cl = [[C("short", 101.5, 102.0)], [], [], [], []]
    cases = bcases.evaluate(p, cl)
    assert cases.hit.tolist() == [False]
    # Others in units: 2, 3, 2, 3 -> all reach z = 1.5.
    assert cases.baseline.tolist() == [pytest.approx(1.0)]
    cl = [[], [], [], [C("short", 105.0, 106.0)], []]  # z = 5 / 2 = 2.5
    cases = bcases.evaluate(p, cl)
    assert cases.hit.tolist() == [False] and cases.baseline.tolist() == [pytest.approx(0.5)]  # 3 and 3 of 1, 2, 3, 3
    # Horizon 8 h: the neighbours 4 h away share the window and are purged.
    p8 = bcases.Paths(p.eval_ms, p.price, (8,), p.up_pct, p.down_pct, p.scale_pct, p.block, (24.0,), (1,))
    cases = bcases.evaluate(p8, [[], [], [C("short", 101.5, 102.0)], [], []])
    assert cases.ref_n[:, 0].tolist() == [2]  # points 0 and 4 only


def test_skip_rule_and_block_intervals():
    t, hi, lo, c = series(oscillating(days=2))
    ev = bcases.eval_times(t)
    paths = bcases.price_paths(t, hi, lo, c, ev)
    cases = bcases.evaluate(paths, symmetric_clusters(paths, 0.5), top_k=1)
    rows = {(r["horizon_h"], r["side"]): r for r in bsummary.summarize(cases, min_cases=30)}
    # 48 h of data, 6 h warm-up: no point has 72 h of future.
    assert (72, "both") not in rows
    r4 = rows[(4, "above")]
    assert r4["cases"] >= 30 and not r4["skipped"] and "n_eff" not in r4
    # Short history: blocks shrink (never below the horizon) so that there are about ten.
    assert r4["block_h"] >= 4 and r4["blocks"] >= 5 and r4["lift_ci"][0] is not None
    # 24 h: every other point's window overlaps, so nothing is left to compare with.
    r24 = rows.get((24, "both"))
    assert r24 is None or (r24["cases"] < 30 and r24["skipped"] and "hit_rate" not in r24)


# -- confluence --
def test_confluence_scores():
    tf = {
        "12h": [C("short", 101, 102), C("long", 95, 96)],
        "24h": [C("short", 101.5, 103), C("long", 90, 91)],
        "3d": [C("short", 102.5, 104), C("long", 95.5, 97)],
    }
    s = {k: [c.confluence for c in v] for k, v in levels.confluence(tf).items()}
    assert s == {"12h": [1, 1], "24h": [2, 0], "3d": [1, 1]}
    # Touching edges are not an overlap (the one rule, levels.overlaps, behind Cluster.overlaps too).
    touching = levels.confluence({"a": [C("short", 1, 2)], "b": [C("short", 2, 3)]})
    assert [c.confluence for v in touching.values() for c in v] == [0, 0]
    assert not levels.Cluster("short", 1, 2, 1, 0, 1).overlaps(levels.Cluster("short", 2, 3, 1, 0, 1))
    # Opposite sides never overlap.
    assert levels.confluence_counts([C("short", 1, 2)], [[C("long", 1, 2)]]) == [0]
    # A tolerance widens each range by a share of its own mid.
    assert levels.confluence_counts([C("short", 100, 101)], [[C("short", 101.5, 102)]], tol_pct=1.0) == [1]


def test_hit_rate_by_confluence_bucket():
    t, hi, lo, c = series(oscillating())
    ev = bcases.eval_times(t)
    paths = bcases.price_paths(t, hi, lo, c, ev)
    near = symmetric_clusters(paths, 0.5)
    far = symmetric_clusters(paths, 50.0)
    # Near clusters (always hit) carry confluence 2, far ones (never hit) confluence 0.
    cl = [a + b for a, b in zip(near, far)]
    conf = [[2, 2, 0, 0] for _ in cl]
    cases = bcases.evaluate(paths, cl, top_k=2, confluence=conf)
    rows = {(r["horizon_h"], r["confluence"]): r for r in bsummary.by_confluence(cases)}
    assert rows[(24, "2+")]["hit_rate"] == 1.0
    assert rows[(24, "0")]["hit_rate"] == 0.0
    assert rows[(24, "1")]["skipped"] and rows[(24, "1")]["cases"] == 0


# -- realized liquidations --
def test_rankdata_ties_and_spearman():
    assert stats.rankdata(np.array([10, 20, 20, 30])).tolist() == [1, 2.5, 2.5, 4]
    x = np.arange(10.0)
    assert stats.spearman(x, x**3) == pytest.approx(1.0)
    assert stats.spearman(x, -x) == pytest.approx(-1.0)
    assert stats.pearson(x, 2 * x + 1) == pytest.approx(1.0)
    assert math.isnan(stats.pearson(x, np.ones(10)))


def test_realized_comparison_on_constructed_data():
    t0 = 1_700_000_000_000 // H * H
    rng = np.random.default_rng(1)
    hourly = rng.uniform(0, 1e6, 48)
    # Model: one value per 5-minute candle; realized: one order per hour at :30.
    mt = t0 + np.arange(48 * 12, dtype=np.int64) * M5
    m_long = np.repeat(hourly / 12, 12)
    m_short = np.zeros_like(m_long)
    lt = t0 + np.arange(48, dtype=np.int64) * H + 30 * 60_000
    realized = 3 * hourly + 5  # perfectly linear in the modelled amount
    side = np.array(["long"] * 48)
    price = np.full(48, 99.0)
    ev = t0 + np.arange(48, dtype=np.int64) * H
    # Half of the hours predict a long cluster at 98.9-99.1 (contains 99), half at 90-91 (4+ % away).
    cl = [[C("long", 98.9, 99.1)] if j % 2 == 0 else [C("long", 90.0, 91.0)] for j in range(48)]
    out = brealized.realized_comparison(mt, m_long, m_short, lt, side, price, realized, eval_ms=ev, clusters=cl,
                                 bands_pct=(0.5, 10.0))
    assert out["available"] and out["hours"] == 48
    assert out["pearson"] == pytest.approx(1.0) and out["spearman"] == pytest.approx(1.0)
    even = realized[::2].sum() / realized.sum()
    assert out["share_within_pct"]["0.5"] == pytest.approx(even)
    assert out["share_within_pct"]["10"] == pytest.approx(1.0)
    # A short-side cluster never covers a long liquidation.
    cl_short = [[C("short", 98.0, 100.0)] for _ in range(48)]
    out2 = brealized.realized_comparison(mt, m_long, m_short, lt, side, price, realized, eval_ms=ev, clusters=cl_short)
    assert out2["share_within_pct"]["1"] == 0.0


def test_realized_comparison_without_data():
    out = brealized.realized_comparison(np.arange(3), np.ones(3), np.ones(3), np.array([], np.int64),
                                 np.array([]), np.array([]), np.array([]))
    assert out == {"realized_orders": 0, "available": False}


# -- variant ranking --
def test_choose_variant_is_out_of_sample():
    def row(lift, reps=None):
        return {"lift": lift, "lift_ci": [lift - 0.1, lift + 0.1], "skipped": False, "_reps": reps}

    rng = np.random.default_rng(0)
    earlier = [{"name": "default", "by_horizon": {"24": {"lift": 1.0, "skipped": False}}},
               {"name": "b", "by_horizon": {"24": {"lift": 1.4, "skipped": False}}},
               {"name": "c", "by_horizon": {"24": {"lift": None, "skipped": True}}}]
    base = rng.normal(1.0, 0.05, 1000)
    # b wins the earlier half but is no better on the later one: the default stays.
    later = {"default": {24: row(1.0, base)}, "b": {24: row(1.0, base * rng.normal(1.0, 0.05, 1000))}}
    r = variants.choose_variant(earlier, later, default_name="default")
    assert [x["name"] for x in r["table"]] == ["b", "default", "c"]
    assert r["best"] == "b" and r["winner"] == "default" and "stays" in r["why"]
    # Clearly better on the later half too: it replaces the default.
    later["b"] = {24: row(1.5, base * 1.5)}
    assert variants.choose_variant(earlier, later, default_name="default")["winner"] == "b"


def test_fit_weights_renormalises():
    w = variants._fit_weights(variants.LEVERAGE_MIXES["low-leverage"], 4)
    assert sum(w) == pytest.approx(1.0) and len(w) == 4 and w[0] > w[-1]


# -- command, page context, templates, chart (on the bundled sample) --
@pytest.fixture(scope="module")
def sample_result(tmp_path_factory):
    from pipeline import registry
    from pipeline.steps.backtest import run_for_asset
    from pipeline.store.db import Store

    with Store(tmp_path_factory.mktemp("bt") / "s.duckdb") as store:
        return run_for_asset(store, registry.load(), "btc", variants=True)


def test_run_for_asset_on_sample(sample_result):
    import json

    r = sample_result
    assert r["asset"] == "btc" and [m["key"] for m in r["markets"]] == ["sample"]
    m = r["markets"][0]
    assert m["is_sample"] and m["range"]["eval_points"] > 30
    rows = {(x["horizon_h"], x["side"]): x for x in m["summary"]}
    assert rows[(72, "both")]["skipped"]  # two days of data: no 72 h horizon fits
    assert not rows[(4, "both")]["skipped"] and 0 <= rows[(4, "both")]["hit_rate"] <= 1
    assert m["realized"]["available"] is False
    assert m["placebo"]["runs"] >= 1 and [c["horizon_h"] for c in m["comparison"]] == [4, 24, 72]
    for row in m["summary"]:
        if row["side"] == "both" and not row["skipped"]:
            assert "lift" in row and len(row["lift_ci"]) == 2
    v = r["variants"]
    assert v["default"] == "equal/registry/fade-none" and v["winner"] and v["why"]
    assert not v["taker_available"] and all(not x["name"].startswith("taker") for x in v["table"])
    json.dumps(r, allow_nan=False)  # JSON-ready, no NaN


def _env():
    from pipeline.render.format import environment

    return environment()


def test_templates_render(sample_result, tmp_path):
    from pipeline.render import contexts
    from pipeline.steps.pages import accuracy_page

    pages = accuracy_page(_env(), [sample_result], tmp_path)
    text = pages[0].read_text()
    assert "indicative only" in text and "block bootstrap" in text and "## Verdict" in text
    assert text.index("## Verdict") < text.index("<details")  # verdicts first, figures folded
    assert "- **Bitcoin, 4 h: the model" in text and "the OI placebo" in text
    assert 'data-spec="accuracy/btc-sample.json"' in text and (tmp_path / "accuracy" / "btc-sample.json").exists()
    assert "| 4 h | both sides |" in text and "Why equal/registry/fade-none" in text
    tpl = _env().from_string(
        '{% if accuracy is defined and v in accuracy %}{% with acc_asset = accuracy[v] %}'
        '{% include "_accuracy_section.md.j2" %}{% endwith %}{% endif %}')
    sec = tpl.render(accuracy={"btc": contexts.asset_context(sample_result)}, v="btc")
    assert "How often price reached these clusters" in sec and "(../accuracy.md)" in sec
    assert "placebo" in sec and "liqmap-chart" not in sec and "|" not in sec  # one sentence and a link
    # No data at all still renders.
    empty = _env().get_template("accuracy.md.j2").render(acc=contexts.accuracy_context([]))
    assert "nothing has been measured" in empty


def test_template_escapes_names(sample_result):
    from pipeline.render import contexts

    r = dict(sample_result, name="<script>x</script>")
    text = _env().get_template("accuracy.md.j2").render(acc=contexts.accuracy_context([r]))
    assert "<script>" not in text and "&lt;script&gt;" in text


def test_chart_spec_has_lifts_and_error_bars():
    from pipeline.render.charts import accuracy as bc

    ok = {"lift": 1.2, "lift_ci": [0.9, 1.5], "cases": 100, "skipped": False}
    comparison = [
        {"horizon_h": 4, "model": ok, "placebo": dict(ok, lift=1.0, lift_ci=[0.8, 1.2]),
         "swing": {"lift": None, "lift_ci": [None, None], "skipped": True}, "round": dict(ok, lift_ci=[None, None])},
    ]
    spec = bc.lift_spec(comparison)
    rows = spec["datasets"]["lifts"]
    assert [(r["series"], r["lift"], r["lo"], r["hi"]) for r in rows] == [
        ("model clusters", 1.2, 0.9, 1.5), ("OI placebo", 1.0, 0.8, 1.2)]
    marks = [layer["mark"]["type"] if isinstance(layer["mark"], dict) else layer["mark"] for layer in spec["layer"]]
    assert marks == ["rule", "errorbar", "point"] and spec["datasets"]["one"] == [{"y": 1.0}]


def test_cli_writes_json(tmp_path, capsys):
    import json

    from pipeline import cli

    out = tmp_path / "r.json"
    assert cli.main(["--data-dir", str(tmp_path / "d"), "backtest", "--assets", "btc", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "24 h both" in printed and "72 h" in printed and "skipped" in printed
    r = json.loads(out.read_text())
    assert r["asset"] == "btc" and r["variants"] is None
    # Default location under the data directory.
    assert cli.main(["--data-dir", str(tmp_path / "d"), "backtest", "--assets", "btc"]) == 0
    assert (tmp_path / "d" / "backtest" / "btc.json").exists()
    assert cli.main(["--data-dir", str(tmp_path / "d"), "backtest", "--assets", "nope"]) == 2


def test_run_for_asset_with_realized_liquidations(tmp_path):
    """An OKX market with stored liquidation orders gets a modelled-vs-realized comparison."""
    import datetime as dt

    from pipeline import registry
    from pipeline.steps.backtest import run_for_asset
    from pipeline.store.db import Store

    rng = np.random.default_rng(5)
    n = 4 * 24 * 12  # four days of 5-minute candles
    t0 = dt.datetime(2026, 9, 1)
    ts = [t0 + dt.timedelta(minutes=5 * i) for i in range(n)]
    close = 60_000 * np.exp(np.cumsum(rng.normal(0, 0.002, n)))
    op = np.r_[close[0], close[:-1]]
    hi = np.maximum(op, close) * 1.001
    lo = np.minimum(op, close) * 0.999
    inst = "BTC-USDT-SWAP"
    with Store(tmp_path / "s.duckdb") as s:
        s.upsert("raw_candles", {
            "exchange": ["okx"] * n, "instrument": [inst] * n, "interval_s": [300] * n, "ts": ts,
            "open": op, "high": hi, "low": lo, "close": close, "volume": [1.0] * n,
            "taker_buy_volume": rng.uniform(0.3, 0.7, n), "quote": ["USDT"] * n,
        })
        s.upsert("raw_open_interest", {
            "exchange": ["okx"] * n, "instrument": [inst] * n, "ts": ts, "oi_base": [None] * n,
            "oi_usd": 5e9 * np.exp(np.cumsum(rng.normal(0, 0.003, n))),
        })
        k = 200
        idx = np.sort(rng.choice(n, k, replace=False))
        s.upsert("raw_liquidations", {
            "exchange": ["okx"] * k, "instrument": [inst] * k, "ts": [ts[i] for i in idx],
            "side": ["long" if i % 2 else "short" for i in range(k)], "price": close[idx],
            "size_base": [0.1] * k, "notional_usd": close[idx] * 0.1,
        })
        r = run_for_asset(s, registry.load(), "btc", variants=True)
    m = next(x for x in r["markets"] if x["key"] == "okx")
    rl = m["realized"]
    assert rl["available"] and rl["realized_orders"] == k
    assert -1 <= rl["spearman"] <= 1 and set(rl["share_within_pct"]) == {"0.25", "0.5", "1"}
    assert r["variants"]["taker_available"] and any(x["name"].startswith("taker") for x in r["variants"]["table"])
    rows = {(x["horizon_h"], x["side"]): x for x in m["summary"]}
    assert not rows[(72, "both")]["skipped"] or rows[(72, "both")]["cases"] < 30
