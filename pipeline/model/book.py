"""The liquidation-level model: a time-evolving book of estimated liquidation levels.

Pure numpy, no I/O. Nobody observes real positions; this module turns candles and
open interest (OI) into an *estimate* of where leveraged positions would be
force-closed, following the usual public method (see ``docs/domain.md``). Every
assumption is a parameter of :class:`ModelParams` with a documented default.

Per candle ``t`` (oldest first), in this order:

1. **Consume crossed levels.** Long levels with liquidation price ``>= low_t`` and
   short levels with liquidation price ``<= high_t`` are liquidated: they leave the
   book and are recorded as modelled liquidations at ``t``. A level created at
   candle ``t`` can be consumed from candle ``t + 1`` on, never on its own birth
   candle (we cannot know whether the candle's extreme came before or after entry).
2. **New exposure.** ``dOI_t = OI_t - OI_prev`` where ``OI_prev`` is the last known
   OI before ``t`` (NaN OI = unknown = no change; the first known value only sets the
   baseline, so the book starts empty). OI changes only where a new sample arrives:
   a value equal to the last known one is that sample carried forward (OI is often
   sampled less often than candles), so with ``oi_change="base"`` the number of
   coins is carried between samples and a pure price move opens and closes nothing.
   If ``dOI_t > 0`` new notional is opened at
   the entry price (``typical`` = (high+low+close)/3, or ``close``), split long/short
   by ``side_split`` and over leverage tiers by ``weights``; each (side, tier) pair
   becomes one level at its liquidation price (:func:`liquidation_price`, isolated
   margin, maintenance bracket chosen by ``position_notional_usd``).
3. **Closed exposure.** If ``dOI_t < 0`` the closed fraction
   ``f_t = -dOI_t / OI_prev`` (clipped to [0, 1]) is removed *proportionally from
   every active level of both sides*. Choice and reason: nobody knows which
   positions closed; proportional removal is the neutral guess and it makes a
   level's surviving share a cumulative product over candles that does not depend
   on the book, which is what lets the whole model vectorize (no loop over levels).
   A closed fraction of (numerically) 1 removes the whole book.
4. **Fade** (optional): active levels decay exponentially with age,
   ``exp(-ln 2 * age / half_life)``, measured in wall-clock time between candles.

Implementation (why it is fast): each level's lifetime is ``[birth, death)`` where
``death`` is its first crossing candle (found for all levels at once with a sparse
table of running min(low)/max(high) and log2(n) vectorized jumps) or the next
whole-book close. Removal and fade are one per-candle log factor ``G`` (cumulative
sum of ``log(1 - f_t)`` and ``-lambda * dt``), so a level's notional after candle
``t`` is ``n0 * exp(G[t] - G[birth])``: only differences of ``G`` are ever
exponentiated, so a year of closing never underflows or overflows. Grids are built
with difference arrays (``np.bincount`` on flattened (column, bin) indices) and a
short loop over time *columns* (at most a few thousand, never over levels or bins)
that carries the book forward by ``exp(G[col] - G[prev col])``.

The parameters (leverage tiers, margin brackets, side split, ...) and the
liquidation-price formula are :mod:`pipeline.model.params`. The recurrence, its
vectorised implementation and the grids stay together in this module (over 450
lines) because they are one piece: each part relies on the others' invariants.

Known approximations (documented on the methodology page): candles are last price
while exchanges liquidate on mark price; all positions are assumed to have the same
size (``position_notional_usd``), isolated margin, one-way mode.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

from pipeline.model.params import LONG, SHORT, ModelParams

# A closed fraction this close to 1 is a whole-book close: handled as the death of
# every active level instead of as log(0) in the cumulative factor.
_WIPE_FRACTION = 1.0 - 1e-12
# Largest log-range exponentiated at once inside the block-wise recurrence
# (exp(600) ~ 1e260 stays finite in float64).
_LOG_BLOCK = 600.0
_MS_PER_HOUR = 3_600_000.0
# Relative change in coins below which a base-mode change is conversion round-off.
_COIN_ROUNDOFF = 1e-12

def align_oi(candle_time_ms, oi_time_ms, oi_usd, oi_base=None, close=None) -> np.ndarray:
    """OI per candle, as of the candle's time: the last OI sample with time <= candle time.

    NaN before the first sample; NaN samples are skipped (the previous one holds).
    Between samples the value is carried forward unchanged; :func:`run` reads a value
    equal to the previous candle's as "no new sample" (it carries coins, not USD).
    Unsorted OI input is sorted first (stable). Candle time is the candle's
    timestamp as given (for exchange klines: the open time).

    ``oi_base`` (coins per sample, NaN where unknown) with ``close`` (per candle):
    a sample whose coins are known is valued at the close of the candle it first
    reaches, the price :func:`run` converts back at, so the model sees the exchange's
    exact number of coins instead of a USD figure valued at another instant.
    """
    ct = np.asarray(candle_time_ms, dtype=np.int64)
    ot = np.asarray(oi_time_ms, dtype=np.int64)
    ov = np.asarray(oi_usd, dtype=float)
    if ot.shape != ov.shape:
        raise ValueError("align_oi: oi_time_ms and oi_usd differ in length")
    if oi_base is not None and close is not None and ct.size:
        ob = np.asarray(oi_base, dtype=float)
        cl = np.asarray(close, dtype=float)
        if ob.shape != ot.shape or cl.shape != ct.shape:
            raise ValueError("align_oi: oi_base must match oi_time_ms and close must match candle_time_ms")
        first = np.minimum(np.searchsorted(ct, ot, side="left"), ct.size - 1)
        coins = np.isfinite(ob) & np.isfinite(cl[first]) & (cl[first] > 0)
        ov = np.where(coins, ob * cl[first], ov)
    keep = np.isfinite(ov)
    ot, ov = ot[keep], ov[keep]
    order = np.argsort(ot, kind="stable")
    ot, ov = ot[order], ov[order]
    idx = np.searchsorted(ot, ct, side="right") - 1
    out = np.full(ct.shape, np.nan)
    ok = idx >= 0
    out[ok] = ov[idx[ok]]
    return out


def time_columns(t0_ms: int, t1_ms: int, max_cols: int = 1000, candle_ms: int = 300_000) -> np.ndarray:
    """Column end times (int64 ms) covering candles ``t0_ms .. t1_ms`` (both candle times, inclusive).

    The step is the smallest multiple of ``candle_ms`` giving at most ``max_cols``
    columns; column ``j`` ends at ``t0 + (j + 1) * step`` so the last column ends after
    the last candle (``> t1_ms``) and every column end falls on a candle boundary.
    """
    if candle_ms <= 0 or max_cols <= 0:
        raise ValueError("time_columns: candle_ms and max_cols must be positive")
    t0, t1 = int(t0_ms), int(t1_ms)
    if t1 < t0:
        raise ValueError("time_columns: t1_ms before t0_ms")
    span_candles = (t1 - t0) // candle_ms + 1
    per_col = -(-span_candles // max_cols)
    step = per_col * candle_ms
    n_cols = -(-span_candles // per_col)
    return t0 + step * np.arange(1, n_cols + 1, dtype=np.int64)


# ----------------------------------------------------------------------------- internals


def _first_crossing(values: np.ndarray, start: np.ndarray, price: np.ndarray, long: bool) -> np.ndarray:
    """First index ``t >= start`` where the level at ``price`` is crossed, or ``len(values)``.

    Long: crossed when ``low_t <= price``; short: when ``high_t >= price``. A sparse
    table of running min/max over windows of 2**k candles lets every level jump
    forward in log2(n) vectorized steps (greedy binary lifting: take the longest
    window that is still uncrossed).
    """
    n = values.shape[0]
    pos = start.astype(np.int64, copy=True)
    if n == 0 or pos.size == 0:
        return pos
    agg = np.minimum if long else np.maximum
    tables = [values]
    k = 1
    while (1 << k) <= n:
        prev = tables[-1]
        half = 1 << (k - 1)
        tables.append(agg(prev[:-half], prev[half:]))
        k += 1
    for k in range(len(tables) - 1, -1, -1):
        step = 1 << k
        tbl = tables[k]  # tbl[i] = agg(values[i : i + step]), valid for i <= n - step
        ok = pos <= n - step
        idx = np.where(ok, pos, 0)
        window = tbl[idx]
        clear = (window > price) if long else (window < price)
        pos += np.where(ok & clear, step, 0)
    return pos


def _linear_scan(log_a: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Solve ``x_t = exp(log_a_t) * x_{t-1} + u_t`` (x_{-1} = 0) without overflow.

    Blocks are chosen so that the cumulative log factor spans at most _LOG_BLOCK
    inside a block; each block is then a scaled cumsum. ``log_a = -inf`` (a whole-book
    close) simply ends a block. The number of blocks is tiny in practice.
    """
    n = u.shape[0]
    x = np.empty(n)
    if n == 0:
        return x
    la = np.maximum(log_a, -1e4)  # exp(-1e4) == 0: -inf behaves as a reset
    cum = np.cumsum(la)
    neg = -cum  # non-decreasing because log_a <= 0
    start, carry = 0, 0.0
    while start < n:
        base = cum[start - 1] if start else 0.0
        end = int(np.searchsorted(neg, -base + _LOG_BLOCK, side="right"))
        if end <= start:  # one step alone drops more than the block allows
            x[start] = math.exp(la[start]) * carry + u[start]
            carry = x[start]
            start += 1
            continue
        g = cum[start:end] - base
        blk = np.exp(g) * (carry + np.cumsum(u[start:end] * np.exp(-g)))
        x[start:end] = blk
        carry = blk[-1]
        start = end
    return x


class ModelResult:
    """Output of :func:`run`: the level history, per-candle series and grid/book views.

    Attributes: ``n_candles``, ``time_ms``, ``params``; per candle (length n, USD):
    ``liquidations_long_usd``, ``liquidations_short_usd`` (modelled), ``added_usd``,
    ``removed_usd`` (closed-OI removal), ``faded_usd``, ``book_usd`` (total active
    notional after the candle). Levels (one per birth candle x side x tier):
    ``level_birth``, ``level_death`` (index of the candle that consumed or wiped it,
    ``n_candles`` if still active), ``level_consumed``, ``level_side``,
    ``level_leverage``, ``level_price``, ``level_notional0``.
    """

    def __init__(self, *, time_ms, params, log_factor, birth, death, consumed, side, tier, price, n0, series):
        self.time_ms = time_ms
        self.n_candles = int(time_ms.shape[0])
        self.params = params
        self._G = log_factor
        self.level_birth = birth
        self.level_death = death
        self.level_consumed = consumed
        self.level_side = side
        self.level_tier = tier
        self.level_leverage = np.asarray(params.leverage, dtype=float)[tier] if tier.size else np.empty(0)
        self.level_price = price
        self.level_notional0 = n0
        self.liquidations_long_usd = series["liq_long"]
        self.liquidations_short_usd = series["liq_short"]
        self.added_usd = series["added"]
        self.removed_usd = series["removed"]
        self.faded_usd = series["faded"]
        self.book_usd = series["book"]

    # -- views ---------------------------------------------------------------

    def _value_at(self, idx: int, mask: np.ndarray) -> np.ndarray:
        if not mask.any():
            return np.zeros(0)
        return self.level_notional0[mask] * np.exp(self._G[idx] - self._G[self.level_birth[mask]])

    def book(self, at_ms: int | None = None) -> dict[str, np.ndarray]:
        """Active levels after the last candle at or before ``at_ms`` (default: the end).

        Returns arrays ``price``, ``side`` (+1 long / -1 short), ``leverage``,
        ``notional_usd``, sorted by side (longs first) then price; empty if no candle
        is at or before ``at_ms``.
        """
        if at_ms is None:
            p = self.n_candles - 1
        else:
            p = int(np.searchsorted(self.time_ms, int(at_ms), side="right")) - 1
        mask = np.zeros(self.level_birth.shape, dtype=bool)
        if p >= 0:
            # Levels are stored in birth order, so "born by p" is a prefix.
            nb = int(np.searchsorted(self.level_birth, p, side="right"))
            mask[:nb] = self.level_death[:nb] > p
        value = self._value_at(max(p, 0), mask)
        price, side, lev = self.level_price[mask], self.level_side[mask], self.level_leverage[mask]
        order = np.lexsort((price, -side))
        return {
            "price": price[order],
            "side": side[order].astype(np.int8),
            "leverage": lev[order],
            "notional_usd": value[order],
        }

    def grid(self, col_end_ms, price_edges) -> np.ndarray:
        """Active book binned by price at each time column, shape (2, m, k), USD.

        ``[0]`` = long levels, ``[1]`` = short levels. Column ``j`` is the book after the
        last candle with ``time_ms < col_end_ms[j]`` (all zeros if none); columns may come
        in any order (sorted internally, returned in the caller's order). Bins are
        ``[edge_i, edge_{i+1})`` with the top edge included in the last bin; levels
        outside the edges are dropped.
        """
        ends = np.asarray(col_end_ms, dtype=np.int64).reshape(-1)
        edges = np.asarray(price_edges, dtype=float)
        if edges.ndim != 1 or edges.shape[0] < 2 or np.any(np.diff(edges) <= 0):
            raise ValueError("grid: price_edges must be at least 2 strictly rising values")
        if np.any(np.diff(ends) < 0):  # any order is accepted; work on sorted columns
            order = np.argsort(ends, kind="stable")
            out = np.empty((2, ends.shape[0], edges.shape[0] - 1))
            out[:, order] = self.grid(ends[order], edges)
            return out
        m, k = ends.shape[0], edges.shape[0] - 1
        out = np.zeros((m, 2 * k))
        if m == 0 or self.n_candles == 0:
            return out.reshape(m, 2, k).transpose(1, 0, 2).copy()
        p = np.searchsorted(self.time_ms, ends, side="left") - 1  # last candle before each column end
        price = self.level_price
        # Levels dead by the first column or born after the last are never seen (js >= je below):
        # dropping them first changes no sum, and most of a long history's levels are such.
        inside = (self.level_death > p[0]) & (self.level_birth <= p[-1])
        inside &= (price >= edges[0]) & (price <= edges[-1])
        b, d = self.level_birth[inside], self.level_death[inside]
        js = np.searchsorted(p, b, side="left")  # first column that sees the level
        je = np.searchsorted(p, d, side="left")  # first column after its death
        live = js < je
        js, je, b = js[live], je[live], b[live]
        n0 = self.level_notional0[inside][live]
        bins = np.clip(np.searchsorted(edges, price[inside][live], side="right") - 1, 0, k - 1)
        cell = np.where(self.level_side[inside][live] == LONG, 0, k) + bins
        gp = self._G[np.maximum(p, 0)]
        width = 2 * k
        size = m * width
        births_v = n0 * np.exp(gp[js] - self._G[b])
        births = np.bincount(js * width + cell, weights=births_v, minlength=size)
        cnt = np.bincount(js * width + cell, minlength=size).astype(np.int64)
        dmask = je < m
        je_d, b_d = je[dmask], b[dmask]
        deaths_v = n0[dmask] * np.exp(gp[je_d] - self._G[b_d])
        dflat = je_d * width + cell[dmask]
        deaths = np.bincount(dflat, weights=deaths_v, minlength=size)
        cnt -= np.bincount(dflat, minlength=size)
        net = (births - deaths).reshape(m, width)
        alive = np.cumsum(cnt.reshape(m, width), axis=0) > 0  # exact integer counts
        scale = np.ones(m)
        scale[1:] = np.exp(gp[1:] - gp[:-1])
        # Loop over time columns only (<= a few thousand): carry the book forward by the
        # removal/fade factor between columns; only G differences are exponentiated.
        acc = np.zeros(width)
        for j in range(m):
            acc *= scale[j]
            acc += net[j]
            acc[~alive[j]] = 0.0  # cancellation residue where no level is left
            np.maximum(acc, 0.0, out=acc)
            out[j] = acc
        return out.reshape(m, 2, k).transpose(1, 0, 2).copy()

    def totals(self) -> dict[str, float]:
        """USD totals over the whole run; ``added = active + consumed + removed + faded``.

        ``active`` and ``consumed`` are summed level by level; ``removed`` and ``faded``
        come from the per-candle book recurrence, so conservation is a real check.
        """
        n = self.n_candles
        if n:
            alive = self.level_death >= n
            active = float(self._value_at(n - 1, alive).sum())
        else:
            active = 0.0
        return {
            "added": float(self.level_notional0.sum()),
            "active": active,
            "consumed": float(self.liquidations_long_usd.sum() + self.liquidations_short_usd.sum()),
            "removed": float(self.removed_usd.sum()),
            "faded": float(self.faded_usd.sum()),
        }


def _long_share(params: ModelParams, open_, high, low, close, volume, taker_buy_volume) -> np.ndarray:
    n = close.shape[0]
    if params.side_split == "equal":
        return np.full(n, 0.5)
    if params.side_split == "taker":
        if volume is None or taker_buy_volume is None:
            return np.full(n, 0.5)
        vol = np.asarray(volume, dtype=float)
        tb = np.asarray(taker_buy_volume, dtype=float)
        ok = np.isfinite(vol) & np.isfinite(tb) & (vol > 0)
        share = np.full(n, 0.5)
        share[ok] = tb[ok] / vol[ok]
        return np.clip(share, 0.0, 1.0)
    rng = high - low
    body = np.divide(close - open_, rng, out=np.zeros(n), where=rng > 0)
    return np.clip(0.5 + params.candle_tilt * body, 0.0, 1.0)


def _repeats_last_known(values: np.ndarray) -> np.ndarray:
    """True where a finite value equals the last finite value before it (a carried sample)."""
    n = values.shape[0]
    finite = np.isfinite(values)
    if n < 2:
        return np.zeros(n, dtype=bool)
    last = np.maximum.accumulate(np.where(finite, np.arange(n), -1))
    prev = np.r_[-1, last[:-1]]
    return finite & (prev >= 0) & (values == values[np.maximum(prev, 0)])


def run(time_ms, open, high, low, close, oi_usd, params: ModelParams, *, volume=None, taker_buy_volume=None) -> ModelResult:  # noqa: A002 - contract name
    """Run the model over candles (oldest first) with OI aligned to them (see :func:`align_oi`).

    All arrays have one value per candle; ``time_ms`` must rise strictly. ``oi_usd``
    NaN means unknown (no change); a value equal to the last known one is a carried
    sample (no change, and in ``"base"`` mode the coins, not the USD, are carried).
    Both the forward-filled series of :func:`align_oi` and a series with OI only at
    sample candles (NaN between) give the same result. ``volume``/``taker_buy_volume``
    are only used by ``side_split="taker"``.
    """
    t = np.asarray(time_ms, dtype=np.int64)
    o, h, lo, c = (np.asarray(a, dtype=float) for a in (open, high, low, close))
    oi = np.asarray(oi_usd, dtype=float)
    n = t.shape[0]
    if any(a.shape != (n,) for a in (o, h, lo, c, oi)):
        raise ValueError("run: time_ms, open, high, low, close and oi_usd must be 1-D and equally long")
    if n > 1 and np.any(np.diff(t) <= 0):
        raise ValueError("run: time_ms must rise strictly")

    # --- dOI against the last known OI before each candle ------------------------
    # A value equal to the last known one is that sample carried forward (align_oi
    # fills every candle between samples), not a new observation: drop it so the
    # base conversion below carries coins, not USD, between samples. Dividing a
    # carried USD figure by each new close would turn every price tick into flow.
    oi = np.where(_repeats_last_known(oi), np.nan, oi)
    known = np.isfinite(oi)
    if params.oi_change == "base":
        level_oi = np.where(known & (c > 0), oi / np.where(c > 0, c, 1.0), np.nan)
    else:
        level_oi = oi
    known = np.isfinite(level_oi)
    last = np.maximum.accumulate(np.where(known, np.arange(n), -1)) if n else np.empty(0, dtype=np.int64)
    prev_idx = np.empty(n, dtype=np.int64)
    if n:
        prev_idx[0] = -1
        prev_idx[1:] = last[:-1]
    has_prev = known & (prev_idx >= 0)
    prev_val = np.where(has_prev, level_oi[np.maximum(prev_idx, 0)], np.nan)
    d_oi = np.where(has_prev, level_oi - prev_val, 0.0)
    if params.oi_change == "base":
        # USD / close and back is exact only to the last bit: an unchanged number of
        # coins must not leave dust levels of 1e-13 USD behind.
        d_oi = np.where(np.abs(d_oi) <= _COIN_ROUNDOFF * np.abs(prev_val), 0.0, d_oi)

    entry = (h + lo + c) / 3.0 if params.entry_price == "typical" else c
    add_usd = np.where(d_oi > 0, d_oi * (entry if params.oi_change == "base" else 1.0), 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        frac = np.where(d_oi < 0, np.where(prev_val > 0, -d_oi / prev_val, 1.0), 0.0)
    frac = np.clip(frac, 0.0, 1.0)
    wipe = frac >= _WIPE_FRACTION
    log_r = np.where(wipe, 0.0, np.log1p(-np.where(wipe, 0.0, frac)))  # wipes become deaths, not log(0)
    if params.fade_half_life_hours is not None and n:
        lam = math.log(2.0) / (params.fade_half_life_hours * _MS_PER_HOUR)
        log_phi = np.zeros(n)
        log_phi[1:] = -lam * np.diff(t).astype(float)
    else:
        log_phi = np.zeros(n)
    G = np.cumsum(log_r + log_phi)

    # --- levels: one per (birth candle, side, tier) ------------------------------
    share_long = _long_share(params, o, h, lo, c, volume, taker_buy_volume)
    births = np.flatnonzero(add_usd > 0)
    w = np.asarray(params.weights)
    T = w.shape[0]
    side_share = np.stack([share_long[births], 1.0 - share_long[births]], axis=1)  # (nb, 2)
    n0 = (add_usd[births, None, None] * side_share[:, :, None] * w[None, None, :]).reshape(-1)
    factors = params.price_factors()  # (2, T)
    price = (entry[births, None, None] * factors[None, :, :]).reshape(-1)
    birth = np.repeat(births, 2 * T)
    side = np.tile(np.repeat(np.array([LONG, SHORT], dtype=np.int8), T), births.shape[0])
    tier = np.tile(np.arange(T, dtype=np.int64), 2 * births.shape[0])
    keep = n0 > 0
    n0, price, birth, side, tier = n0[keep], price[keep], birth[keep], side[keep], tier[keep]

    # --- deaths: first crossing from birth + 1, or the next whole-book close -------
    cross = np.empty(birth.shape, dtype=np.int64)
    is_long = side == LONG
    cross[is_long] = _first_crossing(lo, birth[is_long] + 1, price[is_long], long=True)
    cross[~is_long] = _first_crossing(h, birth[~is_long] + 1, price[~is_long], long=False)
    wipes = np.flatnonzero(wipe)
    if wipes.size:
        nxt = np.searchsorted(wipes, birth, side="right")
        next_wipe = np.where(nxt < wipes.size, wipes[np.minimum(nxt, wipes.size - 1)], n)
    else:
        next_wipe = np.full(birth.shape, n, dtype=np.int64)
    consumed = cross <= next_wipe  # crossing is step 1 of a candle, before the close
    consumed &= cross < n
    death = np.minimum(cross, next_wipe)

    # --- per-candle series ---------------------------------------------------------
    liq_v = n0[consumed] * np.exp(G[death[consumed] - 1] - G[birth[consumed]])
    liq_d, liq_long = death[consumed], is_long[consumed]
    liq_long_usd = np.bincount(liq_d[liq_long], weights=liq_v[liq_long], minlength=n)[:n]
    liq_short_usd = np.bincount(liq_d[~liq_long], weights=liq_v[~liq_long], minlength=n)[:n]
    added = np.bincount(birth, weights=n0, minlength=n)[:n]
    consumed_t = liq_long_usd + liq_short_usd
    # Book total S_t = r_t * phi_t * (S_{t-1} - C_t) + A_t, solved block-wise.
    log_a = np.where(wipe, -np.inf, log_r + log_phi)
    book = _linear_scan(log_a, added - np.exp(np.maximum(log_a, -1e4)) * consumed_t)
    before = np.zeros(n)
    if n:
        before[1:] = book[:-1]
    exposed = np.maximum(before - consumed_t, 0.0)  # book after step 1 of each candle
    r = np.where(wipe, 0.0, np.exp(log_r))
    removed = exposed * (1.0 - r)
    faded = exposed * r * (1.0 - np.exp(log_phi))
    series = {
        "liq_long": liq_long_usd,
        "liq_short": liq_short_usd,
        "added": added,
        "removed": removed,
        "faded": faded,
        "book": book,
    }
    return ModelResult(
        time_ms=t, params=params, log_factor=G, birth=birth, death=death, consumed=consumed,
        side=side, tier=tier, price=price, n0=n0, series=series,
    )


def market_oi(candles: Mapping[str, np.ndarray], oi: Mapping[str, np.ndarray]) -> np.ndarray:
    """OI per candle from a market's stored observations (``time_ms``, ``oi_usd``, ``oi_base``); NaN where
    unknown. Where the exchange reported coins, those are used (see :func:`align_oi`).

    The one place that turns stored OI into the model's input, for the site and the backtest alike.
    """
    t = np.asarray(candles["time_ms"], dtype=np.int64)
    if not np.asarray(oi["time_ms"]).size:
        return np.full(t.shape, np.nan)
    return align_oi(t, oi["time_ms"], oi["oi_usd"], oi_base=oi.get("oi_base"), close=candles["close"])
