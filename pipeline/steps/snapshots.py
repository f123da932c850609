"""Step: each asset's view becomes a dated immutable snapshot, gated against the previous one.

A candidate that fails the gate is held back (not written) and reported; so is
an asset of this build (all of them, a shard's or the ``--asset`` ones) that was
published before and now has no data.
"""

from __future__ import annotations

import datetime as dt
import time

import pyarrow as pa

from pipeline.model.params import ModelParams
from pipeline.model.views import AssetView, binned_book, grid_table
from pipeline.snapshots import files, gate
from pipeline.steps.report import BuildReport


def tables(view: AssetView) -> dict[str, pa.Table]:
    """What a snapshot persists: key levels per window, the binned level book, the windows,
    and each window's grid (``grid_<window>``, Parquet only)."""
    lv = [dict(timeframe=tv.name, partial=tv.partial, **{k: getattr(c, k) for k in (
        "side", "price_low", "price_high", "notional_usd", "distance_pct", "rank", "confluence")})
        for tv in view.timeframes for c in tv.clusters]
    windows = [{"timeframe": tv.name, "partial": tv.partial, "t0_ms": tv.t0_ms, "t1_ms": tv.t1_ms,
                "columns": int(tv.col_end_ms.size), "price_low": float(tv.price_edges[0]),
                "price_high": float(tv.price_edges[-1]), "bins": int(tv.price_edges.size - 1)}
               for tv in view.timeframes]
    out = {"levels": pa.Table.from_pylist(lv), "book": pa.table(binned_book(view.book, view.price)),
           "windows": pa.Table.from_pylist(windows)}
    for tv in view.timeframes:
        out[f"grid_{tv.name}"] = pa.table(grid_table(tv))
    return out


def meta(view: AssetView, reg) -> dict:
    return {
        "asset": view.asset.id, "price": view.price, "markets": [m.key for m in view.markets],
        "sample": view.sample is not None, "data_from": view.first_ms, "data_to": view.price_time_ms,
        "model": dict(ModelParams.from_asset(view.asset, reg.settings_for(view.asset)).__dict__),
        "timeframes": [tv.name for tv in view.timeframes],
    }


def run(chosen, reg, dp, report: BuildReport) -> None:
    tick = time.perf_counter()
    built = []
    for v in report.assets.values():
        if not v.has_data:
            continue
        built.append(v.asset.id)
        taken = dt.datetime.fromtimestamp(v.price_time_ms / 1000, dt.UTC)
        try:
            report.held += gate.publish(dp.snapshots, v.asset.id, taken, tables(v), meta(v, reg)).problems
        except files.SnapshotExistsError as exc:
            # Same data time, different output (the model changed): keep the first, say so.
            report.warnings.append(f"{v.asset.id}: snapshot kept as first written: {exc}")
    report.held += gate.gate_missing(dp.snapshots, built, [a.id for a in chosen])
    report.timings["snapshots"] = time.perf_counter() - tick
