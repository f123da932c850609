"""A publish run: the sanity gate holds back an anomalous snapshot and `liqmap build` fails visibly."""

from __future__ import annotations

import datetime as dt

from pipeline.cli import main as cli_main
from pipeline.markets import SAMPLE_MARKET
from pipeline.paths import data_paths
from pipeline.snapshots import files as snapshot
from pipeline.store.db import Store


def _append_candles(db, factor: float, n: int = 30) -> None:
    """Append n one-minute sample candles after the last stored one, prices scaled by factor."""
    ex, inst = SAMPLE_MARKET.candles
    with Store(db) as s:
        last = s.arrays("market_candles", exchange=ex, instrument=inst, since_ms=0)
        t_last = int(last["time_ms"][-1])
        price_jpy = float(last["close"][-1] / last["usd_per_quote"][-1]) * factor
        ts = [dt.datetime.fromtimestamp((t_last + 60_000 * (i + 1)) / 1000, dt.UTC).replace(tzinfo=None) for i in range(n)]
        s.upsert("raw_candles", {
            "exchange": [ex] * n, "instrument": [inst] * n, "interval_s": [60] * n, "ts": ts,
            "open": [price_jpy] * n, "high": [price_jpy * 1.0005] * n, "low": [price_jpy * 0.9995] * n,
            "close": [price_jpy] * n, "volume": [1.0] * n, "taker_buy_volume": [None] * n, "quote": ["JPY"] * n,
        })


def test_gate_holds_back_price_off_by_ten_and_accepts_normal_drift(data_dir, tmp_path, capsys, monkeypatch):
    # Relative --out/--docs mean relative to the working directory (MkDocs alone would
    # read them against its config file's folder).
    monkeypatch.chdir(tmp_path)
    build = ["build", "--out", "site", "--docs", "docs"]
    out = tmp_path / "site"
    assert cli_main(build) == 0 and (out / "heatmaps" / "btc" / "index.html").exists()
    dp = data_paths()
    first = snapshot.list_snapshots(dp.snapshots, "btc")
    assert len(first) == 1 and snapshot.verify(first[0]) == []

    _append_candles(dp.db, 1.001)  # half an hour more, normal drift
    assert cli_main(build) == 0
    assert len(snapshot.list_snapshots(dp.snapshots, "btc")) == 2

    before = {f: (out / f).read_bytes() for f in _files(out)}
    _append_candles(dp.db, 10.0)  # a feed that suddenly reports ten times the price
    capsys.readouterr()
    assert cli_main(build) == 3
    err = capsys.readouterr().err
    assert "held back" in err and "btc" in err and "left as it was" in err
    assert len(snapshot.list_snapshots(dp.snapshots, "btc")) == 2  # nothing written
    # The published site is byte for byte the previous one; the held-back build is beside it to inspect.
    assert {f: (out / f).read_bytes() for f in _files(out)} == before
    assert (tmp_path / "site.held" / "index.html").exists() and not (tmp_path / "site.new").exists()


def _files(root):
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def test_shards_then_merge_equal_one_build(data_dir, tmp_path):
    whole = tmp_path / "whole"
    assert cli_main(["build", "--out", str(whole), "--docs", str(tmp_path / "whole-docs")]) == 0
    shard_docs = [tmp_path / f"shard{i}" for i in (1, 2)]
    for i, d in enumerate(shard_docs, 1):
        assert cli_main(["build", "--shard", f"{i}/2", "--docs", str(d)]) == 0
    built = [sorted(p.name for p in (d / "heatmaps").glob("*.view.json")) for d in shard_docs]
    assert built == [["btc.view.json", "sol.view.json"], ["eth.view.json", "xrp.view.json"]]
    merged = tmp_path / "merged"
    assert cli_main(["build", "--merge", *map(str, shard_docs), "--docs", str(tmp_path / "mdocs"), "--out", str(merged)]) == 0
    assert _files(merged) == _files(whole)
    home = (merged / "index.html").read_text()
    assert "Bitcoin" in home and "no data yet" in home


def test_merge_refuses_a_missing_shard(data_dir, tmp_path, capsys):
    d = tmp_path / "shard1"
    assert cli_main(["build", "--shard", "1/2", "--docs", str(d)]) == 0
    assert cli_main(["build", "--merge", str(d), "--docs", str(tmp_path / "m"), "--out", str(tmp_path / "o")]) == 1
    assert "no shard built eth, xrp" in capsys.readouterr().err
    assert cli_main(["build", "--shard", "3/2"]) == 1
