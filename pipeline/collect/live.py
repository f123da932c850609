"""Live collection and archive backfill: exchange pages -> validated rows -> the store.

Rules this module keeps:

* **Incremental, without permanent holes.** Each (exchange, instrument, dataset)
  is fetched from the earliest of: its newest stored row at or before now minus
  a small overlap; the start of any hole in its recent past (two stored rows
  further apart than the series' step, within ``GAP_SCAN_MS`` and the API's
  reach, each venue's ``reach_ms``; :mod:`pipeline.collect.catchup`); the start of any earlier run that failed midway and that
  no complete run has covered since (``sql/queries/catch_up.sql``). The first
  run looks back ``lookback``. Loads are upserts, so re-reading stores every row
  once. What a run still cannot fill is written to ``raw_gaps`` with the reason.
* **Implausible prints quarantined.** After the run, ``raw_quarantine`` is
  recomputed (``sql/quality/quarantine.sql``): spikes are kept but left out of
  the model.
* **Failure per source, never per run.** Every page is its own transaction; a
  source that fails midway keeps what it stored and is reported ``partial``;
  a failing source never deletes or overwrites other data. Every
  (asset, exchange, instrument, dataset) outcome is recorded in
  ``raw_source_runs`` with status ok | partial | error | blocked | unsupported.
* **Plain messages.** A geo-block says which exchange refused and what to do;
  once an exchange has refused (or is down), its remaining sources in the run
  are reported without hammering it again.
"""

from __future__ import annotations

import time
from typing import Callable, Iterable

import pyarrow as pa

from pipeline import registry as registry_mod
from pipeline.collect.catchup import CatchUp, reach_ms
from pipeline.collect.errors import (
    ApiError,
    BadPayload,
    GeoBlocked,
    HttpError,
    NotFound,
    RateLimited,
    TransientError,
    redact,
)
from pipeline.collect.exchanges import venues
from pipeline.collect.exchanges.base import DATASET_TABLE, DATASETS, Batch, Exchange, Unsupported
from pipeline.collect.http import ClientFactory
from pipeline.collect.report import RunReport, SourceOutcome, new_run_id, utcnow
from pipeline.store.db import Store
from pipeline.timeutil import DAY_MS, ms_to_dt
from pipeline.venues import EXCHANGES

DEFAULT_LOOKBACK_DAYS = 7
FLUSH_ROWS = 5000
MAX_CATCH_UP_MS = 30 * DAY_MS

Progress = Callable[["SourceOutcome"], None]
_GAP_SCHEMA = pa.schema([("exchange", pa.string()), ("instrument", pa.string()), ("dataset", pa.string()),
                         ("gap_from", pa.timestamp("us")), ("gap_to", pa.timestamp("us")), ("reason", pa.string()),
                         ("run_id", pa.string())])


def refresh_quarantine(store: Store, reg: registry_mod.Registry | None = None) -> int:
    """Recompute the plausibility quarantine with the registry's ``quality`` thresholds; rows quarantined."""
    q = reg.quality if reg is not None else registry_mod.QualitySettings()
    venues = {a.id: dict(a.instruments) for a in reg.assets} if reg is not None else {}
    return store.refresh_quarantine(oi_factor=q.oi_spike_factor, candle_factor=q.candle_spike_factor,
                                    asset_instruments=venues)


def select_assets(reg: registry_mod.Registry, assets: Iterable[str] | None) -> list[registry_mod.Asset]:
    if not assets:
        return list(reg.assets)
    known = {a.id: a for a in reg.assets}
    unknown = [a for a in assets if a not in known]
    if unknown:
        raise ValueError(f"unknown asset(s): {', '.join(unknown)}; known: {', '.join(known)}")
    return [known[a] for a in assets]


def select_exchanges(exchanges: Iterable[str] | None) -> list[str]:
    if not exchanges:
        return list(EXCHANGES)
    unknown = [e for e in exchanges if e not in EXCHANGES]
    if unknown:
        raise ValueError(f"unknown exchange(s): {', '.join(unknown)}; known: {', '.join(EXCHANGES)}")
    return list(exchanges)


class Collector:
    """One collection run over a store: exchanges share one HTTP session."""

    def __init__(self, store: Store, *, factory: ClientFactory | None = None, base_urls: dict[str, str] | None = None,
                 now_ms: int | None = None, lookback_days: float = DEFAULT_LOOKBACK_DAYS,
                 progress: Progress | None = None, run_id: str | None = None,
                 reg: registry_mod.Registry | None = None):
        self.store = store
        self.reg = reg
        self.factory = factory or ClientFactory()
        self.base_urls = base_urls or {}
        self.now_ms = int(now_ms if now_ms is not None else time.time() * 1000)
        self.lookback_ms = int(lookback_days * DAY_MS)
        self.progress = progress
        self.report = RunReport(run_id or new_run_id("collect"))
        self._exchanges: dict[str, Exchange] = {}
        self._down: dict[str, tuple[str, str]] = {}  # exchange -> (status, message) once refused or failing

    def exchange(self, name: str) -> Exchange:
        if name not in self._exchanges:
            cls = venues()[name]
            url = self.base_urls.get(name) or cls.default_base_url()
            self._exchanges[name] = cls(self.factory.client(cls, url))
        return self._exchanges[name]

    def run(self, assets: list[registry_mod.Asset], exchanges: list[str]) -> RunReport:
        extent = CatchUp.read(self.store, self.now_ms)
        for asset in assets:
            for ex_name in exchanges:
                inst = asset.instruments.get(ex_name)
                if inst is None:
                    continue
                ex = self.exchange(ex_name)
                group: list[SourceOutcome] = []
                for dataset in DATASETS:
                    if dataset in ex.derived:
                        continue  # reported together with the dataset that carries it
                    for o in self._source(asset.id, ex, inst, dataset, extent):
                        group.append(o)
                        self.report.outcomes.append(o)
                        if self.progress:
                            self.progress(o)
                # One bookkeeping transaction per (asset, exchange), right after its sources ran.
                self._record(group)
        self._after_run()
        self.report.finished_at = utcnow()
        return self.report

    def _after_run(self) -> None:
        """Record what is still missing and recompute the quarantine; never lose the run over it."""
        try:
            self._record_gaps()
            self.report.quarantined = refresh_quarantine(self.store, self.reg)
        except Exception as exc:
            self.report.notes.append(redact(f"could not update gaps or quarantine: {type(exc).__name__}: {exc}"))

    def _record_gaps(self) -> None:
        now = CatchUp.read(self.store, self.now_ms)
        mine = {(o.exchange, o.instrument, o.dataset): o for o in self.report.outcomes}
        rows: dict[str, list] = {k: [] for k in ("exchange", "instrument", "dataset", "gap_from", "gap_to", "reason", "run_id")}
        keys = set(now.holes) | set(now.pending)
        for key in sorted(keys):
            o = mine.get(key)
            reach = reach_ms(key[0], key[2])
            for a, b, kind in sorted(now.gaps(*key)):
                if a < self.now_ms - reach:
                    why = "older than the exchange's API serves; only a backfill from an archive can fill it"
                elif o is None:
                    why = "not fetched by the last run (asset or exchange not selected); asked again next run"
                elif o.error:
                    why = f"fetch failed: {o.error}; asked again next run"
                elif kind == "pending":
                    why = "an earlier fetch failed midway; asked again next run"
                else:
                    why = "the exchange returned no rows for this range; asked again each run while in reach"
                for k, v in zip(rows, (key[0], key[1], key[2], ms_to_dt(a), ms_to_dt(b), why, self.report.run_id)):
                    rows[k].append(v)
        self.store.replace("raw_gaps", pa.table(rows, schema=_GAP_SCHEMA))

    def _record(self, outcomes: list[SourceOutcome]) -> None:
        if not outcomes:
            return
        rows: dict[str, list] = {}
        for o in outcomes:
            for k, v in o.record(self.report.run_id).items():
                rows.setdefault(k, []).extend(v)
        try:
            self.store.upsert("raw_source_runs", rows)
        except Exception as exc:  # the outcomes stay in the report; never lose the run over bookkeeping
            for o in outcomes:
                o.message = f"{o.message}; could not record outcome: {exc}".lstrip("; ")

    def _source(self, asset: str, ex: Exchange, inst: str, dataset: str, extent) -> list[SourceOutcome]:
        derived = [d for d, src in ex.derived.items() if src == dataset]
        outs = {d: SourceOutcome(asset, ex.name, inst, d) for d in [dataset, *derived]}
        main = outs[dataset]
        if not ex.supports(dataset):
            main.finish(note=f"{ex.http.name} does not publish {dataset.replace('_', ' ')} over public REST")
            main.status = "unsupported"
            return [main]
        if ex.name in self._down:
            status, msg = self._down[ex.name]
            for o in outs.values():
                o.finish(error=f"not attempted: {msg}", blocked=status == "blocked")
            return list(outs.values())
        starts = [extent.since(ex.name, inst, d, self.now_ms) for d in outs]  # derived datasets ride along
        if all(x is None for x in starts):
            since = self.now_ms - self.lookback_ms
        else:
            # Fill every hole in reach, but a source silent for months is a job for
            # `liqmap backfill`, not for one scheduled run.
            since = min(x if x is not None else self.now_ms - self.lookback_ms for x in starts)
            since = max(since, self.now_ms - max(self.lookback_ms, MAX_CATCH_UP_MS))
        for o in outs.values():
            o.range_from, o.range_to = since, self.now_ms
        table_to_dataset = {DATASET_TABLE[d]: d for d in outs}
        before = ex.http.requests
        error = None
        blocked = False
        pending: dict[str, list[Batch]] = {}

        def flush() -> None:
            # One transaction per table and flush: pages are pooled up to FLUSH_ROWS so
            # a long backfill of small pages does not pay a transaction per page.
            for table, batches in list(pending.items()):
                rows = [r for b in batches for r in b.rows]
                if rows:
                    res = self.store.upsert(table, Batch(table, rows).to_arrow())
                    outs[table_to_dataset[table]].stored += res.inserted
                del pending[table]

        try:
            try:
                for batch in ex.fetch(dataset, inst, since, self.now_ms):
                    outs[table_to_dataset[batch.table]].add(batch, 0)
                    pending.setdefault(batch.table, []).append(batch)
                    if sum(len(b.rows) for b in pending[batch.table]) >= FLUSH_ROWS:
                        flush()
            finally:
                flush()  # what arrived before a failure is kept
        except GeoBlocked as exc:
            error, blocked = str(exc), True
            self._down[ex.name] = ("blocked", str(exc))
        except (TransientError, RateLimited) as exc:
            # Down, or told to back off for longer than a run lasts: asking again only
            # lengthens a ban (Binance escalates 418s), so the exchange rests for this run.
            error = str(exc)
            self._down[ex.name] = ("error", f"{ex.http.name} is failing ({exc})")
        except (BadPayload, ApiError, NotFound, HttpError, Unsupported) as exc:
            error = str(exc)
        except Exception as exc:  # a bug or a store refusal must not end the run for every other source
            error = f"{type(exc).__name__}: {exc}"
        main.requests = ex.http.requests - before
        for o in outs.values():
            o.finish(error=error, blocked=blocked)  # skipped rows (the forming candle) are normal, not news
        return list(outs.values())


def collect(store: Store, *, assets: Iterable[str] | None = None, exchanges: Iterable[str] | None = None,
            reg: registry_mod.Registry | None = None, **kw) -> RunReport:
    """Collect every selected (asset, exchange) into ``store``; see :class:`Collector` for options."""
    reg = reg or registry_mod.load()
    chosen_assets = select_assets(reg, assets)
    chosen_exchanges = select_exchanges(exchanges)
    return Collector(store, reg=reg, **kw).run(chosen_assets, chosen_exchanges)


