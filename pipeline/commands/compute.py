"""``liqmap compute``: run the liquidation model on your own candle and open-interest files.

Reads candles + OI (CSV or Parquet, see pipeline/store/userfiles.py for the schema), runs
pipeline.model, and writes the heatmap grid as one row per non-empty cell
``time, price_low, price_high, side, notional_usd`` (.csv, .parquet or .json by
extension). ``time`` is the end of the grid column: the estimated book as it stood
at that instant. ``--levels FILE`` also writes the final level book
``price, side, leverage, notional_usd``. Exit code 2 on any input problem.
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

from pipeline import registry

# Cells below one cent are float dust (faded/removed almost to nothing), not "non-empty".
MIN_CELL_USD = 0.01


def _defaults_text(asset_id: str = "btc") -> dict[str, str]:
    """Help-text defaults, read from assets.yaml; never fails (the CLI must start even if it is broken)."""
    try:
        reg = registry.load()
        a = reg.get(asset_id)
        s = reg.settings_for(a)
        return {
            "leverage": ",".join(f"{t.leverage:g}" for t in a.leverage_tiers),
            "weights": ",".join(f"{t.weight:g}" for t in a.leverage_tiers),
            "side_split": s.side_split,
            "entry_price": s.entry_price,
            "fade": "none" if s.fade_half_life_hours is None else f"{s.fade_half_life_hours:g}",
            "notional": f"{s.position_notional_usd:g}",
            "oi_change": s.oi_change,
            "candle_tilt": f"{s.candle_tilt:g}",
        }
    except Exception:  # noqa: BLE001 - help text only
        return dict.fromkeys(("leverage", "weights", "side_split", "entry_price", "fade", "notional", "oi_change",
                              "candle_tilt"), "from assets.yaml")


def _floats(text: str) -> tuple[float, ...]:
    import argparse

    try:
        vals = tuple(float(x) for x in text.replace(" ", "").split(",") if x)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected comma-separated numbers, e.g. 5,10,25") from None
    if not vals:
        raise argparse.ArgumentTypeError("expected at least one number")
    return vals


def _fade(text: str) -> float:
    """Hours, or 0.0 for 'none' (None is kept for 'option not given')."""
    import argparse

    if text.strip().lower() in ("none", "off", "0"):
        return 0.0
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected hours or 'none'") from None
    if not v > 0:
        raise argparse.ArgumentTypeError("must be positive (or 'none')")
    return v


def configure(p) -> None:
    d = _defaults_text()
    io = p.add_argument_group("files")
    io.add_argument("--candles", type=Path, required=True, metavar="FILE",
                    help="candles (.csv/.parquet): time, open, high, low, close, volume[, taker_buy_volume]; "
                         "time = ISO-8601 UTC or epoch milliseconds")
    io.add_argument("--oi", type=Path, required=True, metavar="FILE",
                    help="open interest (.csv/.parquet): time and open_interest_usd (USD) or open_interest "
                         "(base units, used as given: exact); any interval")
    io.add_argument("--out", type=Path, required=True, metavar="FILE",
                    help="grid output (.csv/.parquet/.json): time, price_low, price_high, side, notional_usd")
    io.add_argument("--levels", type=Path, metavar="FILE",
                    help="also write the final level book (.csv/.parquet/.json): price, side, leverage, notional_usd")
    g = p.add_argument_group("grid")
    g.add_argument("--bins", type=int, default=400, help="price bins (default: 400)")
    g.add_argument("--margin", type=float, default=0.10,
                   help="price range = data low*(1-margin) .. high*(1+margin) (default: 0.10)")
    g.add_argument("--max-columns", type=int, default=1000,
                   help="at most this many time columns; each spans a whole number of candles (default: 1000)")
    m = p.add_argument_group("model (defaults: the --asset entry of assets.yaml)")
    m.add_argument("--asset", default="btc", help="registry entry supplying defaults and margin tiers (default: btc)")
    m.add_argument("--leverage", type=_floats, metavar="L1,L2,..", help=f"leverage tiers (default: {d['leverage']})")
    m.add_argument("--weights", type=_floats, metavar="W1,W2,..",
                   help=f"share of new notional per tier, sums to 1 (default: {d['weights']})")
    m.add_argument("--side-split", choices=("equal", "taker", "candle"),
                   help="long/short split of new OI: equal 50/50; taker = taker_buy_volume/volume; "
                        f"candle = 0.5 + tilt*(close-open)/(high-low) (default: {d['side_split']})")
    m.add_argument("--entry-price", choices=("close", "typical"),
                   help=f"entry of new positions; typical = (high+low+close)/3 (default: {d['entry_price']})")
    m.add_argument("--fade-half-life-hours", type=_fade, metavar="HOURS",
                   help=f"levels halve per this age; 'none' = never (default: {d['fade']})")
    m.add_argument("--position-notional", type=float, metavar="USD",
                   help=f"assumed position size, picks the margin bracket (default: {d['notional']})")
    m.add_argument("--oi-change", choices=("usd", "base"),
                   help="measure OI change in base units (coins, carried between OI samples, valued at entry) "
                        f"or in USD (default: {d['oi_change']})")
    m.add_argument("--candle-tilt", type=float, metavar="TILT",
                   help=f"strength of --side-split candle, within [0, 0.5] (default: {d['candle_tilt']})")


def _params(args):
    from pipeline.model import book as model

    reg = registry.load()
    try:
        asset = reg.get(args.asset)
    except KeyError:
        raise ValueError(f"--asset: {args.asset!r} is not in assets.yaml (known: {', '.join(a.id for a in reg.assets)})") from None
    base = model.ModelParams.from_asset(asset, reg.settings_for(asset))
    changes = {}
    if args.leverage is not None:
        changes["leverage"] = args.leverage
        if args.weights is None:
            if len(args.leverage) != len(base.weights):
                raise ValueError("--leverage: give --weights too when the number of tiers changes")
    if args.weights is not None:
        changes["weights"] = args.weights
    # Only what the user passed overrides the registry: one source of model defaults.
    for opt, field in (("side_split", "side_split"), ("entry_price", "entry_price"),
                       ("position_notional", "position_notional_usd"), ("oi_change", "oi_change"),
                       ("candle_tilt", "candle_tilt")):
        if getattr(args, opt) is not None:
            changes[field] = getattr(args, opt)
    if args.fade_half_life_hours is not None:
        changes["fade_half_life_hours"] = args.fade_half_life_hours or None
    return dataclasses.replace(base, **changes)


def run(args) -> int:
    import numpy as np

    from pipeline.model import book as model
    from pipeline.store import userfiles as userio

    def fail(msg: str) -> int:
        print(f"liqmap compute: {msg}", file=sys.stderr)
        return 2

    if args.bins < 1:
        return fail("--bins must be at least 1")
    if args.max_columns < 1:
        return fail("--max-columns must be at least 1")
    if not 0 <= args.margin < 1:
        return fail("--margin must be within [0, 1)")
    try:
        userio.check_output_path(args.out)
        if args.levels:
            userio.check_output_path(args.levels)
        params = _params(args)
        candles = userio.read_candles(args.candles)
        oi = userio.read_open_interest(args.oi, candles)
    except (userio.InputError, registry.RegistryError, ValueError) as exc:
        return fail(str(exc))

    c = candles
    oi_per_candle = model.align_oi(c.time_ms, oi.time_ms, oi.oi_usd, oi_base=oi.oi_base, close=c.close)
    result = model.run(c.time_ms, c.open, c.high, c.low, c.close, oi_per_candle, params,
                       volume=c.volume, taker_buy_volume=c.taker_buy_volume)
    cols = model.time_columns(c.time_ms[0], c.time_ms[-1], args.max_columns, c.interval_ms)
    lo, hi = float(c.low.min()) * (1 - args.margin), float(c.high.max()) * (1 + args.margin)
    if hi <= lo:
        hi = lo * 1.01 + 1e-9  # a single flat price: give the grid some height
    edges = np.linspace(lo, hi, args.bins + 1)
    grid = result.grid(cols, edges)  # (2, m, k)
    side_i, col_i, bin_i = np.nonzero(grid >= MIN_CELL_USD)
    try:
        n_rows = userio.write_rows(args.out, {
            "time": cols[col_i],
            "price_low": edges[bin_i],
            "price_high": edges[bin_i + 1],
            "side": np.where(side_i == 0, "long", "short").tolist(),
            "notional_usd": grid[side_i, col_i, bin_i],
        }, time_column="time")
        if args.levels:
            book = result.book()
            n_levels = userio.write_rows(args.levels, {
                "price": book["price"],
                "side": np.where(book["side"] == model.LONG, "long", "short").tolist(),
                "leverage": book["leverage"],
                "notional_usd": book["notional_usd"],
            })
    except OSError as exc:
        return fail(f"cannot write output: {exc}")

    tot = result.totals()
    print(f"candles: {c.path} ({c.time_ms.size} rows, every {c.interval_ms // 1000} s, "
          f"{userio.iso_times(c.time_ms[:1])[0]} .. {userio.iso_times(c.time_ms[-1:])[0]})")
    print(f"open interest: {oi.path} ({oi.time_ms.size} rows, column {oi.source_column})")
    print("model: " + ", ".join(f"{k} {v:,.0f} USD" for k, v in tot.items()))
    print(f"wrote {args.out}: {n_rows} cells ({cols.size} columns x {args.bins} bins, "
          f"price {lo:,.2f} .. {hi:,.2f})")
    if args.levels:
        print(f"wrote {args.levels}: {n_levels} levels")
    return 0

