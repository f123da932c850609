"""Model variants scored on the same data, and the rule that may replace the registry default (pure)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from pipeline.backtest.cases import MIN_CASES, Cases, rate_row

# Alternative leverage mixes tried against the registry's: one tilted towards
# low leverage (far levels), one towards high leverage (near levels). Weights
# are applied to the asset's own tiers by rank (lowest leverage first), so they
# fit any asset with 4 or 5 tiers.
LEVERAGE_MIXES: dict[str, tuple[float, ...]] = {
    "low-leverage": (0.35, 0.30, 0.20, 0.10, 0.05),
    "high-leverage": (0.05, 0.15, 0.25, 0.30, 0.25),
}
SIDE_SPLITS = ("equal", "taker", "candle")
FADES: tuple[float | None, ...] = (None, 24.0, 72.0)
SCORE_HORIZON_H = 24
SCORE_TEXT = (
    "score = pooled lift at 24 h (both sides, all top-k clusters: hits / baseline-expected hits, "
    "i.e. the case-weighted mean lift), with a dependence-adjusted 95 % interval (Katz log ratio "
    "on the effective case count). A variant replaces the current default only if its interval lies "
    "entirely above the default's point estimate and above 1; otherwise the default stays, because "
    "the data cannot tell them apart."
)


def _fit_weights(mix: Sequence[float], n: int) -> tuple[float, ...]:
    """Take the first ``n`` weights of a mix (lowest leverage first) and renormalise to sum 1."""
    w = np.asarray(mix[:n], float) if n <= len(mix) else np.r_[mix, np.full(n - len(mix), mix[-1])]
    w = w / w.sum()
    return tuple(float(x) for x in w)


def variant_params(base: Any, *, has_taker: bool = True) -> list[tuple[str, Any, dict]]:
    """(name, params, description) for every variant, the registry default first.

    ``base`` is a ``model.ModelParams``; variants replace ``side_split``,
    ``weights`` and ``fade_half_life_hours``. ``taker`` is dropped when the
    market has no taker-buy volume (it would silently equal ``equal``).
    """
    import dataclasses

    order = np.argsort(np.asarray(base.leverage, float))
    mixes: dict[str, tuple[float, ...]] = {"registry": tuple(base.weights)}
    for name, mix in LEVERAGE_MIXES.items():
        w = _fit_weights(mix, len(order))
        full = [0.0] * len(order)
        for rank, idx in enumerate(order):
            full[idx] = w[rank]
        mixes[name] = tuple(full)
    out: list[tuple[str, Any, dict]] = []
    for split in SIDE_SPLITS:
        if split == "taker" and not has_taker:
            continue
        for mix_name, weights in mixes.items():
            for fade in FADES:
                params = dataclasses.replace(base, side_split=split, weights=weights, fade_half_life_hours=fade)
                name = f"{split}/{mix_name}/fade-{'none' if fade is None else f'{fade:g}h'}"
                desc = {"side_split": split, "leverage_mix": mix_name,
                        "weights": [round(w, 4) for w in weights],
                        "fade_half_life_hours": fade}
                out.append((name, params, desc))
    # The registry's own configuration goes first so it is the reference in the table.
    base_name = None
    for name, params, desc in out:
        if (params.side_split == base.side_split and tuple(params.weights) == tuple(base.weights)
                and params.fade_half_life_hours == base.fade_half_life_hours):
            base_name = name
    out.sort(key=lambda v: v[0] != base_name)
    return out


def pooled_score(cases: Cases, *, horizon_h: int = SCORE_HORIZON_H, step_h: float = 1.0,
                 min_cases: int = MIN_CASES) -> dict:
    """The variant score: pooled lift at ``horizon_h`` with its dependence-adjusted interval."""
    row = rate_row(cases.select(cases.horizon_h == horizon_h), horizon_h=horizon_h, step_h=step_h,
                   min_cases=min_cases, side="both")
    return {
        "cases": row["cases"],
        "n_eff": row["n_eff"],
        "score": row.get("lift"),
        "score_ci": row.get("lift_ci_eff", [None, None]),
        "hit_rate": row.get("hit_rate"),
        "baseline_rate": row.get("baseline_rate"),
        "skipped": row.get("skipped", True),
    }


def rank_variants(rows: Sequence[dict], *, default_name: str) -> dict:
    """Rank variant rows (each with ``name`` and ``pooled_score`` output) and choose the default.

    Returns {"score": text, "table": rows sorted best first, "winner": name,
    "best": name, "why": text}.
    """
    table = sorted(rows, key=lambda r: (r.get("score") is None, -(r.get("score") or 0.0)))
    default = next((r for r in rows if r["name"] == default_name), None)
    scored = [r for r in table if r.get("score") is not None and not r.get("skipped")]
    if not scored:
        return {"score": SCORE_TEXT, "table": table, "winner": default_name, "best": None,
                "why": f"no variant has {MIN_CASES}+ cases at {SCORE_HORIZON_H} h; keeping the registry default."}
    best = scored[0]
    d_score = default.get("score") if default else None
    lo = best["score_ci"][0] if best.get("score_ci") else None
    if best["name"] == default_name:
        why = (f"the registry default scores highest (lift {best['score']:.2f}); it stays.")
        winner = default_name
    elif lo is not None and lo > 1.0 and (d_score is None or lo > d_score):
        why = (f"{best['name']} scores lift {best['score']:.2f} (95 % interval {lo:.2f}-{best['score_ci'][1]:.2f}), "
               f"entirely above the default's {d_score if d_score is None else f'{d_score:.2f}'} and above 1.")
        winner = best["name"]
    else:
        ds = "n/a" if d_score is None else f"{d_score:.2f}"
        ci = "n/a" if lo is None else f"{lo:.2f}-{best['score_ci'][1]:.2f}"
        why = (f"best variant {best['name']} scores lift {best['score']:.2f} (95 % interval {ci}) vs the default's "
               f"{ds}; the interval does not clear the default and 1, so the data cannot tell them apart and "
               f"the registry default stays.")
        winner = default_name
    return {"score": SCORE_TEXT, "table": table, "winner": winner, "best": best["name"], "why": why}


