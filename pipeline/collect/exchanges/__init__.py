"""One small class per venue (``binance``, ``bybit``, ...) on the shared pieces of ``base``.

:func:`venues` is the list of live venues the collector knows; a new exchange is one
module here plus one line in it (see ARCHITECTURE.md).
"""

from __future__ import annotations


def venues() -> dict:
    """Exchange name -> collector class (imported lazily to keep ``liqmap check`` light)."""
    from pipeline.collect.exchanges.binance import Binance
    from pipeline.collect.exchanges.bybit import Bybit
    from pipeline.collect.exchanges.dydx import Dydx
    from pipeline.collect.exchanges.hyperliquid import Hyperliquid
    from pipeline.collect.exchanges.okx import Okx

    return {c.name: c for c in (Binance, Bybit, Okx, Hyperliquid, Dydx)}
