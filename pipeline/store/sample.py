"""The bundled real sample (``sample/``): loaded into an empty store so a fresh clone builds offline.

Candles are bitFlyer FX_BTC_JPY (JPY); open interest is OKX's total BTC open
interest (USD). They are stored unchanged (prices stay in JPY) and converted to
USD at query time through ``raw_fx_rates`` at the ratio PROVENANCE.md documents.
"""

from __future__ import annotations

import datetime as dt

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv

from pipeline import paths
from pipeline.markets import JPY_PER_USD, SAMPLE_MARKET
from pipeline.store.db import Store

CANDLES_FILE = paths.SAMPLE_DIR / "bitflyer_FX_BTC_JPY_1m.csv"
OI_FILE = paths.SAMPLE_DIR / "okx_BTC_open_interest_5m.csv"
RATE_SOURCE = "sample/PROVENANCE.md: median FX_BTC_JPY/BTCUSD over 26 matched minutes, Sept 2026"


def _read(path) -> pa.Table:
    opts = pcsv.ConvertOptions(column_types={"ts": pa.timestamp("us", tz="UTC")})
    tbl = pcsv.read_csv(path, convert_options=opts)
    # Store naive UTC timestamps, like every other loader.
    return tbl.set_column(0, "ts", pc.cast(tbl.column("ts"), pa.timestamp("us")))


def load(store: Store, run_id: str = "sample") -> dict[str, int]:
    """Load the sample into ``store`` (idempotent). Returns rows per table."""
    started = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    c = _read(CANDLES_FILE)
    n = c.num_rows
    ex, inst = SAMPLE_MARKET.candles
    candles = {
        "exchange": [ex] * n,
        "instrument": [inst] * n,
        "interval_s": [60] * n,
        "ts": c.column("ts"),
        "open": c.column("open"),
        "high": c.column("high"),
        "low": c.column("low"),
        "close": c.column("close"),
        "volume": c.column("volume"),
        "taker_buy_volume": pa.nulls(n, pa.float64()),
        "quote": ["JPY"] * n,
    }
    o = _read(OI_FILE)
    m = o.num_rows
    oex, oinst = SAMPLE_MARKET.oi
    oi = {
        "exchange": [oex] * m,
        "instrument": [oinst] * m,
        "ts": o.column("ts"),
        "oi_base": pa.nulls(m, pa.float64()),
        "oi_usd": o.column("oi"),
    }
    out = {
        "raw_fx_rates": store.upsert(
            "raw_fx_rates", {"quote": ["JPY"], "usd_per_unit": [1.0 / JPY_PER_USD], "source": [RATE_SOURCE]}
        ).received,
        "raw_candles": store.upsert("raw_candles", candles).received,
        "raw_open_interest": store.upsert("raw_open_interest", oi).received,
    }
    finished = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    for dataset, (e, i), rows in (("candles", SAMPLE_MARKET.candles, n), ("open_interest", SAMPLE_MARKET.oi, m)):
        store.upsert(
            "raw_source_runs",
            {
                "run_id": [run_id], "asset": [SAMPLE_MARKET.asset], "exchange": [e], "instrument": [i],
                "dataset": [dataset], "started_at": [started], "finished_at": [finished], "status": ["ok"],
                "requests": [0], "rows_received": [rows], "rows_stored": [rows], "rows_rejected": [0],
                "message": ["bundled sample (sample/PROVENANCE.md)"],
            },
        )
    return out


def load_if_empty(store: Store) -> bool:
    """Load the sample when the store has no market data yet; return whether it did."""
    if not store.is_empty():
        return False
    load(store)
    return True
