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


@pytest.fixture(scope="session")
def browser():
    """Debian's headless Chromium driven by playwright (skips where either is missing)."""
    from browserkit import CHROMIUM, LAUNCH_ARGS

    sync_api = pytest.importorskip("playwright.sync_api")
    if not Path(CHROMIUM).exists():
        pytest.skip("chromium not installed")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS, headless=True)
        yield b
        b.close()


def pytest_report_header(config):
    return f"liqmap tests; LIQMAP_DATA_DIR={os.environ.get('LIQMAP_DATA_DIR', '(unset)')}"
