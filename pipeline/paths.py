"""Every filesystem location liqmap uses, in one place.

Code elsewhere never builds paths from strings; it asks this module. The data
directory (DuckDB cache, history partitions, snapshots) is chosen by
``--data-dir`` or ``LIQMAP_DATA_DIR``; everything else lives in the checkout.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ASSETS_YAML = ROOT / "assets.yaml"
SQL_DIR = ROOT / "sql"
SITE_SRC = ROOT / "site"
TEMPLATES = SITE_SRC / "templates"
SITE_STATIC = SITE_SRC / "static"
SITE_OVERRIDES = SITE_SRC / "overrides"
MKDOCS_YML = ROOT / "mkdocs.yml"
SAMPLE_DIR = ROOT / "sample"
BUILD_DIR = ROOT / "build"
DOCS_OUT = BUILD_DIR / "docs"  # generated Markdown + assets fed to MkDocs
SITE_OUT = BUILD_DIR / "site"  # the deployable static site

_SAFE_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,39}$")


def safe_name(name: str) -> str:
    """Return ``name`` if it is safe as one path component, else raise.

    Asset ids and exchange names become file names; anything outside
    ``[a-z0-9-]`` could escape the target directory.
    """
    if not _SAFE_NAME.match(name):
        raise ValueError(f"unsafe name for a path component: {name!r}")
    return name


@dataclass(frozen=True)
class DataPaths:
    """Locations under one data directory."""

    root: Path

    @property
    def db(self) -> Path:
        return self.root / "liqmap.duckdb"

    @property
    def history(self) -> Path:
        return self.root / "history"

    @property
    def snapshots(self) -> Path:
        return self.root / "snapshots"

    @property
    def archive_cache(self) -> Path:
        return self.root / "archive-cache"

    def ensure(self) -> "DataPaths":
        self.root.mkdir(parents=True, exist_ok=True)
        return self


def data_paths(data_dir: str | os.PathLike | None = None) -> DataPaths:
    """Resolve the data directory: explicit argument, then LIQMAP_DATA_DIR, then ./data."""
    chosen = data_dir or os.environ.get("LIQMAP_DATA_DIR") or (ROOT / "data")
    return DataPaths(Path(chosen).expanduser().resolve())
