"""Helpers shared by the collection tests: a fast client factory and a fresh store."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pipeline import settings
from pipeline.collect.http import ClientFactory, RetryPolicy
from pipeline.store.db import Store

# Small numbers so fault tests cost milliseconds, not minutes.
FAST = RetryPolicy(retries=2, backoff_base_s=0.01, backoff_max_s=0.05, jitter=0.1, retry_after_cap_s=3.0,
                   connect_timeout_s=1.0, read_timeout_s=1.0)


def factory(policy: RetryPolicy = FAST, rate_limits: bool = False) -> ClientFactory:
    # Budgets are tested on their own (test_http); against loopback they only slow the suite down.
    return ClientFactory(policy=policy, rate_limits=rate_limits)


def new_store(tmp_path: Path, name: str = "liqmap.duckdb") -> Store:
    return Store(tmp_path / name)


def counts(store: Store) -> dict[str, int]:
    return {r["table_name"]: r["n"] for r in store.query("table_counts").to_pylist()}


def per_exchange(store: Store, table: str) -> dict[str, int]:
    ext = store.query("data_extent").to_pylist()
    ds = {"raw_candles": "candles", "raw_open_interest": "open_interest", "raw_funding": "funding",
          "raw_liquidations": "liquidations"}[table]
    out: dict[str, int] = {}
    for r in ext:
        if r["dataset"] == ds:
            out[r["exchange"]] = out.get(r["exchange"], 0) + r["n"]
    return out


REGISTRY_YAML = """
assets:
  - id: btc
    name: Bitcoin
    symbol: BTC
    instruments: {binance: BTCUSDT, bybit: BTCUSDT, okx: BTC-USDT-SWAP, hyperliquid: BTC, dydx: BTC-USD}
    leverage_tiers: [{leverage: 10, weight: 0.5}, {leverage: 25, weight: 0.5}]
    mmr_tiers: [{from_usd: 0, mmr: 0.004}]
  - id: eth
    name: Ethereum
    symbol: ETH
    instruments: {binance: ETHUSDT, bybit: ETHUSDT, okx: ETH-USDT-SWAP, hyperliquid: ETH, dydx: ETH-USD}
    leverage_tiers: [{leverage: 10, weight: 0.5}, {leverage: 25, weight: 0.5}]
    mmr_tiers: [{from_usd: 0, mmr: 0.005}]
"""


def registry_for_tests():
    """BTC and ETH on all five exchanges, independent of the repository's assets.yaml."""
    from pipeline import registry

    return registry.parse(REGISTRY_YAML, source="test-assets.yaml")


@contextmanager
def as_every_exchange(monkeypatch, now_ms: int, *collectors) -> Iterator:
    """The replay server as every exchange (``LIQMAP_*_BASE_URL``), its clock the collectors' clock, and
    ``collectors`` (modules that make a ``ClientFactory``) given the fast, budget-free one."""
    import time

    from replay.server import ReplayServer

    with ReplayServer(now_ms=now_ms) as srv:
        for k, v in srv.env().items():
            monkeypatch.setenv(k, v)
        settings.get.cache_clear()
        monkeypatch.setattr(time, "time", lambda: srv.now_ms / 1000)
        for mod in collectors:
            monkeypatch.setattr(mod, "ClientFactory", lambda: factory())
        try:
            yield srv
        finally:
            settings.get.cache_clear()
