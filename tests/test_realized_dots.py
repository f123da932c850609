"""Realized liquidations as dots (issue 13): OKX stores its liquidation orders; a build from a store
collected over real HTTP (the local replay server) draws them on the aggregate and on OKX's own map,
and not on a venue that stores none."""

from __future__ import annotations

import json

import pytest
from replay.harness import factory, registry_for_tests
from replay.server import ReplayServer

from pipeline import cli, settings

REG = registry_for_tests()


@pytest.fixture
def site(monkeypatch, tmp_path):
    from replay import series as S

    with ReplayServer(now_ms=S.ORIGIN_MS + 3 * 86_400_000) as srv:
        for k, v in srv.env().items():
            monkeypatch.setenv(k, v)
        settings.get.cache_clear()
        import pipeline.collect.live as collect_mod

        monkeypatch.setattr(collect_mod.time, "time", lambda: srv.now_ms / 1000)
        monkeypatch.setattr(collect_mod, "ClientFactory", lambda: factory())
        monkeypatch.setattr("pipeline.registry.load", lambda path=None: REG)
        out = tmp_path / "site"
        rc = cli.main(["--data-dir", str(tmp_path / "data"), "run", "--assets", "btc", "--days", "2", "--quiet",
                       "--out", str(out), "--docs", str(tmp_path / "docs")])
        settings.get.cache_clear()
    assert rc == 0
    return out / "heatmaps" / "btc"


def _dots(spec: dict) -> list:
    heat = spec["vconcat"][0]
    layers = [ly for ly in heat["layer"] if ly.get("data", {}).get("name") == "realized"]
    return spec["datasets"].get("realized", []) if layers else []


def test_stored_liquidations_are_drawn_as_dots(site):
    for name in ("heatmap-24h.json", "heatmap-24h-okx.json"):
        spec = json.loads((site / name).read_text())
        dots = _dots(spec)
        assert len(dots) > 20, name
        assert {d["s"] for d in dots} == {"long", "short"}
        assert all(d["v"] > 0 and d["p"] > 0 for d in dots)
        t = [d["t"] for d in dots]
        assert max(t) - min(t) <= 86_400_000  # inside the 24 h window
    # Binance's liquidations are not collected: no dots on its map.
    assert _dots(json.loads((site / "heatmap-24h-binance.json").read_text())) == []
