"""Step: the chosen assets' views and backtests from the store (load series -> model, backtest).

The store is open only here. An empty store is first filled from the bundled sample.
"""

from __future__ import annotations

import time

from pipeline import paths
from pipeline.markets import markets_for
from pipeline.model.params import ModelParams
from pipeline.model.views import OI_MAX_AGE_MS, AssetView, asset_view
from pipeline.steps.backtest import run_for_asset
from pipeline.steps.report import BuildReport
from pipeline.store.db import open_store
from pipeline.store.sample import load_if_empty
from pipeline.store.series import freshness, load_market, stored_pairs


def run(reg, chosen, dp, strict: bool, report: BuildReport) -> dict[str, dict]:
    """Fill ``report.assets`` with one view per chosen asset; return {asset id: backtest result}."""
    accuracy: dict[str, dict] = {}
    tick = time.perf_counter()
    store = open_store(dp.root)
    try:
        if load_if_empty(store):
            report.warnings.append("store was empty: built from the bundled sample (sample/PROVENANCE.md)")
        status_rows = store.query("source_status").to_pylist()
        stored = stored_pairs(store)
        report.timings["load"] = time.perf_counter() - tick

        tick = time.perf_counter()
        for a in chosen:
            paths.safe_name(a.id)
            try:
                series = [load_market(store, mk) for mk in markets_for(a, stored)]
                params = ModelParams.from_asset(a, reg.settings_for(a))
                view = asset_view(a, params, series, status_rows, freshness(store, series, OI_MAX_AGE_MS))
            except Exception as exc:
                if strict:
                    raise
                report.warnings.append(f"{a.id}: model failed: {exc!r}")
                view = AssetView(asset=a, error=str(exc))
            report.assets[a.id] = view
        report.timings["model"] = time.perf_counter() - tick

        tick = time.perf_counter()
        for a in chosen:
            if not report.assets[a.id].has_data:
                continue
            try:
                accuracy[a.id] = run_for_asset(store, reg, a)  # variants: liqmap backtest --variants only
            except Exception as exc:
                if strict:
                    raise
                report.warnings.append(f"{a.id}: backtest failed: {exc!r}")
        report.timings["backtest"] = time.perf_counter() - tick
    finally:
        store.close()
    return accuracy
