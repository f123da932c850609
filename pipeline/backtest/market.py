"""One market's backtest end to end: model, placebo and naive levels, cases, summaries, realized, variants (pure)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from pipeline.backtest.cases import ABOVE, HOUR_MS, ClusterSet, evaluate, price_paths
from pipeline.backtest.nulls import matched_levels, placebo_oi
from pipeline.backtest.predict import BacktestSettings, _evaluation_grid, _run_model, predict_clusters, window_clusters
from pipeline.backtest.realized import realized_comparison
from pipeline.backtest.summary import aggregate, by_confluence, by_rank, rate_row, ratio_row, summarize
from pipeline.backtest.variants import choose_variant, variant_params

COMPARATORS = ("placebo", "swing", "round")


def _model_cases(model, candles, oi_usd, params, ev, paths, settings: BacktestSettings):
    res = _run_model(model, candles, oi_usd, params)
    clusters = predict_clusters(res, ev, paths.price, bins=settings.price_bins, span_pct=settings.span_pct,
                                top=max(settings.top_k, 5))
    return res, clusters, evaluate(paths, clusters, top_k=settings.top_k)


def _both(rows: list[dict]) -> dict[int, dict]:
    return {r["horizon_h"]: r for r in rows if r.get("side") == "both"}


def _confluence(per_tf: dict[str, ClusterSet], order: list[str], m: int) -> tuple[ClusterSet, int]:
    """The widest window's clusters at each point with their confluence: how many other windows
    drawn at that point hold an overlapping same-side cluster (strict overlap, ``levels.overlaps``)."""
    present = np.full((m, len(order)), False)
    for i, tf in enumerate(order):
        present[per_tf[tf].point, i] = True
    ref_tf = np.where(present.any(1), present.shape[1] - 1 - np.argmax(present[:, ::-1], axis=1), -1)
    refs = [per_tf[tf].select(ref_tf[per_tf[tf].point] == i) for i, tf in enumerate(order)]
    ref = ClusterSet(*(np.concatenate([getattr(c, f) for c in refs]) for f in ClusterSet.__dataclass_fields__))
    count = np.zeros(len(ref))
    top = max((int(per_tf[tf].rank.max()) for tf in order if len(per_tf[tf])), default=1)
    for i, tf in enumerate(order):
        o = per_tf[tf]
        lo = np.full((m, 2, top), np.nan)
        hi = np.full((m, 2, top), np.nan)
        si = (o.side == ABOVE).astype(np.int64)
        lo[o.point, si, o.rank - 1] = o.price_low
        hi[o.point, si, o.rank - 1] = o.price_high
        rs = (ref.side == ABOVE).astype(np.int64)
        olo, ohi = lo[ref.point, rs], hi[ref.point, rs]
        hit = ((ref.price_low[:, None] < ohi) & (olo < ref.price_high[:, None])).any(1)
        count += hit & (ref_tf[ref.point] != i)
    return ref.with_confluence(count), int(present.any(1).sum())


def backtest_market(
    candles: Mapping[str, np.ndarray],
    oi_usd: np.ndarray,
    params: Any,
    *,
    settings: BacktestSettings = BacktestSettings(),
    timeframes_ms: Mapping[str, int] | None = None,
    liquidations: Mapping[str, np.ndarray] | None = None,
) -> dict:
    """Run the model over a market's history and backtest its clusters (pure; arrays in, dict out).

    ``candles``: arrays ``time_ms, open, high, low, close`` (+ optional ``volume,
    taker_buy_volume``) oldest first; ``oi_usd`` aligned to candles (``model.market_oi``).
    ``timeframes_ms``: windows for confluence (those longer than the data are left out).
    ``liquidations``: realized orders (``time_ms, side, price, notional_usd``) or None.
    """
    from pipeline.model import book as model

    t, iv, step_h, ev, paths = _evaluation_grid(candles, settings)
    res, clusters, cases = _model_cases(model, candles, oi_usd, params, ev, paths, settings)
    summary = summarize(cases, min_cases=settings.min_cases, horizons_h=settings.horizons_h)
    model_rows = _both(summary)

    # Placebo: the same pipeline on block-shuffled OI increments, pooled over permutations.
    close = np.asarray(candles["close"], float)
    pl_aggs: dict[int, Any] = {}
    same = []
    top = clusters.top(settings.top_k)
    for k in range(settings.placebo_runs):
        oi_p = placebo_oi(t, close, oi_usd, oi_change=params.oi_change, block_h=settings.placebo_block_h, seed=k + 1)
        _, pcl, pcases = _model_cases(model, candles, oi_p, params, ev, paths, settings)
        for h in settings.horizons_h:
            a = aggregate(pcases, h)
            pl_aggs[h] = a if h not in pl_aggs else pl_aggs[h] + a
        same.append(_same_clusters(top, pcl.top(settings.top_k)))
    pl_rows = {h: rate_row(pl_aggs[h], horizon_h=h, min_cases=settings.min_cases, side="both")
               for h in settings.horizons_h if h in pl_aggs}

    # Naive levels at matched distances.
    naive_rows: dict[str, dict[int, dict]] = {}
    for kind in ("swing", "round"):
        lv = matched_levels(top, paths, kind, time_ms=t, high=candles["high"], low=candles["low"],
                            span_pct=settings.span_pct)
        naive_rows[kind] = _both(summarize(evaluate(paths, lv, top_k=settings.top_k), min_cases=settings.min_cases,
                                           horizons_h=settings.horizons_h))

    comparison = []
    for h in settings.horizons_h:
        mr = model_rows.get(h, {"cases": 0, "skipped": True})
        row: dict[str, Any] = {"horizon_h": h, "model": _lift_only(mr)}
        for name, rows in (("placebo", pl_rows), ("swing", naive_rows["swing"]), ("round", naive_rows["round"])):
            other = rows.get(h, {"cases": 0, "skipped": True})
            row[name] = _lift_only(other)
            row[f"model_vs_{name}"] = ratio_row(mr, other) if not mr.get("skipped") and not other.get("skipped") \
                else {"ratio": None, "ratio_ci": [None, None]}
        comparison.append(row)

    # Timeframe windows as the site draws them: each window's own clusters are backtested
    # (by_timeframe), and the widest window's clusters are scored for confluence with the others.
    by_tf_rows: list[dict] = []
    conf_rows: list[dict] = []
    used_tfs: list[str] = []
    n_conf_points = 0
    w_step = step_h
    if timeframes_ms:
        valid = np.flatnonzero(np.isfinite(paths.price))
        stride = max(1, math.ceil(valid.size / max(settings.window_max_points, 1)))
        points = valid[::stride]  # spread over the whole history rather than its end
        w_step = step_h * stride
        per_tf = window_clusters(res, candles, ev, paths.price, timeframes_ms, points=points,
                                 bins=settings.price_bins, top=max(settings.top_k, 5))
        used_tfs = [tf for tf, cl in per_tf.items() if len(cl)]
        for tf in used_tfs:
            for r in summarize(evaluate(paths, per_tf[tf], top_k=settings.top_k), min_cases=settings.min_cases,
                               horizons_h=settings.horizons_h):
                if r["side"] == "both":
                    by_tf_rows.append({"timeframe": tf, **r})
        if len(used_tfs) > 1:
            widest, n_conf_points = _confluence({tf: per_tf[tf] for tf in used_tfs}, used_tfs, ev.size)
            conf_rows = by_confluence(evaluate(paths, widest, top_k=settings.top_k), min_cases=settings.min_cases)

    out: dict[str, Any] = {
        "settings": settings.as_dict(),
        "range": {
            "first_candle_ms": int(t[0]) if t.size else None,
            "last_candle_ms": int(t[-1]) if t.size else None,
            "candles": int(t.size),
            "candle_interval_s": iv // 1000,
            "eval_points": cases.meta["eval_points"],
            "first_eval_ms": cases.meta["first_eval_ms"],
            "last_eval_ms": cases.meta["last_eval_ms"],
            "hours": round((int(t[-1]) + iv - int(t[0])) / HOUR_MS, 1) if t.size else 0.0,
        },
        "summary": summary,
        "comparison": comparison,
        "placebo": {
            "runs": settings.placebo_runs, "block_h": settings.placebo_block_h,
            "summary": [pl_rows[h] for h in settings.horizons_h if h in pl_rows],
            "same_clusters_share": float(np.mean(same)) if same else None,
        },
        "naive": {kind: [rows[h] for h in settings.horizons_h if h in rows] for kind, rows in naive_rows.items()},
        "by_rank": by_rank(cases, min_cases=settings.min_cases),
        "by_timeframe": by_tf_rows,
        "confluence": {"timeframes": used_tfs, "points": n_conf_points, "rows": conf_rows},
        "step_h": step_h,
        "window_step_h": w_step if timeframes_ms else None,
        "block_h": {str(h): b for h, b in zip(paths.horizons_h, paths.block_h)},
        "mean_clusters_per_point": round(len(clusters) / max(int(np.isfinite(paths.price).sum()), 1), 2),
    }
    if liquidations is not None and np.asarray(liquidations.get("time_ms", [])).size:
        out["realized"] = realized_comparison(
            t, res.liquidations_long_usd, res.liquidations_short_usd,
            liquidations["time_ms"], liquidations["side"], liquidations["price"], liquidations["notional_usd"],
            eval_ms=ev, clusters=top, prices=paths.price, oi_usd=oi_usd, bands_pct=settings.bands_pct,
        )
    else:
        out["realized"] = {"available": False, "realized_orders": 0,
                           "reason": "no realized liquidations stored for this market"}
    out["_cases"] = cases  # for callers that want more cuts; dropped before JSON
    out["_paths"] = paths
    return out


def _lift_only(r: dict) -> dict:
    return {"lift": r.get("lift"), "lift_ci": r.get("lift_ci", [None, None]), "cases": r.get("cases", 0),
            "hit_rate": r.get("hit_rate"), "baseline_rate": r.get("baseline_rate"),
            "skipped": bool(r.get("skipped", True)), "reason": r.get("reason") or r.get("ci_reason")}


def _same_clusters(a: ClusterSet, b: ClusterSet) -> float:
    """Share of ``a``'s clusters that ``b`` has at the same point and side with the same price range."""
    if not len(a):
        return math.nan
    key = lambda c: set(zip(c.point.tolist(), c.side.tolist(), np.round(c.price_low, 6).tolist(),  # noqa: E731
                            np.round(c.price_high, 6).tolist()))
    ka = key(a)
    return len(ka & key(b)) / len(ka)


def run_variants(
    candles: Mapping[str, np.ndarray], oi_usd: np.ndarray, base_params: Any, *, settings: BacktestSettings = BacktestSettings(),
) -> dict:
    """Choose among :func:`variant_params` on the earlier half of the history; report on the later half.

    The selection never sees the period it is reported on (points whose horizon would
    reach into the later half are left out of the earlier one).
    """
    from pipeline.model import book as model

    t, iv, step_h, ev, _ = _evaluation_grid(candles, settings)
    tb = candles.get("taker_buy_volume")
    has_taker = tb is not None and bool(np.isfinite(np.asarray(tb, float)).any())
    variants = variant_params(base_params, has_taker=has_taker)
    split = int(ev[ev.size // 2]) if ev.size else 0
    longest = max(settings.horizons_h) * HOUR_MS
    ev_a, ev_b = ev[ev + longest <= split], ev[ev >= split]
    pa = price_paths(t, candles["high"], candles["low"], candles["close"], ev_a, horizons_h=settings.horizons_h,
                     interval_ms=iv)
    pb = price_paths(t, candles["high"], candles["low"], candles["close"], ev_b, horizons_h=settings.horizons_h,
                     interval_ms=iv)
    earlier, later = [], {}
    for name, params, desc in variants:
        res = _run_model(model, candles, oi_usd, params)
        rows = {}
        for label, ev_x, px in (("earlier", ev_a, pa), ("later", ev_b, pb)):
            cl = predict_clusters(res, ev_x, px.price, bins=settings.price_bins, span_pct=settings.span_pct,
                                  top=max(settings.top_k, 5))
            c = evaluate(px, cl, top_k=settings.top_k)
            rows[label] = _both(summarize(c, min_cases=settings.min_cases, horizons_h=settings.horizons_h))
        earlier.append({"name": name, **desc, "by_horizon": {str(h): _lift_only(r) for h, r in rows["earlier"].items()}})
        later[name] = rows["later"]
    out = choose_variant(earlier, later, default_name=variants[0][0])
    out.update(default=variants[0][0], taker_available=has_taker,
               periods={"earlier": [int(ev_a[0]) if ev_a.size else None, int(ev_a[-1]) if ev_a.size else None],
                        "later": [int(ev_b[0]) if ev_b.size else None, int(ev_b[-1]) if ev_b.size else None]})
    return out


def to_jsonable(obj: Any) -> Any:
    """Drop private keys (``_cases``, ``_reps``) and turn numpy scalars/NaN into JSON values."""
    if isinstance(obj, dict):
        return {k: to_jsonable(v) for k, v in obj.items() if not str(k).startswith("_")}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj
