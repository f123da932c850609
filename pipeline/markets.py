"""Markets: the unit the model runs on (candles of one instrument + open interest of one instrument).

For a live exchange both come from the same instrument. The bundled sample pairs
bitFlyer candles with OKX's total BTC open interest, which is said on every page
built from it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pipeline.registry import Asset
from pipeline.venues import display


@dataclass(frozen=True)
class Market:
    asset: str
    key: str  # label used in pages and file names: an exchange name, or "sample"
    candles: tuple[str, str]  # (exchange, instrument)
    oi: tuple[str, str]
    is_sample: bool = False

    @property
    def title(self) -> str:
        if self.is_sample:
            return "Sample: bitFlyer FX_BTC_JPY price + OKX total BTC open interest"
        ex = self.candles[0]
        return f"{display(ex)} {self.candles[1]}"


# The bundled sample's bitFlyer prices are in JPY: median FX_BTC_JPY / BTCUSD over 26 matched
# minutes, September 2026 (sample/PROVENANCE.md).
JPY_PER_USD = 156.46

SAMPLE_MARKET = Market(
    asset="btc",
    key="sample",
    candles=("bitflyer", "FX_BTC_JPY"),
    oi=("okx", "BTC-TOTAL"),
    is_sample=True,
)


@dataclass(frozen=True)
class MarketSeries:
    """One market's stored history, oldest first, prices in USD (``sql/queries/market_*.sql``)."""

    market: Market
    candles: dict[str, np.ndarray]  # time_ms, interval_s, open, high, low, close, volume, taker_buy_volume, ...
    oi: dict[str, np.ndarray]  # time_ms, oi_usd, oi_base (observations, not aligned to candles)
    funding: dict[str, np.ndarray]  # time_ms, rate (per the venue's own interval)
    liquidations: dict[str, np.ndarray]  # time_ms, side, price, size_base, notional_usd (often empty)

    @property
    def empty(self) -> bool:
        return self.candles["time_ms"].size == 0

    @property
    def candle_ms(self) -> int:
        return int(np.nanmax(self.candles["interval_s"])) * 1000


def markets_for(asset: Asset, stored: set[tuple[str, str]]) -> list[Market]:
    """The markets of ``asset`` that have stored candles; ``stored`` holds (exchange, instrument) pairs.

    The bundled sample stands in only while no live market of the asset has data:
    its open interest is OKX's total, so adding it to live OKX data would count
    the same positions twice.
    """
    out = [
        Market(asset=asset.id, key=ex, candles=(ex, inst), oi=(ex, inst))
        for ex, inst in asset.instruments.items()
        if (ex, inst) in stored
    ]
    if not out and asset.id == SAMPLE_MARKET.asset and SAMPLE_MARKET.candles in stored:
        out.append(SAMPLE_MARKET)
    return out
