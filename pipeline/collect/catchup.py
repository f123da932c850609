"""Where each source's fetch must start so that no hole stays: stored extent, holes, unfinished runs.

``sql/queries/catch_up.sql`` finds, per (exchange, instrument, dataset), the newest
stored row, the holes within ``GAP_SCAN_MS`` (two rows further apart than the
series' step) and the range of an earlier run that failed midway. A fetch starts
at the earliest of these that the exchange's API still serves (its ``reach_ms``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pipeline.collect.exchanges import venues
from pipeline.collect.exchanges.base import FOREVER_MS, INTERVAL_MS
from pipeline.store.db import Store
from pipeline.timeutil import DAY_MS

# Re-read a little of what is stored: the last rows of a page can be revised
# (late trades in the final candle, a corrected OI print); upserts make it free.
OVERLAP_MS = {
    "candles": 2 * INTERVAL_MS,
    "open_interest": 2 * INTERVAL_MS,
    "funding": 1,
    "liquidations": 60_000,
}
# Holes are looked for this far back (and re-asked each run until filled or out of reach).
GAP_SCAN_MS = 3 * DAY_MS


def reach_ms(exchange: str, dataset: str) -> int:
    """How far back ``exchange``'s public API serves ``dataset`` (a fact on the venue's class)."""
    cls = venues().get(exchange)
    return cls.reach_ms.get(dataset, FOREVER_MS) if cls is not None else FOREVER_MS


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
        floor = now_ms - reach_ms(exchange, dataset)
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

