"""The data branch's git history is bounded: the publish workflow's squash step archives the whole branch as a
bundle (a release asset, here a stand-in `gh`), then replaces it by one commit with the tip's files. A squash keeps
the tip, the bundle holds every earlier commit, and a branch that moved is never squashed."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from test_publish_dry_run import Actions, _git

pytestmark = pytest.mark.skipif(subprocess.run(["which", "git"], capture_output=True).returncode != 0,
                                reason="needs git")


@pytest.fixture
def actions(tmp_path) -> Actions:
    fake = tmp_path / "bin"
    fake.mkdir()
    releases = tmp_path / "releases"
    releases.mkdir()
    # `gh release view|create|upload`: the release asset store of the stand-in repository.
    (fake / "gh").write_text(f"""#!/usr/bin/env bash
set -e
case "$1 $2" in
  "release view") [ -e {releases}/.created ] ;;
  "release create") touch {releases}/.created ;;
  "release upload") [ -e {releases}/.created ] && cp "$4" {releases}/ ;;
  *) exit 2 ;;
esac
""")
    (fake / "gh").chmod(0o755)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GIT_", "GITHUB_", "GH_"))}
    env.update(HOME=str(tmp_path / "home"), GIT_CONFIG_NOSYSTEM="1", PATH=f"{fake}:{env['PATH']}")
    return Actions(tmp_path, env)


def _save(actions: Actions, name: str, files: dict[str, bytes]) -> None:
    job = actions.runner(name)
    job.sh("collect", "Check out the data branch")
    for rel, data in files.items():
        (job.data / rel).parent.mkdir(parents=True, exist_ok=True)
        (job.data / rel).write_bytes(data)
    job.sh("save-data", "Commit history and snapshots")


def _branch(actions: Actions, *args) -> str:
    return _git("--git-dir", str(actions.origin), *args, env=actions.base_env)


def test_a_squash_keeps_the_tip_and_archives_every_commit(actions: Actions, tmp_path: Path):
    for i in range(4):
        _save(actions, f"run-{i}", {f"history/raw_candles/run=2026091{i}T000000000000Z/part.parquet": b"x" * (i + 1),
                                    f"snapshots/btc/2026-09-1{i}T0000Z/manifest.json": b"{}"})
    tip = _branch(actions, "rev-parse", "data").strip()
    tip_files = actions.data_branch()
    assert int(_branch(actions, "rev-list", "--count", "data")) == 4

    job = actions.runner("squash")
    job.sh("collect", "Check out the data branch")
    out = job.sh("save-data", "Squash the data branch")
    assert "squashed data to one commit" in out
    # The tip: the same files (plus the date of the squash); one commit.
    after = actions.data_branch()
    assert {k: v for k, v in after.items() if k != "SQUASHED_AT"} == tip_files and "SQUASHED_AT" in after
    assert int(_branch(actions, "rev-list", "--count", "data")) == 1
    # The archive: a bundle holding the old tip and all four commits.
    [bundle] = sorted((tmp_path / "releases").glob("*.bundle"))
    clone = tmp_path / "from-bundle"
    _git("clone", "-q", "--branch", "data", str(bundle), str(clone), env=actions.base_env)
    assert _git("rev-parse", "HEAD", cwd=clone, env=actions.base_env).strip() == tip
    assert int(_git("rev-list", "--count", "HEAD", cwd=clone, env=actions.base_env)) == 4

    # Not due again until the policy's days have passed; later runs append to the squashed branch.
    again = actions.runner("squash-again")
    again.sh("collect", "Check out the data branch")
    assert "nothing to archive" in again.sh("save-data", "Squash the data branch")
    _save(actions, "run-5", {"history/raw_candles/run=20260920T000000000000Z/part.parquet": b"y"})
    assert int(_branch(actions, "rev-list", "--count", "data")) == 2


def test_a_squash_refuses_a_bundle_without_the_tip(actions: Actions, tmp_path: Path):
    _save(actions, "a", {"history/x.parquet": b"x"})
    job = actions.runner("b")
    job.sh("collect", "Check out the data branch")
    stale = tmp_path / "stale.bundle"
    _git("-C", str(job.data), "bundle", "create", "-q", str(stale), "data", env=actions.base_env)
    _save(actions, "c", {"history/y.parquet": b"y"})  # the branch moved after the bundle was made
    job2 = actions.runner("d")
    job2.sh("collect", "Check out the data branch")
    res = subprocess.run(["bash", str(job2.ws / "scripts" / "data-branch"), "squash", str(job2.data), str(stale)],
                         cwd=job2.ws, env=actions.base_env, capture_output=True, text=True)
    assert res.returncode == 1 and "does not hold the tip" in res.stderr
    assert int(_branch(actions, "rev-list", "--count", "data")) == 2
