"""The sanity gate: what holds a snapshot back from publishing, one check per kind of anomaly.

Scope: the gate compares a candidate's manifest summary with the previous
published snapshot of the same asset and holds back what a reader must not see
as news: a missing asset, collapsed row counts, time gaps, prices an order of
magnitude off, empty grids, non-finite numbers, data that went backwards or is
stale. Normal drift passes. It works on manifests, so the previous snapshot's
data files need not be read. What is *not* here: plausibility of single exchange
prints (the collectors' job) and accuracy (the backtest's).

Use (what the build does)::

    result = gate.publish(paths.snapshots, asset_id, taken_at, tables, meta)
    if result.problems: ...hold back: do not deploy, report result.problems...
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa

from pipeline.snapshots.files import latest_snapshot, load_manifest, summarize, write_snapshot
from pipeline.timeutil import to_ms, utc

# -- the gate ---------------------------------------------------------------------

@dataclass(frozen=True)
class GateLimits:
    """Where normal drift ends. Every limit is deliberately loose: the gate catches breakage, not markets."""

    min_rows_ratio: float = 0.5  # current rows below this share of the previous: collapsed
    min_rows_for_ratio: int = 10  # tables smaller than this are too noisy to compare
    price_ratio: float = 5.0  # price moved more than this factor: wrong units/instrument, not a market
    gap_factor: float = 6.0  # a time step this many times the usual one ...
    min_gap_ms: int = 30 * 60_000  # ... and at least this long is a gap
    max_staleness_ms: int = 12 * 3_600_000  # data_to this far before taken_at: stale (skipped for the sample)
    backwards_tolerance_ms: int = 0  # data may not end earlier than in the previous snapshot


def _as_summary(x: Path | str | Mapping | None) -> dict | None:
    if x is None:
        return None
    if isinstance(x, (str, Path)):
        return load_manifest(Path(x))
    return dict(x)


def _fmt_ms(ms: int | float) -> str:
    return utc(int(ms)).strftime("%Y-%m-%d %H:%M UTC")


def _fmt_dur(ms: float) -> str:
    h = ms / 3_600_000
    return f"{h:.1f} h" if h >= 1 else f"{ms / 60_000:.0f} min"


def gate(previous: Path | Mapping | None, current: Path | Mapping | None, *,
         limits: GateLimits = GateLimits(), asset_id: str | None = None) -> list[str]:
    """Problems that should hold ``current`` back (empty list = publish).

    ``previous`` and ``current`` are snapshot folders, manifests or
    :func:`summarize` results; ``previous`` is None for an asset's first
    snapshot, ``current`` is None when the build produced nothing for an asset
    that was published before.
    """
    prev, cur = _as_summary(previous), _as_summary(current)
    who = asset_id or (cur or prev or {}).get("asset") or "asset"
    if cur is None:
        if prev is not None:
            return [f"{who}: missing from this build (last published {prev.get('taken_at')})"]
        return []
    problems: list[str] = []
    tables: dict[str, dict] = cur.get("tables", {})
    if not tables:
        problems.append(f"{who}: snapshot has no tables")

    # Current-only checks.
    for name, st in sorted(tables.items()):
        if (name.startswith("grid") or name == "book") and (st["rows"] == 0 or st.get("notional_usd_sum", 1.0) <= 0):
            problems.append(f"{who}: {name} is empty")
        if st.get("nonfinite"):
            problems.append(f"{who}: {name} has {st['nonfinite']} NaN/infinite values")
        if "price_min" in st and st["price_min"] <= 0:
            problems.append(f"{who}: {name} has non-positive prices")
        gap, step = st.get("max_gap_ms"), st.get("median_step_ms")
        if gap and step and gap > limits.gap_factor * step and gap >= limits.min_gap_ms:
            problems.append(f"{who}: {name} has a time gap of {_fmt_dur(gap)} from {_fmt_ms(st['max_gap_from_ms'])} "
                            f"to {_fmt_ms(st['max_gap_to_ms'])} (usual step {_fmt_dur(step)})")
    price = cur.get("price")
    if price is not None and not (isinstance(price, (int, float)) and math.isfinite(price) and price > 0):
        problems.append(f"{who}: price {price!r} is not a positive number")
        price = None
    if price:
        for name, st in sorted(tables.items()):
            med = st.get("price_median")
            if med and not (1 / limits.price_ratio <= med / price <= limits.price_ratio):
                problems.append(f"{who}: {name} prices (median {med:,.6g}) are {med / price:.3g}x the price {price:,.6g}")
    if cur.get("data_to") and cur.get("taken_at") and not cur.get("is_sample"):
        lag = to_ms(cur["taken_at"]) - to_ms(cur["data_to"])
        if lag > limits.max_staleness_ms:
            problems.append(f"{who}: data ends {_fmt_dur(lag)} before the snapshot time (stale)")

    if prev is None:
        return problems

    # Comparisons with the previous published snapshot.
    ptables: dict[str, dict] = prev.get("tables", {})
    for name, pst in sorted(ptables.items()):
        st = tables.get(name)
        if st is None:
            problems.append(f"{who}: table {name} missing (had {pst['rows']} rows)")
            continue
        if pst["rows"] >= limits.min_rows_for_ratio and st["rows"] < limits.min_rows_ratio * pst["rows"]:
            problems.append(f"{who}: {name} collapsed from {pst['rows']} to {st['rows']} rows")
        pm, cm = pst.get("price_median"), st.get("price_median")
        if pm and cm and pm > 0 and cm > 0 and not (1 / limits.price_ratio <= cm / pm <= limits.price_ratio):
            problems.append(f"{who}: {name} prices moved {cm / pm:.3g}x (median {pm:,.6g} -> {cm:,.6g})")
        pt, ct = pst.get("time_max_ms"), st.get("time_max_ms")
        if pt is not None and ct is not None and ct < pt - limits.backwards_tolerance_ms:
            problems.append(f"{who}: {name} ends {_fmt_ms(ct)}, before the previous snapshot ({_fmt_ms(pt)})")
    pp = prev.get("price")
    if pp and price and pp > 0 and not (1 / limits.price_ratio <= price / pp <= limits.price_ratio):
        problems.append(f"{who}: price moved {price / pp:.3g}x since the previous snapshot ({pp:,.6g} -> {price:,.6g})")
    if prev.get("data_to") and cur.get("data_to") and to_ms(cur["data_to"]) < to_ms(prev["data_to"]) - limits.backwards_tolerance_ms:
        problems.append(f"{who}: input data ends {cur['data_to']}, before the previous snapshot's {prev['data_to']}")
    return problems


@dataclass(frozen=True)
class Published:
    folder: Path | None  # the written snapshot, None if held back
    previous: Path | None  # what it was compared with
    problems: list[str]  # why it was held back (empty = written)


def publish(snapshots_root: Path, asset_id: str, taken_at, tables: Mapping[str, pa.Table], meta: Mapping[str, Any],
            *, limits: GateLimits = GateLimits(), extra_files: Mapping[str, bytes] | None = None) -> Published:
    """Gate a candidate against the asset's previous snapshot; write it only if it passes.

    A held-back candidate is not written, so the next run still compares with
    the last good snapshot. ``extra_files`` go beside it (:func:`~pipeline.snapshots.files.write_snapshot`).
    """
    previous = latest_snapshot(snapshots_root, asset_id, before=taken_at)
    candidate = summarize(tables, meta, asset_id=asset_id, taken_at=utc(taken_at).replace(second=0, microsecond=0))
    problems = gate(previous, candidate, limits=limits, asset_id=asset_id)
    if problems:
        return Published(None, previous, problems)
    return Published(write_snapshot(snapshots_root, asset_id, taken_at, tables, meta, extra_files=extra_files),
                     previous, [])


def gate_missing(snapshots_root: Path, built: Iterable[str], asset_ids: Iterable[str]) -> list[str]:
    """'Asset missing' problems: registry assets published before that this build did not produce."""
    built = set(built)
    return [p for a in asset_ids if a not in built
            for p in gate(latest_snapshot(snapshots_root, a), None, asset_id=a)]

