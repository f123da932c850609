"""Tests for ``liqmap compute`` (pipeline/commands/compute.py + pipeline/userio.py) on real files.

Inputs are written to a tmp dir: small hand-made series, and the bundled sample/
files converted to the documented input schema (JPY candles -> USD at the
provenance's median ratio; OI already in USD).
"""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from pipeline import cli, paths

JPY_PER_USD = 156.46  # sample/PROVENANCE.md: median FX_BTC_JPY / BTCUSD


def write_csv(path: Path, header, rows) -> Path:
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        w.writerows(rows)
    return path


def compute(*args) -> int:
    return cli.main(["compute", *map(str, args)])


@pytest.fixture(scope="module")
def sample_files(tmp_path_factory):
    """The bundled sample, converted to the input schema, as CSV (ISO times) and Parquet (epoch ms, base OI)."""
    d = tmp_path_factory.mktemp("sample")
    cndl = pacsv.read_csv(paths.SAMPLE_DIR / "bitflyer_FX_BTC_JPY_1m.csv")
    oi = pacsv.read_csv(paths.SAMPLE_DIR / "okx_BTC_open_interest_5m.csv")
    prices = {k: pc.divide(cndl[k].cast(pa.float64()), JPY_PER_USD) for k in ("open", "high", "low", "close")}
    iso = pc.strftime(cndl["ts"], format="%Y-%m-%dT%H:%M:%SZ")
    c_csv = pa.table({"time": iso, **prices, "volume": cndl["volume"]})
    pacsv.write_csv(c_csv, d / "candles.csv")
    pacsv.write_csv(pa.table({"time": pc.strftime(oi["ts"], format="%Y-%m-%dT%H:%M:%SZ"),
                              "open_interest_usd": oi["oi"]}), d / "oi.csv")
    ms = cndl["ts"].cast(pa.timestamp("ms", tz="UTC")).cast(pa.int64())
    pq.write_table(pa.table({"time": ms, **prices, "volume": cndl["volume"]}), d / "candles.parquet")
    # OI in base units: divide by the close the model converts USD OI at (the first candle at
    # or after the sample; the sample's candle gaps make this differ from the as-of candle),
    # so both files describe the same coins
    ct = np.asarray(ms)
    ot = np.asarray(oi["ts"].cast(pa.timestamp("ms", tz="UTC")).cast(pa.int64()))
    close = np.asarray(prices["close"])
    idx = np.minimum(np.searchsorted(ct, ot, side="left"), ct.size - 1)
    pq.write_table(pa.table({"time": oi["ts"], "open_interest": np.asarray(oi["oi"]) / close[idx]}), d / "oi.parquet")
    return d


def read_out(path: Path) -> pa.Table:
    if path.suffix == ".parquet":
        return pq.read_table(path)
    if path.suffix == ".json":
        return pa.Table.from_pylist(json.loads(path.read_text()))
    return pacsv.read_csv(path, convert_options=pacsv.ConvertOptions(column_types={"time": pa.string()}))


# ----------------------------------------------------------------------------- happy paths


@pytest.mark.parametrize("fmt", ["csv", "parquet", "json"])
def test_sample_csv_inputs_each_output_format(sample_files, tmp_path, fmt, capsys):
    out, lv = tmp_path / f"grid.{fmt}", tmp_path / f"levels.{fmt}"
    rc = compute("--candles", sample_files / "candles.csv", "--oi", sample_files / "oi.csv",
                 "--out", out, "--levels", lv, "--bins", 120, "--max-columns", 200)
    assert rc == 0, capsys.readouterr().err
    t = read_out(out)
    assert t.column_names == ["time", "price_low", "price_high", "side", "notional_usd"]
    assert t.num_rows > 100
    assert set(t["side"].to_pylist()) == {"long", "short"}
    assert min(t["notional_usd"].to_pylist()) >= 0.01
    lows, highs = np.asarray(t["price_low"]), np.asarray(t["price_high"])
    assert (highs > lows).all()
    assert len(set(t["time"].to_pylist())) <= 200
    if fmt == "parquet":
        assert t.schema.field("time").type == pa.timestamp("ms", tz="UTC")
    else:
        first = t["time"][0].as_py()
        assert first.startswith("2026-09-2") and first.endswith("Z")
    book = read_out(lv)
    assert book.column_names == ["price", "side", "leverage", "notional_usd"]
    assert set(book["leverage"].to_pylist()) <= {5.0, 10.0, 25.0, 50.0, 100.0}
    assert "wrote" in capsys.readouterr().out


def test_parquet_inputs_with_base_oi_match_csv(sample_files, tmp_path):
    a, b = tmp_path / "a.parquet", tmp_path / "b.parquet"
    assert compute("--candles", sample_files / "candles.csv", "--oi", sample_files / "oi.csv", "--out", a, "--bins", 50) == 0
    assert compute("--candles", sample_files / "candles.parquet", "--oi", sample_files / "oi.parquet", "--out", b, "--bins", 50) == 0
    ta, tb = pq.read_table(a), pq.read_table(b)
    assert ta.num_rows == tb.num_rows
    np.testing.assert_allclose(np.asarray(ta["notional_usd"]), np.asarray(tb["notional_usd"]), rtol=1e-9)


def small_series(tmp_path: Path, oi_rows=None, extra=None):
    """Flat price 100; OI 0 at t0 then 1000 at t1 (5-minute OI, 1-minute candles)."""
    t0 = 1_790_000_000_000
    rows = [[t0 + 60_000 * i, 100, 100, 100, 100, 1] + (extra[i] if extra else []) for i in range(10)]
    header = ["time", "open", "high", "low", "close", "volume"] + (["taker_buy_volume"] if extra else [])
    c = write_csv(tmp_path / "c.csv", header, rows)
    o = write_csv(tmp_path / "o.csv", ["time", "open_interest_usd"], oi_rows or [[t0, 0], [t0 + 300_000, 1000]])
    return c, o


def test_small_hand_computed_cells(tmp_path):
    c, o = small_series(tmp_path)
    out, lv = tmp_path / "g.csv", tmp_path / "l.csv"
    rc = compute("--candles", c, "--oi", o, "--out", out, "--levels", lv, "--bins", 4, "--margin", 0.2,
                 "--leverage", 10, "--weights", 1, "--entry-price", "close")
    assert rc == 0
    t = read_out(out).to_pylist()
    # edges 80, 90, 100, 110, 120; long LP 90.36 in [90,100), short LP 109.56 in [100,110)
    # levels born at candle 5 (t0 + 5 min) are visible from the column ending at t0 + 6 min
    assert {(r["side"], r["price_low"], r["price_high"]) for r in t} == {("long", 90, 100), ("short", 100, 110)}
    assert all(r["notional_usd"] == pytest.approx(500) for r in t)
    # 1-minute columns ending t0+6 .. t0+10 min (t0 = 2026-09-21T14:13:20Z): 5 columns x 2 sides
    assert len(t) == 10
    assert sorted({r["time"] for r in t}) == [f"2026-09-21T14:{m}:20Z" for m in range(19, 24)]
    book = read_out(lv).to_pylist()
    assert [(r["side"], r["leverage"]) for r in book] == [("long", 10), ("short", 10)]
    assert book[0]["price"] == pytest.approx(100 * 0.9 / 0.996)  # btc first bracket: mmr 0.4 %, cum 0


def test_taker_split_and_base_oi(tmp_path):
    c, o = small_series(tmp_path, extra=[[0.8]] * 10)
    lv = tmp_path / "l.json"
    assert compute("--candles", c, "--oi", o, "--out", tmp_path / "g.json", "--levels", lv,
                   "--side-split", "taker", "--leverage", "10", "--weights", "1") == 0
    book = json.loads(lv.read_text())
    assert [r["notional_usd"] for r in book] == pytest.approx([800, 200])


def test_real_cli_entry_point_subprocess(tmp_path):
    c, o = small_series(tmp_path)
    proc = subprocess.run([sys.executable, "-m", "pipeline.cli", "compute", "--candles", str(c), "--oi", str(o),
                           "--out", str(tmp_path / "g.parquet")], capture_output=True, text=True, cwd=paths.ROOT)
    assert proc.returncode == 0, proc.stderr
    assert pq.read_table(tmp_path / "g.parquet").num_rows > 0


# ----------------------------------------------------------------------------- errors


T0 = 1_790_000_000_000
GOOD = [[T0 + 60_000 * i, 100, 101, 99, 100, 1] for i in range(5)]
HDR = ["time", "open", "high", "low", "close", "volume"]


def run_err(tmp_path, capsys, candles_rows=None, candles_hdr=None, oi_rows=None, oi_hdr=None, extra=()):
    c = write_csv(tmp_path / "cand.csv", candles_hdr or HDR, candles_rows or GOOD)
    o = write_csv(tmp_path / "oi.csv", oi_hdr or ["time", "open_interest_usd"], oi_rows or [[T0, 10], [T0 + 120_000, 20]])
    rc = compute("--candles", c, "--oi", o, "--out", tmp_path / "x.csv", *extra)
    return rc, capsys.readouterr().err


def bad_row(i, col, value):
    rows = [list(r) for r in GOOD]
    rows[i][HDR.index(col)] = value
    return rows


@pytest.mark.parametrize(
    "kw,needles",
    [
        ({"candles_hdr": ["time", "open", "high", "close", "volume"], "candles_rows": [r[:3] + r[4:] for r in GOOD]},
         ["cand.csv", "missing column", "'low'"]),
        ({"oi_hdr": ["time", "oi"]}, ["oi.csv", "open_interest_usd", "open_interest"]),
        ({"candles_rows": [GOOD[0], GOOD[2], GOOD[1], GOOD[3]]}, ["cand.csv", "'time'", "line 4", "sorted"]),
        ({"candles_rows": [GOOD[0], GOOD[1], GOOD[1], GOOD[2]]}, ["cand.csv", "'time'", "line 4", "duplicated"]),
        ({"oi_rows": [[T0, 1], [T0, 2]]}, ["oi.csv", "line 3", "duplicated"]),
        ({"candles_rows": bad_row(2, "close", "abc")}, ["cand.csv", "'close'", "line 4", "'abc' is not a number"]),
        ({"candles_rows": bad_row(1, "volume", "")}, ["cand.csv", "'volume'", "line 3", "empty"]),
        ({"candles_rows": bad_row(3, "high", "nan")}, ["cand.csv", "'high'", "line 5", "finite"]),
        ({"candles_rows": bad_row(2, "low", 0)}, ["cand.csv", "'low'", "line 4", "not positive"]),
        ({"candles_rows": bad_row(1, "open", -5)}, ["cand.csv", "'open'", "line 3", "not positive"]),
        ({"candles_rows": bad_row(1, "high", 98)}, ["cand.csv", "'high'", "line 3", "below low"]),
        ({"oi_rows": [[T0, 10], [T0 + 60_000, "x1"]]}, ["oi.csv", "'open_interest_usd'", "line 3"]),
        ({"oi_rows": [[T0, 10], [T0 + 60_000, -1]]}, ["oi.csv", "negative"]),
        ({"candles_rows": bad_row(0, "time", 1_790_000_000)}, ["cand.csv", "'time'", "line 2", "seconds"]),
        ({"candles_rows": bad_row(0, "time", "yesterday")}, ["cand.csv", "'time'", "line 2", "ISO-8601"]),
        ({"oi_rows": [[T0 + 10**9, 1], [T0 + 2 * 10**9, 2]]}, ["oi.csv", "does not overlap"]),
        ({"extra": ("--weights", "0.5,0.5")}, ["weights"]),
        ({"extra": ("--asset", "nope")}, ["--asset", "nope"]),
    ],
)
def test_input_errors_exit_2_with_clear_message(tmp_path, capsys, kw, needles):
    rc, err = run_err(tmp_path, capsys, **kw)
    assert rc == 2
    for n in needles:
        assert n in err, (n, err)


def test_unsupported_and_missing_files(tmp_path, capsys):
    c = write_csv(tmp_path / "c.csv", HDR, GOOD)
    o = write_csv(tmp_path / "o.csv", ["time", "open_interest_usd"], [[T0, 1]])
    assert compute("--candles", c, "--oi", o, "--out", tmp_path / "g.xlsx") == 2
    assert "g.xlsx" in capsys.readouterr().err
    assert compute("--candles", tmp_path / "none.csv", "--oi", o, "--out", tmp_path / "g.csv") == 2
    assert "none.csv: file not found" in capsys.readouterr().err
    (tmp_path / "c.txt").write_text("x")
    assert compute("--candles", tmp_path / "c.txt", "--oi", o, "--out", tmp_path / "g.csv") == 2
    assert "c.txt" in capsys.readouterr().err
    (tmp_path / "empty.csv").write_text("")
    assert compute("--candles", tmp_path / "empty.csv", "--oi", o, "--out", tmp_path / "g.csv") == 2
    assert "empty" in capsys.readouterr().err


def test_parquet_error_names_row(tmp_path, capsys):
    t = pa.table({"time": [T0, T0 + 60_000, T0 + 30_000], "open": [1.0, 1, 1], "high": [1.0, 1, 1],
                  "low": [1.0, 1, 1], "close": [1.0, 1, 1], "volume": [1.0, 1, 1]})
    pq.write_table(t, tmp_path / "c.parquet")
    o = write_csv(tmp_path / "o.csv", ["time", "open_interest_usd"], [[T0, 1]])
    assert compute("--candles", tmp_path / "c.parquet", "--oi", o, "--out", tmp_path / "g.csv") == 2
    err = capsys.readouterr().err
    assert "c.parquet" in err and "row 3" in err and "sorted" in err


def test_iso_times_with_offsets_and_naive(tmp_path, capsys):
    rows = [["2026-09-21T00:00:00Z", 100, 101, 99, 100, 1], ["2026-09-21 02:01:00+02:00", 100, 101, 99, 100, 1],
            ["2026-09-21T00:02:00", 100, 101, 99, 100, 1]]
    c = write_csv(tmp_path / "c.csv", HDR, rows)
    o = write_csv(tmp_path / "o.csv", ["time", "open_interest"], [["2026-09-21T00:00:00Z", 1], ["2026-09-21T00:01:00Z", 3]])
    assert compute("--candles", c, "--oi", o, "--out", tmp_path / "g.csv", "--levels", tmp_path / "l.csv") == 0
    out = capsys.readouterr().out
    assert "2026-09-21T00:00:00Z .. 2026-09-21T00:02:00Z" in out
    assert "added 200 USD" in out  # OI 1 -> 3 BTC at close 100: 2 BTC = 200 USD opened
