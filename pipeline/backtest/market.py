"""One market's backtest end to end: model run, clusters, cases, summaries, realized, variants (pure)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from pipeline.backtest.cases import HOUR_MS, by_confluence, by_rank, evaluate, rate_row, summarize
from pipeline.backtest.predict import Settings, _evaluation_grid, _run_model, predict_clusters, window_clusters
from pipeline.backtest.realized import realized_comparison
from pipeline.backtest.variants import pooled_score, rank_variants, variant_params
from pipeline.model.levels import confluence_counts


def backtest_market(
    candles: Mapping[str, np.ndarray],
    oi_usd: np.ndarray,
    params: Any,
    *,
    settings: Settings = Settings(),
    timeframes_ms: Mapping[str, int] | None = None,
    liquidations: Mapping[str, np.ndarray] | None = None,
) -> dict:
    """Run the model over a market's history and backtest its clusters (pure; arrays in, dict out).

    ``candles``: arrays ``time_ms, open, high, low, close`` (+ optional
    ``volume, taker_buy_volume``) oldest first; ``oi_usd`` aligned to candles
    (``model.align_oi``). ``timeframes_ms``: windows for confluence (those longer
    than the data are left out). ``liquidations``: realized orders (``time_ms,
    side, price, notional_usd``) or None.
    """
    from pipeline.model import book as model

    t, iv, step_h, ev, paths = _evaluation_grid(candles, settings)
    res = _run_model(model, candles, oi_usd, params)
    clusters = predict_clusters(res, ev, paths.price, bins=settings.price_bins, span_pct=settings.span_pct,
                                top=max(settings.top_k, 5))

    # Timeframe windows as the site draws them: each window's own clusters are backtested
    # (by_timeframe), and the widest window's clusters are scored for confluence with the others.
    conf = None
    by_tf_rows: list[dict] = []
    conf_rows: list[dict] = []
    used_tfs: list[str] = []
    n_conf_points = 0
    w_step = step_h
    if timeframes_ms:
        valid = np.flatnonzero(np.isfinite(paths.price))
        stride = max(1, math.ceil(valid.size / max(settings.window_max_points, 1)))
        points = valid[::stride]  # spread over the whole history rather than its end
        n_conf_points = int(points.size)
        w_step = step_h * stride
        per_tf = window_clusters(res, candles, ev, paths.price, timeframes_ms, points=points,
                                 bins=settings.price_bins, top=max(settings.top_k, 5))
        used_tfs = [tf for tf, cl in per_tf.items() if any(cl)]
        for tf in used_tfs:
            tf_cases = evaluate(paths, per_tf[tf], top_k=settings.top_k)
            for r in summarize(tf_cases, step_h=w_step, min_cases=settings.min_cases,
                               horizons_h=settings.horizons_h):
                if r["side"] == "both":
                    by_tf_rows.append({"timeframe": tf, **r})
        widest, wconf = [], []
        for j in range(ev.size):
            avail = [tf for tf in used_tfs if per_tf[tf][j]]
            if not avail:
                widest.append([])
                wconf.append([])
                continue
            ref = avail[-1]  # used_tfs is sorted shortest first: the widest window drawn at this point
            widest.append(per_tf[ref][j])
            wconf.append(confluence_counts(per_tf[ref][j], [per_tf[tf][j] for tf in avail if tf != ref]))
        if len(used_tfs) > 1:
            w_cases = evaluate(paths, widest, top_k=settings.top_k, confluence=wconf)
            conf_rows = by_confluence(w_cases, step_h=w_step, min_cases=settings.min_cases)

    cases = evaluate(paths, clusters, top_k=settings.top_k, confluence=conf)
    summary = summarize(cases, step_h=step_h, min_cases=settings.min_cases,
                        horizons_h=settings.horizons_h)
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
        "by_rank": by_rank(cases, step_h=step_h, min_cases=settings.min_cases),
        "by_timeframe": by_tf_rows,
        "confluence": {"timeframes": used_tfs, "points": n_conf_points, "rows": conf_rows},
        "step_h": step_h,
        "window_step_h": w_step if timeframes_ms else None,
        "mean_clusters_per_point": round(
            float(np.mean([len(c) for c in clusters])) if clusters else 0.0, 2),
    }
    if liquidations is not None and np.asarray(liquidations.get("time_ms", [])).size:
        out["realized"] = realized_comparison(
            t, res.liquidations_long_usd, res.liquidations_short_usd,
            liquidations["time_ms"], liquidations["side"], liquidations["price"], liquidations["notional_usd"],
            eval_ms=ev, clusters=clusters, bands_pct=settings.bands_pct,
        )
    else:
        out["realized"] = {"available": False, "realized_orders": 0,
                           "reason": "no realized liquidations stored for this market"}
    out["_cases"] = cases  # for callers that want more cuts; dropped before JSON
    out["_paths"] = paths
    return out


def run_variants(
    candles: Mapping[str, np.ndarray], oi_usd: np.ndarray, base_params: Any, *, settings: Settings = Settings(),
) -> dict:
    """Backtest every variant of :func:`variant_params` and choose the default by :data:`SCORE_TEXT`."""
    from pipeline.model import book as model

    t, iv, step_h, ev, paths = _evaluation_grid(candles, settings)
    tb = candles.get("taker_buy_volume")
    has_taker = tb is not None and bool(np.isfinite(np.asarray(tb, float)).any())
    variants = variant_params(base_params, has_taker=has_taker)
    rows = []
    for name, params, desc in variants:
        res = _run_model(model, candles, oi_usd, params)
        cl = predict_clusters(res, ev, paths.price, bins=settings.price_bins, span_pct=settings.span_pct,
                              top=max(settings.top_k, 5))
        cases = evaluate(paths, cl, top_k=settings.top_k)
        score = pooled_score(cases, step_h=step_h, min_cases=settings.min_cases)
        by_h = {}
        for hours in settings.horizons_h:
            r = rate_row(cases.select(cases.horizon_h == hours), horizon_h=hours, step_h=step_h,
                         min_cases=settings.min_cases, side="both")
            by_h[str(hours)] = {"cases": r["cases"], "hit_rate": r.get("hit_rate"),
                                "baseline_rate": r.get("baseline_rate"), "lift": r.get("lift")}
        rows.append({"name": name, **desc, **score, "by_horizon": by_h})
    ranked = rank_variants(rows, default_name=variants[0][0])
    ranked["default"] = variants[0][0]
    ranked["taker_available"] = has_taker
    return ranked


def to_jsonable(obj: Any) -> Any:
    """Drop private keys (``_cases``) and turn numpy scalars/NaN into JSON values."""
    if isinstance(obj, dict):
        return {k: to_jsonable(v) for k, v in obj.items() if not str(k).startswith("_")}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj
