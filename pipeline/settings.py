"""Runtime settings from the environment (``LIQMAP_*``), validated strictly.

Exchange base URLs are overridable so collectors can run against any server
that speaks the exchange's protocol (a proxy, a mirror, the test replay server).
"""

from __future__ import annotations

from functools import lru_cache

from pydantic import AnyHttpUrl
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LIQMAP_", extra="ignore", frozen=True)

    data_dir: str | None = None
    binance_base_url: AnyHttpUrl = AnyHttpUrl("https://fapi.binance.com")
    binance_archive_base_url: AnyHttpUrl = AnyHttpUrl("https://data.binance.vision")
    bybit_base_url: AnyHttpUrl = AnyHttpUrl("https://api.bybit.com")
    okx_base_url: AnyHttpUrl = AnyHttpUrl("https://www.okx.com")
    hyperliquid_base_url: AnyHttpUrl = AnyHttpUrl("https://api.hyperliquid.xyz")
    dydx_base_url: AnyHttpUrl = AnyHttpUrl("https://indexer.dydx.trade")


    def base_url(self, exchange: str) -> str:
        """Base URL for ``exchange`` without a trailing slash."""
        return str(getattr(self, f"{exchange}_base_url")).rstrip("/")


@lru_cache(maxsize=1)
def get() -> Settings:
    return Settings()
