"""Step: the chosen assets' views, charts and backtests from the store (load series -> model, charts, backtest).

An empty store is first filled from the bundled sample. The store is then closed
and each asset is one job: read its markets (read-only), build its view, write
its charts (which drops the view's map grids, so one asset's grids are in memory
at a time) and backtest its markets from the same arrays. With two or more
assets that have data and more than one CPU, the jobs run in a pool of worker
processes (``LIQMAP_BUILD_WORKERS`` sets its size; 1 runs them in this process).
Workers are spawned (a fork would copy the build's BLAS
threads and open handles), so a script that calls ``build()`` needs the usual
``if __name__ == "__main__":`` guard. A job's result does not depend on where it ran. The phase times
(``model``, ``charts``, ``backtest``) are then summed over the workers and
``compute`` is the wall time of all the jobs.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import resource
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from pipeline import paths
from pipeline.markets import markets_for
from pipeline.model.params import ModelParams
from pipeline.model.views import OI_MAX_AGE_MS, AssetView, asset_view
from pipeline.steps import charts
from pipeline.steps.backtest import run_for_series
from pipeline.steps.report import BuildReport
from pipeline.store.db import open_store
from pipeline.store.sample import load_if_empty
from pipeline.store.series import freshness, load_market, stored_pairs

WORKERS_ENV = "LIQMAP_BUILD_WORKERS"


def run(reg, chosen, dp, strict: bool, report: BuildReport, heatmaps_dir: Path | None = None) -> dict[str, dict]:
    """Fill ``report.assets`` with one view per chosen asset (charts written into ``heatmaps_dir``
    when given); return {asset id: backtest result}."""
    tick = time.perf_counter()
    with open_store(dp.root) as store:
        if load_if_empty(store):
            report.warnings.append("store was empty: built from the bundled sample (sample/PROVENANCE.md)")
        status_rows = store.query("source_status").to_pylist()
        stored = stored_pairs(store)
    report.timings["load"] = time.perf_counter() - tick

    tick = time.perf_counter()
    jobs = []
    for a in chosen:
        paths.safe_name(a.id)
        jobs.append((a, ModelParams.from_asset(a, reg.settings_for(a)), markets_for(a, stored)))
    workers = _workers(sum(1 for _, _, markets in jobs if markets))
    args = [(dp.root, a, params, markets, status_rows, heatmaps_dir, strict) for a, params, markets in jobs]
    if workers > 1:
        with _single_threaded_blas(), ProcessPoolExecutor(
                workers, mp_context=multiprocessing.get_context("spawn")) as pool:
            done = [f.result() for f in [pool.submit(asset_job, *x) for x in args]]
    else:
        done = [asset_job(*x) for x in args]
    accuracy: dict[str, dict] = {}
    for (a, _, _), (view, acc, timings, warnings, rss_mb) in zip(jobs, done):
        report.assets[a.id] = view
        if acc is not None:
            accuracy[a.id] = acc
        report.warnings += warnings
        if workers > 1:
            report.worker_rss_mb = max(report.worker_rss_mb, rss_mb)
        for k, v in timings.items():
            report.timings[k] = report.timings.get(k, 0.0) + v
    report.timings["compute"] = time.perf_counter() - tick
    report.workers = workers
    return accuracy


def asset_job(root, a, params, markets, status_rows, heatmaps_dir, strict):
    """One asset: (view, backtest result or None, phase times, warnings, peak RSS of this process in MB).
    Runs in a worker or in-process."""
    timings, warnings, acc = {}, [], None
    tick = time.perf_counter()
    series, fresh = [], {}
    try:
        if markets:
            with open_store(root, read_only=True) as store:
                series = [load_market(store, mk) for mk in markets]
                fresh = freshness(store, series, OI_MAX_AGE_MS)
        view = asset_view(a, params, series, status_rows, fresh)
    except Exception as exc:
        if strict:
            raise
        warnings.append(f"{a.id}: model failed: {exc!r}")
        view = AssetView(asset=a, error=str(exc))
    timings["model"] = time.perf_counter() - tick

    tick = time.perf_counter()
    if heatmaps_dir is not None:
        charts.write_asset(view, heatmaps_dir)
    timings["charts"] = time.perf_counter() - tick

    tick = time.perf_counter()
    if view.has_data:
        try:
            acc = run_for_series(a, params, series)  # variants: liqmap backtest --variants only
        except Exception as exc:
            if strict:
                raise
            warnings.append(f"{a.id}: backtest failed: {exc!r}")
    timings["backtest"] = time.perf_counter() - tick
    return view, acc, timings, warnings, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _workers(n_jobs: int) -> int:
    """Worker processes for ``n_jobs`` assets with data: ``LIQMAP_BUILD_WORKERS`` or the CPU count, at most
    one per job; a pool pays only with two jobs or more."""
    env = os.environ.get(WORKERS_ENV, "").strip()
    if env:
        try:
            wanted = int(env)
        except ValueError:
            raise ValueError(f"{WORKERS_ENV}={env!r}: expected a whole number of worker processes") from None
    else:
        wanted = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(wanted, n_jobs))


@contextlib.contextmanager
def _single_threaded_blas():
    """Workers inherit the environment at spawn: one BLAS thread each, so that two workers
    do not run four threads on two cores."""
    keys = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
    old = {k: os.environ.get(k) for k in keys}
    os.environ.update({k: "1" for k in keys})
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
