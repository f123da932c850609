"""The venues liqmap collects from: name, the name readers see, default public URL.

One row per venue. The registry, the pages and the settings need these without
the HTTP stack, so they live here, in a base module; everything about *collecting*
from a venue (capabilities, published rate limits, how far back its API reaches,
paging, parsing) is on its class in ``pipeline/collect/exchanges/<name>.py``.
Adding a venue: one row here and one module there (see ARCHITECTURE.md).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Venue:
    name: str  # the registry key, the module name, the LIQMAP_<NAME>_BASE_URL variable
    display: str  # how the venue writes its own name
    default_url: str
    live: bool = True  # False: not a source of live collection (the bulk archive)


VENUES: dict[str, Venue] = {v.name: v for v in (
    Venue("binance", "Binance", "https://fapi.binance.com"),
    Venue("bybit", "Bybit", "https://api.bybit.com"),
    Venue("okx", "OKX", "https://www.okx.com"),
    Venue("hyperliquid", "Hyperliquid", "https://api.hyperliquid.xyz"),
    Venue("dydx", "dYdX", "https://indexer.dydx.trade"),
    Venue("binance_archive", "Binance archive (data.binance.vision)", "https://data.binance.vision", live=False),
)}
# Live venues in collection order: the exchanges an asset may list.
EXCHANGES: tuple[str, ...] = tuple(v.name for v in VENUES.values() if v.live)


def display(name: str) -> str:
    """The venue's own spelling of its name (the key itself for an unknown one)."""
    v = VENUES.get(name)
    return v.display if v is not None else name
