"""The publish workflow's first-run backfill (issue 11 item 4): `liqmap backfill --since 365d --max-days N`
against the replay server's archive loads N days per run backwards from the earliest stored Binance day,
continues on the next run, stops at --since, and lands in the compacted monthly history."""

from __future__ import annotations

import datetime as dt

import pytest
import yaml
from replay import series as S
from replay.harness import as_every_exchange

from pipeline import cli, paths
from pipeline.store import compaction, history
from pipeline.store.db import Store

NOW = S.ORIGIN_MS + 40 * 86_400_000


@pytest.fixture
def replay(monkeypatch):
    import pipeline.collect.backfill as backfill_mod

    with as_every_exchange(monkeypatch, NOW, backfill_mod) as srv:
        yield srv


def _days(data) -> list[dt.date]:
    with Store(paths.data_paths(data).db, read_only=True) as s:
        rows = s.con.execute("SELECT DISTINCT CAST(ts AS DATE) FROM raw_candles WHERE exchange = 'binance' "
                             "AND instrument = 'BTCUSDT' ORDER BY 1").fetchall()
    return [r[0] for r in rows]


def test_the_workflow_backfill_step_is_bounded_and_continues(replay, tmp_path, capsys):
    step = next(s for s in yaml.safe_load((paths.ROOT / ".github/workflows/publish.yml").read_text())["jobs"]
                ["collect"]["steps"] if s.get("name", "").startswith("Backfill"))
    assert step["timeout-minutes"] <= 30 and step["continue-on-error"] is True  # bounded; never blocks a run
    line = step["run"].strip().split()
    assert line[:2] == ["liqmap", "backfill"] and "--max-days" in line and line[line.index("--since") + 1] == "365d"

    data = tmp_path / "data"
    yesterday = dt.datetime.fromtimestamp(NOW / 1000, dt.UTC).date() - dt.timedelta(days=1)
    args = ["--data-dir", str(data), "backfill", "--since", "8d", "--max-days", "3", "--assets", "btc", "--quiet"]
    assert cli.main(args) == 0
    assert _days(data) == [yesterday - dt.timedelta(days=i) for i in (2, 1, 0)]
    assert cli.main(args) == 0  # the next run continues backwards
    assert _days(data)[0] == yesterday - dt.timedelta(days=5) and len(_days(data)) == 6
    assert cli.main(args) == 0
    assert _days(data)[0] == yesterday - dt.timedelta(days=8)  # stops at --since
    capsys.readouterr()
    assert cli.main(args) == 0
    assert "nothing to load" in capsys.readouterr().out and len(_days(data)) == 9

    # Into the history: one run file now, the closed months' files after compaction.
    with Store(paths.data_paths(data).db, read_only=True) as s:
        rep = history.export(s, paths.data_paths(data).history, now=dt.datetime(2099, 1, 1, tzinfo=dt.UTC))
        assert rep.new_rows["raw_candles"] == 9 * 288 and rep.new_rows["raw_open_interest"] >= 9 * 288
    hist = paths.data_paths(data).history
    compaction.compact(hist, now=dt.datetime(2099, 1, 2, tzinfo=dt.UTC))
    months = sorted(p.parent.name for p in (hist / "raw_candles").rglob("part.parquet"))
    assert months and all(m.startswith("month=") for m in months)
