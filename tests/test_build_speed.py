"""The build's speed-ups change nothing it produces: the per-asset worker pool gives the same views,
charts and backtests as one process, and the heatmap value blobs keep the step level 9 chose."""

from __future__ import annotations

import base64
import hashlib
import importlib.util
import math
import shutil
import zlib
from pathlib import Path

import numpy as np
import pytest

from pipeline import paths, registry
from pipeline.render.charts import heatmap
from pipeline.steps import compute, snapshots
from pipeline.steps.report import BuildReport
from pipeline.store.db import StoreError, open_store

ROOT = Path(__file__).resolve().parent.parent


def _bench_fill():
    spec = importlib.util.spec_from_file_location("bench_build", ROOT / "bench" / "bench_build.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.fill


@pytest.fixture(scope="module")
def seeded(tmp_path_factory) -> Path:
    """A real store with every registry asset on its exchanges, 4 days of 5-minute data."""
    data = tmp_path_factory.mktemp("seed") / "data"
    rows = _bench_fill()(data, 4)
    assert rows["raw_candles"] > 0
    return data


def _compute(seeded: Path, tmp: Path, workers: str, monkeypatch):
    data = tmp / "data"
    shutil.copytree(seeded, data)
    monkeypatch.setenv(compute.WORKERS_ENV, workers)
    reg = registry.load()
    report = BuildReport(docs_dir=tmp / "docs", site_dir=tmp / "site")
    acc = compute.run(reg, reg.assets, paths.data_paths(data).ensure(), True, report, heatmaps_dir=tmp / "heatmaps")
    charts = {p.relative_to(tmp / "heatmaps").as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
              for p in sorted((tmp / "heatmaps").rglob("*")) if p.is_file()}
    tables = {a: {k: t.to_pylist() for k, t in snapshots.tables(v).items()} for a, v in report.assets.items()
              if v.has_data}
    return report, acc, charts, tables


def test_worker_pool_gives_what_one_process_gives(seeded, tmp_path, monkeypatch):
    one = _compute(seeded, tmp_path / "one", "1", monkeypatch)
    pool = _compute(seeded, tmp_path / "pool", "2", monkeypatch)
    assert one[0].workers == 1 and pool[0].workers == 2
    assert pool[0].worker_rss_mb > 0
    assert len(one[1]) == len(registry.load().assets) >= 2  # every asset was backtested
    assert pool[1] == one[1]  # backtests, to the last bit
    assert pool[2] == one[2] and len(one[2]) > 10  # every chart file, byte for byte
    assert pool[3] == one[3]  # what the snapshots keep
    assert list(pool[0].assets) == list(one[0].assets)


def test_worker_count_is_checked(monkeypatch):
    monkeypatch.setenv(compute.WORKERS_ENV, "two")
    with pytest.raises(ValueError, match="LIQMAP_BUILD_WORKERS"):
        compute._workers(4)
    monkeypatch.setenv(compute.WORKERS_ENV, "8")
    assert compute._workers(3) == 3  # never more workers than assets with data
    assert compute._workers(0) == 1


def test_a_store_the_workers_cannot_read_fails_clearly(seeded, tmp_path, monkeypatch):
    data = tmp_path / "data"
    shutil.copytree(seeded, data)
    with open_store(data) as s:  # a writer holds the file: the workers' read-only opens must fail, loudly
        monkeypatch.setenv(compute.WORKERS_ENV, "2")
        reg = registry.load()
        report = BuildReport(docs_dir=tmp_path / "docs", site_dir=tmp_path / "site")
        with pytest.raises(StoreError, match="in use by another liqmap process"):
            compute.run(reg, reg.assets, paths.data_paths(data).ensure(), True, report)
        assert s.query("table_counts").to_pylist()  # the store is untouched


def _level9_step(g: np.ndarray) -> float:
    """The step the level-9-only encoder chose (the rule before the speed-up)."""
    vtop = float(g.max())
    ln = np.log(np.maximum(g, 1e-300) / vtop)
    for step in heatmap.VALUE_STEPS:
        offset = math.ceil(-math.log(heatmap.VALUE_FLOOR) / math.log(step))
        codes = np.where(g >= vtop * heatmap.VALUE_FLOOR, 1 + np.round(ln / math.log(step)) + offset, 0)
        codes = codes.astype(np.uint16).T
        delta = codes.copy()
        delta[:, 1:] = codes[:, 1:] - codes[:, :-1]
        if len(base64.b64encode(zlib.compress(delta.astype("<u2").tobytes(), 9))) <= heatmap.VALUE_BUDGET:
            return step
    return step


# Budgets around this grid's blob sizes (level 6 / level 9, characters): 1.01: 93,716 / 93,376;
# 1.02: 81,024 / 80,524; 1.1: 49,832 / 49,580; 1.5: 28,656 / 28,636. 93,500 and 81,000 fit level 9 only.
@pytest.mark.parametrize(("budget", "step"), [(300_000, 1.01), (93_500, 1.01), (81_000, 1.02), (50_000, 1.1),
                                              (20_000, 1.5)])
def test_value_blob_keeps_the_step_level_9_chose(budget, step, monkeypatch):
    rng = np.random.default_rng(3)
    # Bands that drift slowly along time plus noise: compresses like a real grid, and a small budget
    # forces coarser steps.
    base = np.exp(rng.normal(0, 2, 200))[None, :] * np.exp(np.cumsum(rng.normal(0, 0.05, (300, 200)), axis=0))
    g = np.where(rng.random((300, 200)) < 0.3, 0.0, base)
    monkeypatch.setattr(heatmap, "VALUE_BUDGET", budget)
    blob, vtop, chosen, offset = heatmap._values_blob(g)
    assert chosen == _level9_step(g) == step
    assert len(blob) <= budget or step == heatmap.VALUE_STEPS[-1]
    back = heatmap.decode_values([blob, vtop, chosen, offset], *g.shape)
    shown = g >= vtop * heatmap.VALUE_FLOOR
    assert np.all(back[~shown] == 0)
    assert np.allclose(back[shown], g[shown], rtol=step - 1)
