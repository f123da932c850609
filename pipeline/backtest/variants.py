"""Model variants, chosen on an earlier period and reported on a later one (never in-sample) (pure)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from pipeline.backtest.cases import MIN_CASES

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
    "chosen out of sample: every variant is scored on the earlier half of the history (lift at 24 h, "
    "both sides, all top-k clusters: hits / baseline-expected hits); the best one is then measured on the "
    "later half, which took no part in the choice, against the registry default on the same points "
    "(paired block bootstrap). It replaces the default only if its lift over the default's has a 95 % "
    "interval entirely above 1 on the later half; otherwise the default stays."
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


def choose_variant(earlier: Sequence[dict], later: dict[str, dict[int, dict]], *, default_name: str,
                   horizon_h: int = SCORE_HORIZON_H) -> dict:
    """Pick the best variant on the earlier half (``earlier``: rows with ``by_horizon``) and judge it
    on the later half (``later``: {name: {horizon: summary row}}) against the default.

    Returns {"score", "table", "winner", "best", "why", "later": {...}}.
    """
    from pipeline.backtest.summary import ratio_row

    key = str(horizon_h)

    def score(r):
        h = r["by_horizon"].get(key) or {}
        return None if h.get("skipped", True) else h.get("lift")

    table = []
    for r in earlier:
        lr = (later.get(r["name"]) or {}).get(horizon_h, {})
        table.append({**r, "score": score(r), "later_lift": lr.get("lift"),
                      "later_lift_ci": lr.get("lift_ci", [None, None])})
    table.sort(key=lambda r: (r["score"] is None, -(r["score"] or 0.0)))
    scored = [r for r in table if r["score"] is not None]
    base = {"score": SCORE_TEXT, "table": table, "winner": default_name}
    if not scored:
        return {**base, "best": None, "later": None,
                "why": f"no variant has {MIN_CASES}+ cases at {horizon_h} h in the earlier half; keeping the registry default."}
    best = scored[0]
    d_later = (later.get(default_name) or {}).get(horizon_h, {})
    b_later = (later.get(best["name"]) or {}).get(horizon_h, {})
    cmp = ratio_row(b_later, d_later) if not b_later.get("skipped", True) and not d_later.get("skipped", True) \
        else {"ratio": None, "ratio_ci": [None, None]}
    lo = cmp["ratio_ci"][0]
    if best["name"] == default_name:
        why = f"the registry default scores highest on the earlier half (lift {best['score']:.2f}); it stays."
        winner = default_name
    elif lo is not None and lo > 1.0:
        why = (f"{best['name']} scored best on the earlier half (lift {best['score']:.2f}) and on the later half "
               f"beats the default by x{cmp['ratio']:.2f} (95 % interval {lo:.2f}-{cmp['ratio_ci'][1]:.2f}).")
        winner = best["name"]
    else:
        ci = "n/a" if lo is None else f"{lo:.2f}-{cmp['ratio_ci'][1]:.2f}"
        rt = "n/a" if cmp["ratio"] is None else f"x{cmp['ratio']:.2f}"
        why = (f"{best['name']} scored best on the earlier half (lift {best['score']:.2f}); on the later half its "
               f"lift over the default is {rt} (95 % interval {ci}), not clearly above 1, so the registry default stays.")
        winner = default_name
    return {**base, "winner": winner, "best": best["name"], "why": why,
            "later": {"horizon_h": horizon_h, "best": b_later.get("lift"), "best_ci": b_later.get("lift_ci"),
                      "default": d_later.get("lift"), "default_ci": d_later.get("lift_ci"), **cmp}}
