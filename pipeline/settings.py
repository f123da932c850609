"""Runtime settings from the environment (``LIQMAP_*``), validated strictly.

Exchange base URLs are overridable so collectors can run against any server
that speaks the exchange's protocol (a proxy, a mirror, the test replay server).
"""

from __future__ import annotations

from functools import lru_cache

from pydantic import AnyHttpUrl, create_model
from pydantic_settings import BaseSettings, SettingsConfigDict

from pipeline.venues import VENUES


class _Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LIQMAP_", extra="ignore", frozen=True)

    data_dir: str | None = None

    def base_url(self, exchange: str) -> str:
        """Base URL for ``exchange`` without a trailing slash."""
        return str(getattr(self, f"{exchange}_base_url")).rstrip("/")


# One validated ``<venue>_base_url`` field per venue (LIQMAP_<VENUE>_BASE_URL), default from the venue table.
Settings = create_model(
    "Settings", __base__=_Settings,
    **{f"{v.name}_base_url": (AnyHttpUrl, AnyHttpUrl(v.default_url)) for v in VENUES.values()},
)


@lru_cache(maxsize=1)
def get() -> Settings:
    return Settings()
