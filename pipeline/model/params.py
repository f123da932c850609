"""Model parameters and the liquidation-price formula (pure).

Every assumption of the model is a field of :class:`ModelParams`, with its default
and meaning documented here and shown on the methodology page; the registry
(``assets.yaml``) sets them per asset.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # registry pulls in pydantic; the model itself does not need it
    from pipeline import registry

LONG = 1
SHORT = -1


SIDE_SPLITS = ("equal", "taker", "candle")
ENTRY_PRICES = ("close", "typical")
OI_CHANGES = ("usd", "base")


def margin_bracket(mmr_tiers, notional: float) -> tuple[float, float]:
    """Maintenance margin rate and maintenance amount ``cum`` for a position of ``notional`` USD.

    ``mmr_tiers`` is ``((from_usd, mmr), ...)`` sorted by ``from_usd`` with the first at 0.
    ``cum`` follows Binance's bracket table: ``cum_0 = 0``,
    ``cum_k = cum_{k-1} + from_usd_k * (mmr_k - mmr_{k-1})``, which keeps the
    maintenance margin ``N * mmr - cum`` continuous across bracket boundaries.
    The bracket used is the last one with ``from_usd <= notional``.
    """
    tiers = [(float(a), float(b)) for a, b in mmr_tiers]
    if not tiers or tiers[0][0] != 0:
        raise ValueError("mmr_tiers: the first tier must start at from_usd 0")
    cum = 0.0
    mmr, chosen_cum = tiers[0][1], 0.0
    for k, (frm, rate) in enumerate(tiers):
        if k:
            cum += frm * (rate - tiers[k - 1][1])
        if frm <= notional:
            mmr, chosen_cum = rate, cum
    return mmr, chosen_cum


def liquidation_price(entry, leverage, mmr, cum, notional, side) -> np.ndarray:
    """Liquidation price of an isolated one-way position whose wallet balance is its initial margin.

    ``side`` is +1 (long) or -1 (short); all arguments broadcast.

        long:  LP = E * (1 - 1/L - cum/N) / (1 - MMR)
        short: LP = E * (1 + 1/L + cum/N) / (1 + MMR)

    i.e. Binance USD-M's ``LP = (WB + cum - s*Q*E) / (Q*MMR - s*Q)`` with
    ``WB = N / L`` and ``N = Q * E``. A long result <= 0 means the position cannot be
    liquidated (it is returned as computed; grids simply never show it).
    """
    e = np.asarray(entry, dtype=float)
    lev = np.asarray(leverage, dtype=float)
    s = np.asarray(side, dtype=float)
    c_over_n = np.asarray(cum, dtype=float) / np.asarray(notional, dtype=float)
    return e * (1.0 - s / lev - s * c_over_n) / (1.0 - s * np.asarray(mmr, dtype=float))


@dataclass(frozen=True)
class ModelParams:
    """Model assumptions. Defaults are the registry defaults; every field is documented.

    - ``leverage``: leverage of each tier, e.g. ``(5, 10, 25, 50, 100)``.
    - ``weights``: share of new notional per tier (same length, sums to 1).
    - ``mmr_tiers``: maintenance brackets ``((from_usd, mmr), ...)``; ``cum`` is derived.
    - ``side_split`` (default ``"equal"``): how new notional is attributed to longs/shorts.
      ``"equal"``: 50/50. ``"taker"``: long share = taker_buy_volume / volume of the
      candle (0.5 where either is missing or volume is 0). ``"candle"``: long share =
      ``0.5 + candle_tilt * (close - open) / (high - low)`` (0.5 when high == low), so a
      full-body green candle gives ``0.5 + candle_tilt`` to longs.
    - ``entry_price`` (default ``"typical"``): ``"typical"`` = (high+low+close)/3 or ``"close"``.
    - ``fade_half_life_hours`` (default None = no fade): levels lose half their notional
      per half-life of age.
    - ``position_notional_usd`` (default 10 000): assumed size of every position; picks the
      maintenance bracket (mmr, cum) used for all levels.
    - ``candle_tilt`` (default 0.25, in [0, 0.5]): strength of the ``"candle"`` split.
    - ``oi_change`` (default ``"base"``): ``"base"``: dOI in base units, each OI sample
      converted at the close of the candle it is aligned to (OI_usd / close) and the
      coins carried unchanged until the next sample; new coins are valued at the entry
      price, so a price move alone opens or closes nothing.
      ``"usd"``: dOI = change of OI in USD between samples (a price move between two
      samples then looks like flow).
    """

    leverage: tuple[float, ...]
    weights: tuple[float, ...]
    mmr_tiers: tuple[tuple[float, float], ...]
    side_split: str = "equal"
    entry_price: str = "typical"
    fade_half_life_hours: float | None = None
    position_notional_usd: float = 10_000.0
    candle_tilt: float = 0.25
    oi_change: str = "base"

    def __post_init__(self) -> None:
        # Frozen dataclass: normalise to tuples of floats so params are hashable and comparable.
        object.__setattr__(self, "leverage", tuple(float(x) for x in self.leverage))
        object.__setattr__(self, "weights", tuple(float(x) for x in self.weights))
        object.__setattr__(self, "mmr_tiers", tuple((float(a), float(b)) for a, b in self.mmr_tiers))
        if not self.leverage:
            raise ValueError("leverage: needs at least one tier")
        if len(self.weights) != len(self.leverage):
            raise ValueError(f"weights: {len(self.weights)} values for {len(self.leverage)} leverage tiers")
        if any(not (x > 1) or not math.isfinite(x) for x in self.leverage):
            raise ValueError("leverage: every tier must be a finite number above 1")
        if any(not (w >= 0) or not math.isfinite(w) for w in self.weights):
            raise ValueError("weights: must be finite and non-negative")
        if not math.isclose(sum(self.weights), 1.0, abs_tol=1e-6):
            raise ValueError(f"weights: sum to {sum(self.weights):g}, must sum to 1")
        if not self.mmr_tiers or self.mmr_tiers[0][0] != 0:
            raise ValueError("mmr_tiers: the first tier must start at from_usd 0")
        for (a, ra), (b, rb) in zip(self.mmr_tiers, self.mmr_tiers[1:]):
            if not (b > a and rb > ra):
                raise ValueError("mmr_tiers: from_usd and mmr must both rise")
        if any(not (0 < r < 1) for _, r in self.mmr_tiers):
            raise ValueError("mmr_tiers: every mmr must be between 0 and 1")
        if self.side_split not in SIDE_SPLITS:
            raise ValueError(f"side_split: {self.side_split!r}, expected one of {', '.join(SIDE_SPLITS)}")
        if self.entry_price not in ENTRY_PRICES:
            raise ValueError(f"entry_price: {self.entry_price!r}, expected one of {', '.join(ENTRY_PRICES)}")
        if self.oi_change not in OI_CHANGES:
            raise ValueError(f"oi_change: {self.oi_change!r}, expected one of {', '.join(OI_CHANGES)}")
        if self.fade_half_life_hours is not None and not (self.fade_half_life_hours > 0):
            raise ValueError("fade_half_life_hours: must be positive or None")
        if not (self.position_notional_usd > 0):
            raise ValueError("position_notional_usd: must be positive")
        if not (0 <= self.candle_tilt <= 0.5):
            raise ValueError("candle_tilt: must be within [0, 0.5]")
        mmr, cum = self.bracket
        for lev in self.leverage:
            # Initial margin must exceed maintenance margin, else the level sits beyond entry.
            if 1.0 / lev + cum / self.position_notional_usd <= mmr:
                raise ValueError(f"leverage: {lev:g}x needs initial margin above the maintenance rate {mmr:g}")

    @classmethod
    def from_asset(cls, asset: "registry.Asset", settings: "registry.ModelSettings") -> "ModelParams":
        """Params for one registry asset with its (already merged) model settings."""
        return cls(
            leverage=tuple(t.leverage for t in asset.leverage_tiers),
            weights=tuple(t.weight for t in asset.leverage_tiers),
            mmr_tiers=tuple((t.from_usd, t.mmr) for t in asset.mmr_tiers),
            side_split=settings.side_split,
            entry_price=settings.entry_price,
            fade_half_life_hours=settings.fade_half_life_hours,
            position_notional_usd=settings.position_notional_usd,
            candle_tilt=settings.candle_tilt,
            oi_change=settings.oi_change,
        )

    @property
    def bracket(self) -> tuple[float, float]:
        """(mmr, cum) of the bracket containing ``position_notional_usd``."""
        return margin_bracket(self.mmr_tiers, self.position_notional_usd)

    def price_factors(self) -> np.ndarray:
        """LP / entry per (side, tier), shape (2, T): row 0 long, row 1 short."""
        mmr, cum = self.bracket
        lev = np.asarray(self.leverage)
        sides = np.array([[LONG], [SHORT]], dtype=float)
        return liquidation_price(1.0, lev[None, :], mmr, cum, self.position_notional_usd, sides)
