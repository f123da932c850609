"""Step: each asset's view becomes a dated immutable snapshot, gated against the previous one.

A candidate that fails the gate is held back (not written) and reported; so is
an asset of this build (all of them, a shard's or the ``--asset`` ones) that was
published before and now has no data.

The meta records what regenerating needs: the parameters, the code version and each
market's history watermark (its last candle and open-interest times). :func:`regenerate`
rebuilds the recomputed outputs (grids, book, windows) from the store restored from the
history, cut at those watermarks, and :func:`verify` checks them against the manifest's sha256.
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
        # Each market's history watermark: regenerating uses exactly the rows at or before these times.
        "watermarks": {f["key"]: {"first_ms": f["first_ms"], "candles_ms": f["last_ms"], "oi_ms": f["oi_last_ms"]}
                       for f in view.freshness},
    }


def extra_files(view: AssetView) -> dict[str, bytes]:
    """Files stored beside snapshot.json, name -> bytes: the hook for the archive's map image (``map.png``).

    At most ``files.MAX_EXTRA_FILES`` (1), each at most ``files.EXTRA_FILE_MAX_BYTES``; their sha256 goes into
    the manifest's ``files`` and ``verify`` checks them. None yet.
    """
    return {}


def _cut(arrays: dict, first_ms, last_ms) -> dict:
    t = arrays.get("time_ms")
    if t is None or t.size == 0:
        return arrays
    keep = (t <= (last_ms if last_ms is not None else -1)) & (t >= (first_ms if first_ms is not None else 0))
    return {k: v[keep] for k, v in arrays.items()}


def _tuples(v):
    return tuple(_tuples(x) for x in v) if isinstance(v, list) else v


def regenerate(folder, reg, store) -> dict[str, bytes]:
    """Every output of the snapshot in ``folder`` rebuilt from ``store`` (restored from the history), each market
    cut at its recorded watermark, with the recorded parameters. Raises ValueError when it cannot be rebuilt."""
    import dataclasses

    from pipeline.markets import markets_for
    from pipeline.model.views import asset_view
    from pipeline.store.series import load_market, stored_pairs

    m = files.load_meta(folder)
    marks = m.get("watermarks")
    if not isinstance(marks, dict):
        raise ValueError(f"{folder}: written before snapshots recorded history watermarks; cannot be regenerated")
    asset = next((a for a in reg.assets if a.id == m.get("asset")), None)
    if asset is None:
        raise ValueError(f"{folder}: asset {m.get('asset')!r} is not in the registry")
    fields = {f.name for f in dataclasses.fields(ModelParams)}
    params = ModelParams(**{k: _tuples(v) for k, v in m.get("model", {}).items() if k in fields})
    series = []
    for mk in markets_for(asset, stored_pairs(store)):
        w = marks.get(mk.key)
        if w is None:
            continue  # a market added after the snapshot
        s = load_market(store, mk)
        series.append(dataclasses.replace(
            s, candles=_cut(s.candles, w.get("first_ms"), w.get("candles_ms")),
            oi=_cut(s.oi, None, w.get("oi_ms")), funding=_cut(s.funding, None, w.get("candles_ms")),
            liquidations=_cut(s.liquidations, None, w.get("candles_ms"))))
    missing = sorted(set(marks) - {s.market.key for s in series})
    if missing:
        raise ValueError(f"{folder}: the store has no data for {', '.join(missing)}; run `liqmap restore` first")
    view = asset_view(asset, params, series, [])
    return files.output_files(tables(view))


def verify(folder, reg, store) -> list[str]:
    """Problems of a snapshot: stored files against the manifest, and recomputed outputs against their sha256."""
    return files.verify(folder) + files.check_outputs(folder, regenerate(folder, reg, store))


def thin(dp, asset_ids, now) -> list:
    """Thin every asset's snapshots (:func:`pipeline.snapshots.files.thin`); returns the folders removed."""
    return [p for a in asset_ids for p in files.thin(dp.snapshots, a, now)]


def run(chosen, reg, dp, report: BuildReport) -> None:
    tick = time.perf_counter()
    built = []
    for v in report.assets.values():
        if not v.has_data:
            continue
        built.append(v.asset.id)
        taken = dt.datetime.fromtimestamp(v.price_time_ms / 1000, dt.UTC)
        try:
            report.held += gate.publish(dp.snapshots, v.asset.id, taken, tables(v), meta(v, reg),
                                        extra_files=extra_files(v)).problems
        except files.SnapshotExistsError as exc:
            # Same data time, different output (the model changed): keep the first, say so.
            report.warnings.append(f"{v.asset.id}: snapshot kept as first written: {exc}")
    report.held += gate.gate_missing(dp.snapshots, built, [a.id for a in chosen])
    report.timings["snapshots"] = time.perf_counter() - tick
