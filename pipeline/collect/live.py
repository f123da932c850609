"""Live collection and archive backfill: exchange pages -> validated rows -> the store.

Rules this module keeps:

* **Incremental, without permanent holes.** Each (exchange, instrument, dataset)
  is fetched from the earliest of: its newest stored row at or before now minus
  a small overlap; the start of any hole in its recent past (two stored rows
  further apart than the series' step, within ``GAP_SCAN_MS`` and the API's
  reach, ``REACH_MS``); the start of any earlier run that failed midway and that
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

import datetime as dt
import secrets
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Callable, Iterable

import pyarrow as pa

from pipeline import registry as registry_mod
from pipeline.collect.exchanges import venues
from pipeline.collect.exchanges.base import DATASET_TABLE, DATASETS, INTERVAL_MS, Batch, Exchange, Unsupported
from pipeline.collect.http import (
    ApiError,
    BadPayload,
    ClientFactory,
    GeoBlocked,
    HttpError,
    NotFound,
    RateLimited,
    TransientError,
)
from pipeline.store.db import Store

DAY_MS = 86_400_000
DEFAULT_LOOKBACK_DAYS = 7
# Re-read a little of what is stored: the last rows of a page can be revised
# (late trades in the final candle, a corrected OI print); upserts make it free.
OVERLAP_MS = {
    "candles": 2 * INTERVAL_MS,
    "open_interest": 2 * INTERVAL_MS,
    "funding": 1,
    "liquidations": 60_000,
}

FLUSH_ROWS = 5000
MAX_CATCH_UP_MS = 30 * DAY_MS
# Holes are looked for this far back (and re-asked each run until filled or out of reach).
GAP_SCAN_MS = 3 * DAY_MS
_FOREVER = 10 * 365 * DAY_MS
# How far back each public API serves a dataset: a fact about the exchange, not a setting.
# 0: no history at all (a snapshot per run). Sources: each module's docstring and the docs.
REACH_MS: dict[str, dict[str, int]] = {
    "binance": {"candles": _FOREVER, "open_interest": 30 * DAY_MS, "funding": _FOREVER, "liquidations": 0},
    "bybit": {"candles": _FOREVER, "open_interest": _FOREVER, "funding": _FOREVER, "liquidations": 0},
    # OKX: history-candles reach years back; the rubik OI statistics and liquidation orders only recent days.
    "okx": {"candles": _FOREVER, "open_interest": 30 * DAY_MS, "funding": 90 * DAY_MS, "liquidations": 7 * DAY_MS},
    # Hyperliquid: only the most recent 5000 candles exist; open interest is the current value only.
    "hyperliquid": {"candles": 5000 * INTERVAL_MS, "open_interest": 0, "funding": _FOREVER, "liquidations": 0},
    "dydx": {"candles": _FOREVER, "open_interest": _FOREVER, "funding": _FOREVER, "liquidations": 0},
}

Progress = Callable[["SourceOutcome"], None]
_GAP_SCHEMA = pa.schema([("exchange", pa.string()), ("instrument", pa.string()), ("dataset", pa.string()),
                         ("gap_from", pa.timestamp("us")), ("gap_to", pa.timestamp("us")), ("reason", pa.string()),
                         ("run_id", pa.string())])


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def new_run_id(kind: str = "collect") -> str:
    return f"{kind}-{utcnow():%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}"


@dataclass
class SourceOutcome:
    asset: str
    exchange: str
    instrument: str
    dataset: str
    status: str = "ok"
    requests: int = 0
    received: int = 0
    stored: int = 0  # rows whose key was new to the store
    rejected: int = 0
    message: str = ""
    started_at: dt.datetime = field(default_factory=utcnow)
    finished_at: dt.datetime | None = None
    reasons: Counter = field(default_factory=Counter)
    skipped: int = 0
    error: str | None = None
    range_from: int | None = None  # epoch ms asked for (None: nothing asked)
    range_to: int | None = None

    def add(self, batch: Batch, stored: int) -> None:
        self.received += batch.received
        self.rejected += batch.n_rejected
        self.reasons.update(batch.rejected)
        self.skipped += batch.skipped
        self.stored += stored

    def finish(self, *, error: str | None = None, blocked: bool = False, note: str = "") -> "SourceOutcome":
        self.finished_at = utcnow()
        self.error = error
        parts = []
        if blocked:
            self.status = "blocked"
        elif error and self.stored:
            self.status = "partial"
        elif error:
            self.status = "error"
        elif self.rejected:
            self.status = "partial"
        else:
            self.status = "ok"
        if error:
            parts.append(error)
        if self.rejected:
            why = ", ".join(f"{n} {r}" for r, n in self.reasons.most_common())
            parts.append(f"{self.rejected} rows rejected ({why})")
        if note:
            parts.append(note)
        self.message = "; ".join(parts)
        return self

    def record(self, run_id: str) -> dict:
        return {
            "run_id": [run_id], "asset": [self.asset], "exchange": [self.exchange], "instrument": [self.instrument],
            "dataset": [self.dataset], "started_at": [self.started_at], "finished_at": [self.finished_at or utcnow()],
            "status": [self.status], "requests": [self.requests], "rows_received": [self.received],
            "rows_stored": [self.stored], "rows_rejected": [self.rejected], "message": [self.message or None],
            "range_from": [_ms_dt(self.range_from)], "range_to": [_ms_dt(self.range_to)],
            "complete": [None if self.range_from is None else self.error is None],
        }


def _ms_dt(ms: int | None) -> dt.datetime | None:
    return None if ms is None else dt.datetime(1970, 1, 1) + dt.timedelta(milliseconds=int(ms))


@dataclass
class RunReport:
    run_id: str
    kind: str = "collect"
    outcomes: list[SourceOutcome] = field(default_factory=list)
    started_at: dt.datetime = field(default_factory=utcnow)
    finished_at: dt.datetime | None = None
    quarantined: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def requests(self) -> int:
        return sum(o.requests for o in self.outcomes)

    @property
    def rows_stored(self) -> int:
        return sum(o.stored for o in self.outcomes)

    def statuses(self) -> Counter:
        return Counter(o.status for o in self.outcomes)

    def by(self, exchange: str, dataset: str, asset: str | None = None) -> list[SourceOutcome]:
        return [o for o in self.outcomes if o.exchange == exchange and o.dataset == dataset
                and (asset is None or o.asset == asset)]

    @property
    def exit_code(self) -> int:
        """0 when at least one source delivered (or nothing was attempted), else 1."""
        attempted = [o for o in self.outcomes if o.status != "unsupported"]
        if not attempted or any(o.status in ("ok", "partial") for o in attempted):
            return 0
        return 1

    def summary(self) -> str:
        st = self.statuses()
        counts = ", ".join(f"{n} {s}" for s, n in sorted(st.items()))
        secs = ((self.finished_at or utcnow()) - self.started_at).total_seconds()
        extra = f", {self.quarantined} prints in quarantine" if self.quarantined else ""
        notes = "".join(f"; {n}" for n in self.notes)
        return (f"{self.kind} {self.run_id}: {len(self.outcomes)} sources ({counts}); "
                f"{self.requests} requests, {self.rows_stored} new rows{extra}, {secs:.1f}s{notes}")

    def table(self) -> str:
        """A compact fixed-width table of every outcome (for logs and CI)."""
        head = ("asset", "exchange", "instrument", "dataset", "status", "req", "recv", "new", "rej", "message")
        rows = [head] + [
            (o.asset, o.exchange, o.instrument, o.dataset, o.status, str(o.requests), str(o.received),
             str(o.stored), str(o.rejected), (o.message or "")[:110])
            for o in self.outcomes
        ]
        widths = [max(len(r[i]) for r in rows) for i in range(len(head) - 1)]
        lines = []
        for r in rows:
            cells = [c.rjust(w) if i in (5, 6, 7, 8) else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths))]
            lines.append("  ".join(cells + [r[-1]]).rstrip())
        return "\n".join(lines + [self.summary()])


def progress_line(o: SourceOutcome) -> str:
    text = (f"{o.asset:<5} {o.exchange:<11} {o.instrument:<14} {o.dataset:<13} {o.status:<11} "
            f"{o.stored:>6} new / {o.received:>6} received, {o.requests} req")
    return text + (f"  - {o.message}" if o.message else "")


@dataclass
class CatchUp:
    """What each source is missing (``sql/queries/catch_up.sql``), keyed by (exchange, instrument, dataset)."""

    last: dict[tuple[str, str, str], int] = field(default_factory=dict)
    holes: dict[tuple[str, str, str], list[tuple[int, int]]] = field(default_factory=dict)
    pending: dict[tuple[str, str, str], tuple[int, int]] = field(default_factory=dict)

    @classmethod
    def read(cls, store: Store, now_ms: int) -> "CatchUp":
        out = cls()
        for r in store.query("catch_up", now_ms=now_ms, scan_from_ms=now_ms - GAP_SCAN_MS).to_pylist():
            key = (r["exchange"], r["instrument"], r["dataset"])
            if r["from_ms"] is None:
                continue
            if r["kind"] == "last":
                out.last[key] = int(r["from_ms"])
            elif r["kind"] == "hole":
                out.holes.setdefault(key, []).append((int(r["from_ms"]), int(r["to_ms"])))
            else:
                out.pending[key] = (int(r["from_ms"]), int(r["to_ms"]))
        return out

    def since(self, exchange: str, instrument: str, dataset: str, now_ms: int) -> int | None:
        """Where a fetch must start so that nothing missing within reach is left out; None: no rows yet."""
        key = (exchange, instrument, dataset)
        last = self.last.get(key)
        if last is None:
            return None
        since = last - OVERLAP_MS[dataset]
        floor = now_ms - REACH_MS.get(exchange, {}).get(dataset, _FOREVER)
        for start, _ in self.holes.get(key, []):
            if start >= floor:
                since = min(since, start)
        if key in self.pending:
            since = min(since, max(self.pending[key][0], floor))
        return since

    def gaps(self, exchange: str, instrument: str, dataset: str) -> list[tuple[int, int, str]]:
        """Open (from, to, kind) ranges of one source: holes between rows, and failed ranges."""
        key = (exchange, instrument, dataset)
        out = [(a, b, "hole") for a, b in self.holes.get(key, [])]
        if key in self.pending:
            out.append((*self.pending[key], "pending"))
        return out


def stored_extent(store: Store) -> dict[tuple[str, str, str], int]:
    """(exchange, instrument, dataset) -> last stored epoch ms."""
    tbl = store.query("data_extent").to_pylist()
    return {(r["exchange"], r["instrument"], r["dataset"]): int(r["last_ms"]) for r in tbl if r["last_ms"] is not None}


def refresh_quarantine(store: Store, reg: registry_mod.Registry | None = None) -> int:
    """Recompute the plausibility quarantine with the registry's ``quality`` thresholds; rows quarantined."""
    q = reg.quality if reg is not None else registry_mod.QualitySettings()
    venues = {a.id: dict(a.instruments) for a in reg.assets} if reg is not None else {}
    return store.refresh_quarantine(oi_factor=q.oi_spike_factor, candle_factor=q.candle_spike_factor,
                                    asset_instruments=venues)


def _select_assets(reg: registry_mod.Registry, assets: Iterable[str] | None) -> list[registry_mod.Asset]:
    if not assets:
        return list(reg.assets)
    known = {a.id: a for a in reg.assets}
    unknown = [a for a in assets if a not in known]
    if unknown:
        raise ValueError(f"unknown asset(s): {', '.join(unknown)}; known: {', '.join(known)}")
    return [known[a] for a in assets]


def _select_exchanges(exchanges: Iterable[str] | None) -> list[str]:
    if not exchanges:
        return list(registry_mod.EXCHANGES)
    unknown = [e for e in exchanges if e not in registry_mod.EXCHANGES]
    if unknown:
        raise ValueError(f"unknown exchange(s): {', '.join(unknown)}; known: {', '.join(registry_mod.EXCHANGES)}")
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
            self._exchanges[name] = cls(self.factory.client(name, url))
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
            self.report.notes.append(f"could not update gaps or quarantine: {type(exc).__name__}: {exc}")

    def _record_gaps(self) -> None:
        now = CatchUp.read(self.store, self.now_ms)
        mine = {(o.exchange, o.instrument, o.dataset): o for o in self.report.outcomes}
        rows: dict[str, list] = {k: [] for k in ("exchange", "instrument", "dataset", "gap_from", "gap_to", "reason", "run_id")}
        keys = set(now.holes) | set(now.pending)
        for key in sorted(keys):
            o = mine.get(key)
            reach = REACH_MS.get(key[0], {}).get(key[2], _FOREVER)
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
                for k, v in zip(rows, (key[0], key[1], key[2], _ms_dt(a), _ms_dt(b), why, self.report.run_id)):
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
    chosen_assets = _select_assets(reg, assets)
    chosen_exchanges = _select_exchanges(exchanges)
    return Collector(store, reg=reg, **kw).run(chosen_assets, chosen_exchanges)


# -- backfill from the bulk archive ------------------------------------------------
def backfill(store: Store, since: dt.date, until: dt.date | None = None, *, assets: Iterable[str] | None = None,
             reg: registry_mod.Registry | None = None, factory: ClientFactory | None = None,
             base_url: str | None = None, cache_dir=None, now_ms: int | None = None,
             progress: Progress | None = None, run_id: str | None = None) -> RunReport:
    """Load Binance's daily klines (5m) and metrics (5m OI) zips for each day in [since, until]."""
    from pipeline import paths, settings
    from pipeline.collect.exchanges.binance_archive import BinanceArchive, ChecksumMismatch

    reg = reg or registry_mod.load()
    factory = factory or ClientFactory()
    now_ms = int(now_ms if now_ms is not None else time.time() * 1000)
    # Today's file appears after the day ends; yesterday is the newest complete one.
    until = until or (dt.datetime.fromtimestamp(now_ms / 1000, dt.UTC).date() - dt.timedelta(days=1))
    if since > until:
        raise ValueError(f"--since {since} is after the last archived day {until}")
    url = base_url or settings.get().base_url("binance_archive")
    http = factory.client("binance_archive", url)
    archive = BinanceArchive(http, cache_dir or paths.data_paths().archive_cache)
    report = RunReport(run_id or new_run_id("backfill"), kind="backfill")
    days = [since + dt.timedelta(days=i) for i in range((until - since).days + 1)]
    down: str | None = None  # set once the archive refuses us or keeps failing
    down_blocked = False
    for asset in _select_assets(reg, assets):
        symbol = asset.instruments.get("binance")
        if not symbol:
            continue
        for kind, dataset in (("klines", "candles"), ("metrics", "open_interest")):
            o = SourceOutcome(asset.id, "binance", symbol, dataset)
            before = http.requests
            missing, bad, failed = [], [], []
            for day in days:
                if down:
                    failed.append(day)
                    continue
                try:
                    batch = archive.fetch(kind, symbol, day, now_ms)
                    stored = store.upsert(batch.table, batch.to_arrow()).inserted if batch.rows else 0
                    o.add(batch, stored)
                except NotFound:
                    missing.append(day)
                except ChecksumMismatch as exc:
                    bad.append((day, str(exc)))
                except GeoBlocked as exc:
                    down, down_blocked = str(exc), True
                    failed.append(day)
                except (TransientError, HttpError) as exc:
                    failed.append(day)
                    if isinstance(exc, TransientError):
                        down = str(exc)
            o.requests = http.requests - before
            problems = []
            if bad:
                problems.append(f"{len(bad)} day(s) failed the sha256 check and were not used: "
                                + ", ".join(f"{d}" for d, _ in bad[:5]))
            if failed:
                problems.append(f"{len(failed)} day(s) not fetched: {down or 'HTTP error'}"
                                if not (down_blocked and not o.received) else down)
            note = []
            if missing:
                note.append(f"{len(missing)} day(s) not in the archive ({missing[0]}..{missing[-1]})")
            if o.skipped:
                note.append(f"{o.skipped} duplicate archive rows dropped")
            note.append(f"{len(days)} day(s) {days[0]}..{days[-1]}")
            all_failed = not o.received and (bad or failed or missing)
            o.finish(error="; ".join(problems) or ("no data for any day" if all_failed else None),
                     blocked=down_blocked and not o.received, note="; ".join(note))
            if o.status == "ok" and missing:
                o.status = "partial"
            report.outcomes.append(o)
            store.upsert("raw_source_runs", o.record(report.run_id))
            if progress:
                progress(o)
    try:
        report.quarantined = refresh_quarantine(store, reg)
    except Exception as exc:  # the loaded days stay; the next run recomputes
        report.notes.append(f"could not update the quarantine: {type(exc).__name__}: {exc}")
    report.finished_at = utcnow()
    return report


__all__ = ["Collector", "RunReport", "SourceOutcome", "backfill", "collect", "progress_line"]
