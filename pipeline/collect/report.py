"""What a collection run did, per source: outcomes, the run report, its table and progress lines.

Every (asset, exchange, instrument, dataset) outcome becomes one ``raw_source_runs``
row with status ok | partial | error | blocked | unsupported.
"""

from __future__ import annotations

import datetime as dt
import secrets
from collections import Counter
from dataclasses import dataclass, field

from pipeline.collect.errors import MAX_MESSAGE, clip, redact
from pipeline.collect.exchanges.base import Batch
from pipeline.timeutil import ms_to_dt


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
        # Whatever raised it (a store error, a bug), nothing secret or unprintable leaves in a message.
        self.error = redact(error) if error else error
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
        self.message = clip(redact("; ".join(parts)), MAX_MESSAGE) if parts else ""
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
    return None if ms is None else ms_to_dt(ms)


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
