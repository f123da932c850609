"""Backfill from Binance's public daily archive (``data.binance.vision``): klines and metrics zips.

Each day's zip is verified against its ``.CHECKSUM`` (sha256) before any row is
stored; rows go through the same validation and upsert as live collection.
"""

from __future__ import annotations

import datetime as dt
import time
from typing import Iterable

from pipeline import registry as registry_mod
from pipeline.collect.errors import GeoBlocked, HttpError, NotFound, TransientError, redact
from pipeline.collect.http import ClientFactory
from pipeline.collect.live import Progress, refresh_quarantine, select_assets
from pipeline.collect.report import RunReport, SourceOutcome, new_run_id, utcnow
from pipeline.store.db import Store


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
    http = factory.client(BinanceArchive, url)
    archive = BinanceArchive(http, cache_dir or paths.data_paths().archive_cache)
    report = RunReport(run_id or new_run_id("backfill"), kind="backfill")
    days = [since + dt.timedelta(days=i) for i in range((until - since).days + 1)]
    down: str | None = None  # set once the archive refuses us or keeps failing
    down_blocked = False
    for asset in select_assets(reg, assets):
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
        report.notes.append(redact(f"could not update the quarantine: {type(exc).__name__}: {exc}"))
    report.finished_at = utcnow()
    return report

