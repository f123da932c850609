"""Shared fixtures. The network guard lives in pyproject (pytest-socket: loopback only)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pipeline import paths


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch) -> Path:
    """An empty data directory, selected through the environment like a user would."""
    d = tmp_path / "data"
    monkeypatch.setenv("LIQMAP_DATA_DIR", str(d))
    return d


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return paths.ROOT


def pytest_report_header(config):
    return f"liqmap tests; LIQMAP_DATA_DIR={os.environ.get('LIQMAP_DATA_DIR', '(unset)')}"
