"""A local dry run of ``.github/workflows/publish.yml``: its jobs, as the workflow spells them, end to end.

Each job runs in its own "runner" directory (a clone of a local stand-in for the
GitHub repository, or a bare workspace), and files move between jobs only as
artifacts, the way ``actions/upload-artifact`` / ``download-artifact`` move them
(hidden files left out, ``pattern`` and ``merge-multiple`` honoured). The steps'
own text is executed: ``liqmap ...`` lines through ``pipeline.cli.main`` in-process,
with ``${{ ... }}`` expressions filled in; shell steps (``scripts/data-branch``,
the snapshot staging) through bash. Exchanges are the replay server in
``tests/replay`` (real HTTP on loopback); the registry is the repository's
``assets.yaml``: four assets, of which only btc and eth are collected, so sol and
xrp get "no data yet" pages.

Two runs at the same server time: the first publishes a site with snapshots and
pushes history and snapshots to the ``data`` branch; the second restores that
branch on fresh runners (same store, row for row), changes no market-data
partition and writes no new snapshot.
"""

from __future__ import annotations

import fnmatch
import hashlib
import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml
from replay import series as S
from replay.harness import as_every_exchange, counts

from pipeline import cli, paths
from pipeline.snapshots import files as snapshot
from pipeline.store.db import Store

WORKFLOW = yaml.safe_load((paths.ROOT / ".github/workflows/publish.yml").read_text(encoding="utf-8"))
NOW = S.ORIGIN_MS + 2 * 86_400_000 + 6 * 3_600_000  # two and a quarter days of replayed data
REPO = "example/liqmap"  # GITHUB_REPOSITORY of the stand-in
MARKET_TABLES = ("raw_candles", "raw_open_interest", "raw_funding", "raw_liquidations", "raw_fx_rates")
SHARDS = WORKFLOW["jobs"]["build"]["strategy"]["matrix"]["shard"]

pytestmark = pytest.mark.skipif(shutil.which("git") is None or shutil.which("bash") is None,
                                reason="the publish dry run needs git and bash")


# -- a small stand-in for the GitHub Actions runner ---------------------------------------------------
def _git(*args, cwd=None, env=None) -> str:
    res = subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, text=True)
    assert res.returncode == 0, f"git {' '.join(args)}: {res.stderr}"
    return res.stdout


def _digests(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def _visible_files(src: Path) -> list[Path]:
    if src.is_file():
        return [] if src.name.startswith(".") else [src]
    if not src.is_dir():
        return []
    return [p for p in sorted(src.rglob("*"))
            if p.is_file() and not any(part.startswith(".") for part in p.relative_to(src).parts)]


class Actions:
    """Runs a job's steps in a workspace; artifacts live in one folder per name."""

    def __init__(self, tmp: Path, base_env: dict[str, str]):
        self.tmp = tmp
        self.artifacts = tmp / "artifacts"  # of the current run
        self.origin = tmp / "origin.git"
        self.base_env = base_env
        # The GitHub repository: the main branch holds the scripts the workflow calls.
        seed = tmp / "seed"
        _git("init", "-q", "-b", "main", str(seed), env=base_env)
        (seed / "scripts").mkdir()
        shutil.copy2(paths.ROOT / "scripts" / "data-branch", seed / "scripts" / "data-branch")
        _git("add", "-A", cwd=seed, env=base_env)
        _git("-c", "user.name=t", "-c", "user.email=t@example.org", "commit", "-q", "-m", "main", cwd=seed, env=base_env)
        _git("init", "-q", "--bare", "-b", "main", str(self.origin), env=base_env)
        _git("push", "-q", str(self.origin), "main", cwd=seed, env=base_env)

    def runner(self, name: str, checkout: bool = True) -> "Job":
        ws = self.tmp / "runners" / name / "workspace"
        if checkout:  # actions/checkout with persist-credentials: false
            ws.parent.mkdir(parents=True)
            _git("clone", "-q", str(self.origin), str(ws), env=self.base_env)
        else:
            ws.mkdir(parents=True)
        return Job(self, ws)

    def data_branch(self) -> dict[str, str]:
        """The `data` branch of the stand-in repository: path -> sha256 (empty if it does not exist)."""
        g = ["--git-dir", str(self.origin)]
        if not _git(*g, "branch", "--list", "data", env=self.base_env).strip():
            return {}
        names = _git(*g, "ls-tree", "-r", "--name-only", "data", env=self.base_env).split()
        return {n: hashlib.sha256(subprocess.run(["git", *g, "show", f"data:{n}"], capture_output=True,
                                                 env=self.base_env, check=True).stdout).hexdigest() for n in names}


class Job:
    def __init__(self, actions: Actions, ws: Path):
        self.actions, self.ws = actions, ws
        self.temp = ws.parent / "temp"
        self.temp.mkdir(exist_ok=True)
        self.data = ws / "data"  # LIQMAP_DATA_DIR: ${{ github.workspace }}/data
        self.values: dict[str, str] = {"env.LIQMAP_DATA_DIR": str(self.data), "runner.temp": str(self.temp),
                                       "github.token": ""}
        self.outputs: dict[str, str] = {}

    def fill(self, text: str) -> str:
        """Replace ${{ ... }} like the runner; an expression the dry run does not know fails the test."""
        def value(m):
            key = m.group(1).strip()
            assert key in self.values, f"the dry run has no value for ${{{{ {key} }}}}"
            return str(self.values[key])
        return re.sub(r"\$\{\{(.*?)\}\}", value, text)

    def step(self, job: str, name: str) -> dict:
        found = [s for s in WORKFLOW["jobs"][job]["steps"] if s.get("name", "").startswith(name)]
        assert len(found) == 1, f"{job}: no single step named {name!r}..."
        return found[0]

    def path(self, text: str) -> Path:
        p = Path(self.fill(text))
        return p if p.is_absolute() else self.ws / p

    def sh(self, job: str, name: str) -> str:
        """A shell step, as GitHub runs it: bash -eo pipefail, the step's env and working-directory."""
        st = self.step(job, name)
        out = self.temp / "github_output"
        out.write_text("")
        env = {**self.actions.base_env, "LIQMAP_DATA_DIR": str(self.data), "RUNNER_TEMP": str(self.temp),
               "GITHUB_OUTPUT": str(out), "GITHUB_REPOSITORY": REPO, "GITHUB_REPOSITORY_OWNER": REPO.split("/")[0],
               "GITHUB_RUN_ID": "1",
               **{k: self.fill(str(v)) for k, v in {**WORKFLOW["jobs"][job].get("env", {}), **st.get("env", {})}.items()}}
        cwd = self.path(st["working-directory"]) if "working-directory" in st else self.ws
        res = subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", self.fill(st["run"])],
                             cwd=cwd, env=env, capture_output=True, text=True)
        assert res.returncode == 0, f"{job} / {st['name']}:\n{res.stdout}\n{res.stderr}"
        if "id" in st:
            self.outputs.update({f"steps.{st['id']}.outputs.{k}": v for k, v in
                                 (ln.split("=", 1) for ln in out.read_text().splitlines() if "=" in ln)})
        return res.stdout

    def liqmap(self, job: str, name: str, *extra: str, monkeypatch) -> int:
        """A one-line `liqmap ...` step through pipeline.cli.main, in the workspace, globs expanded like bash."""
        st = self.step(job, name)
        for k, v in {**WORKFLOW["jobs"][job].get("env", {}), **st.get("env", {})}.items():
            monkeypatch.setenv(k, self.fill(str(v)))
        line = self.fill(st["run"]).strip()
        assert "\n" not in line and line.startswith("liqmap "), line
        args = []
        for a in shlex.split(line)[1:]:
            hits = sorted(str(p.relative_to(self.ws)) for p in self.ws.glob(a)) if "*" in a else []
            args += hits or [a]
        monkeypatch.chdir(self.ws)
        monkeypatch.setenv("LIQMAP_DATA_DIR", str(self.data))
        # On a runner the checkout is the workspace: liqmap's default build dirs are in it, not in this repo.
        monkeypatch.setattr(paths, "BUILD_DIR", self.ws / "build")
        monkeypatch.setattr(paths, "DOCS_OUT", self.ws / "build" / "docs")
        monkeypatch.setattr(paths, "SITE_OUT", self.ws / "build" / "site")
        return cli.main([*args, *extra])

    def upload(self, job: str, name: str) -> None:
        w = self.step(job, name)["with"]
        src, art = self.path(w["path"]), self.fill(w["name"])
        files = _visible_files(src)  # upload-artifact leaves hidden files out
        assert files or w.get("if-no-files-found") in ("ignore", "warn"), f"{job} / {name}: nothing to upload"
        root = src if src.is_dir() else src.parent  # a single file lands at the artifact's root
        for f in files:
            dst = self.actions.artifacts / art / f.relative_to(root)
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(f, dst)  # artifacts keep content, not modes

    def download(self, job: str, name: str) -> None:
        w = self.step(job, name)["with"]
        dest = self.path(w["path"])
        have = sorted(p.name for p in self.actions.artifacts.iterdir()) if self.actions.artifacts.is_dir() else []
        if "name" in w:
            assert w["name"] in have, f"no artifact {w['name']}"
            targets = [(w["name"], dest)]
        else:
            targets = [(n, dest if w.get("merge-multiple") else dest / n) for n in have if fnmatch.fnmatch(n, w["pattern"])]
        for art, target in targets:
            for f in _visible_files(self.actions.artifacts / art):
                dst = target / f.relative_to(self.actions.artifacts / art)
                dst.parent.mkdir(parents=True, exist_ok=True)
                if dst.exists():
                    dst.chmod(0o644)
                shutil.copyfile(f, dst)


@pytest.fixture
def replay(monkeypatch):
    """The replay server as every exchange, its clock the collectors' clock."""
    import pipeline.collect.live as collect_mod

    with as_every_exchange(monkeypatch, NOW, collect_mod) as srv:
        yield srv


@pytest.fixture
def actions(replay, tmp_path):
    """The stand-in repository and runners; git sees neither the user's nor the system's configuration."""
    base_env = {k: v for k, v in os.environ.items() if not k.startswith(("GIT_", "GITHUB_", "GH_"))}
    base_env.update(HOME=str(tmp_path / "home"), GIT_CONFIG_NOSYSTEM="1")
    return Actions(tmp_path, base_env)


def publish_run(actions: Actions, run: int, monkeypatch, capsys) -> dict:
    """One run of the workflow: collect -> build shards -> merge -> save-data. Returns what the test inspects."""
    mp = monkeypatch
    actions.artifacts = actions.tmp / f"artifacts-{run}"  # artifacts belong to one workflow run
    # -- collect ---------------------------------------------------------------------------------
    c = actions.runner(f"{run}-collect")
    c.sh("collect", "Site address")
    site_url = c.outputs["steps.site-url.outputs.url"]
    c.sh("collect", "Check out the data branch")
    data_sha = c.outputs["steps.data-branch.outputs.sha"]
    assert c.liqmap("collect", "Rebuild the store", monkeypatch=mp) == 0
    restored = counts_of(c.data)
    capsys.readouterr()
    # The workflow collects every asset; the replay server knows BTC and ETH.
    assert c.liqmap("collect", "Collect new exchange data", "--assets", "btc,eth", monkeypatch=mp) == 0
    # The archive backfill step runs against the replay archive in tests/test_backfill_first_run.py (here it would
    # add days of Binance data to every run and blur what this test compares).
    assert c.liqmap("collect", "Export the history", monkeypatch=mp) == 0
    exported = [ln.split(" ", 1)[1] for ln in capsys.readouterr().out.splitlines() if ln.startswith("changed ")]
    assert c.liqmap("collect", "Thin snapshots", monkeypatch=mp) == 0
    for what in ("store", "history", "published snapshots"):
        c.upload("collect", f"Upload the {what}")
    collected = counts_of(c.data)
    history = _digests(paths.data_paths(c.data).history)

    # -- build: one runner per shard --------------------------------------------------------------
    staged = {}
    for i in SHARDS:
        b = actions.runner(f"{run}-build-{i}", checkout=False)
        b.values.update({"matrix.shard": i, "strategy.job-total": len(SHARDS), "needs.collect.outputs.site-url": site_url})
        b.download("build", "Download the store")
        b.download("build", "Download the published snapshots")
        assert not paths.data_paths(b.data).history.exists()  # a shard gets the store, not the history
        b.sh("build", "List the snapshots already published")
        rc = b.liqmap("build", "Build shard", monkeypatch=mp)
        assert rc == 0, capsys.readouterr().err
        b.sh("build", "Stage the snapshots this shard wrote")
        b.upload("build", "Upload this shard's pages")
        b.upload("build", "Upload this shard's snapshots")
        staged[i] = sorted(str(p.relative_to(b.temp / "new" / "snapshots").parent)
                           for p in (b.temp / "new" / "snapshots").rglob(snapshot.SNAPSHOT_FILE))

    # -- merge ------------------------------------------------------------------------------------
    m = actions.runner(f"{run}-merge", checkout=False)
    m.values["needs.collect.outputs.site-url"] = site_url
    m.download("merge", "Download the published snapshots")
    m.download("merge", "Download the shards' snapshots")
    m.download("merge", "Download the shards' pages")
    assert m.liqmap("merge", "Merge the shards", monkeypatch=mp) == 0, capsys.readouterr().err
    site = m.path(WORKFLOW["jobs"]["merge"]["steps"][-1]["with"]["path"])

    # -- save-data ----------------------------------------------------------------------------------
    s = actions.runner(f"{run}-save-data")
    s.values["needs.collect.outputs.data-sha"] = data_sha
    s.sh("save-data", "Check out the data branch at the commit collect restored")
    s.sh("save-data", "Mirror the collected history and snapshots")
    s.download("save-data", "Lay the collected history over it")
    s.download("save-data", "Add the published snapshots")
    s.download("save-data", "Add the shards' snapshots")
    saved = s.sh("save-data", "Commit history and snapshots")
    return {"site": site, "site_url": site_url, "data_sha": data_sha, "restored": restored, "collected": collected,
            "exported": exported, "history": history, "history_dir": paths.data_paths(c.data).history, "staged": staged, "saved": saved, "merge_data": m.data}


def counts_of(data: Path) -> dict[str, int]:
    db = paths.data_paths(data).db
    if not db.exists():
        return {}
    with Store(db, read_only=True) as store:
        return counts(store)


def test_publish_workflow_dry_run(actions, monkeypatch, capsys):
    assert SHARDS == [1, 2]  # the expectations below split four assets over two shards

    # -- first run: empty history, a new `data` branch -------------------------------------------------
    first = publish_run(actions, 1, monkeypatch, capsys)
    assert first["data_sha"] == "orphan" and first["restored"] == {}
    assert first["site_url"] == "https://example.github.io/liqmap/"
    [run_file] = [k for k in first["history"] if k.startswith("raw_candles/run=")]  # append-only: one new file
    instruments = set(pq.read_table(first["history_dir"] / run_file).column("instrument").to_pylist())
    assert "BTC-USDT-SWAP" in instruments and not any("SOL" in i or "XRP" in i for i in instruments)

    # Each shard wrote the snapshot of its asset with data: btc (shard 1: btc, sol), eth (shard 2: eth, xrp).
    assert [[p.split("/")[0] for p in first["staged"][i]] for i in SHARDS] == [["btc"], ["eth"]]
    snaps = paths.data_paths(first["merge_data"]).snapshots
    for aid in ("btc", "eth"):
        [folder] = snapshot.list_snapshots(snaps, aid)
        assert snapshot.verify(folder) == []  # the artifact round trip changed no byte
        assert not snapshot.load_manifest(folder)["is_sample"]

    site = first["site"]
    for page in ("index.html", "heatmaps/btc/index.html", "heatmaps/eth/index.html", "heatmaps/sol/index.html",
                 "heatmaps/xrp/index.html", "accuracy/index.html", "methodology/index.html", "faq/index.html",
                 "archive/index.html", "archive/btc/index.html", "archive/eth/index.html", "archive/sol/index.html"):
        assert (site / page).is_file(), page
    home = (site / "index.html").read_text(encoding="utf-8")
    assert "Bitcoin" in home and "Ethereum" in home and "no data yet" in home
    assert f'<link rel="canonical" href="{first["site_url"]}">' in home  # LIQMAP_SITE_URL reached mkdocs.yml
    assert "no data yet" not in (site / "heatmaps/btc/index.html").read_text(encoding="utf-8")
    for aid in ("btc", "eth"):
        [folder] = snapshot.list_snapshots(snaps, aid)
        assert folder.name in (site / f"archive/{aid}/index.html").read_text(encoding="utf-8")
        downloads = site / "snapshots" / aid / folder.name
        assert (downloads / "manifest.json").is_file() and any(downloads.glob("*.csv"))

    # The data branch: history and both snapshots, never the DuckDB cache.
    branch = actions.data_branch()
    assert "history and snapshots unchanged" not in first["saved"]
    assert {k: v for k, v in branch.items() if k.startswith("history/")} == \
        {f"history/{k}": v for k, v in first["history"].items()}
    assert {k.split("/")[1] for k in branch if k.startswith("snapshots/")} == {"btc", "eth"}
    assert ".gitignore" in branch and not any(k.endswith(".duckdb") for k in branch)

    # -- second run at the same moment: restored from the branch on fresh runners ------------------------
    second = publish_run(actions, 2, monkeypatch, capsys)
    assert second["data_sha"] != "orphan"
    assert second["restored"] == first["collected"]  # restore rebuilt the same store, table by table
    market = lambda d: {k: v for k, v in d.items() if k.split("/")[0] in MARKET_TABLES}  # noqa: E731
    assert market(second["history"]) == market(first["history"])  # byte-identical market partitions
    assert second["exported"] and all(p.startswith("raw_source_runs/") for p in second["exported"])  # run records only
    assert second["staged"] == {i: [] for i in SHARDS}  # same data: no new snapshot
    after = actions.data_branch()
    changed = {k for k in after.keys() | branch.keys() if after.get(k) != branch.get(k)}
    assert changed and all(k.startswith("history/raw_source_runs/") for k in changed), changed


def test_data_branch_refuses_a_branch_that_moved(actions):
    a = actions.runner("a")
    a.sh("collect", "Check out the data branch")
    assert a.outputs["steps.data-branch.outputs.sha"] == "orphan"
    (a.data / "history").mkdir()
    (a.data / "history" / "x.parquet").write_bytes(b"x")
    (a.data / "liqmap.duckdb").write_bytes(b"cache")
    a.sh("save-data", "Commit history and snapshots")
    assert set(actions.data_branch()) == {".gitignore", "history/x.parquet"}

    # save-data opens the commit collect restored; a branch that moved since is not written over.
    b = actions.runner("b")
    b.values["needs.collect.outputs.data-sha"] = "orphan"
    with pytest.raises(AssertionError, match="moved during this run"):
        b.sh("save-data", "Check out the data branch at the commit collect restored")
    c = actions.runner("c")
    c.sh("collect", "Check out the data branch")
    c.values["needs.collect.outputs.data-sha"] = c.outputs["steps.data-branch.outputs.sha"]
    d = actions.runner("d")
    d.values["needs.collect.outputs.data-sha"] = c.values["needs.collect.outputs.data-sha"]
    d.sh("save-data", "Check out the data branch at the commit collect restored")
    assert "nothing to commit" in d.sh("save-data", "Commit history and snapshots")


def test_sharded_build_holds_back_an_asset_that_vanished(replay, tmp_path, monkeypatch, capsys):
    import pyarrow as pa

    data = tmp_path / "data"
    monkeypatch.setenv("LIQMAP_DATA_DIR", str(data))
    assert cli.main(["collect", "--assets", "eth", "--exchanges", "okx", "--quiet"]) == 0
    # btc was published by an earlier run, but this run's store has nothing for it.
    snapshot.write_snapshot(paths.data_paths(data).snapshots, "btc", S.ORIGIN_MS + 86_400_000,
                            {"levels": pa.table({"price_low": [95_000.0], "price_high": [95_100.0]})}, {"price": 95_000.0})
    capsys.readouterr()
    assert cli.main(["build", "--docs", str(tmp_path / "whole"), "--out", str(tmp_path / "whole-site")]) == 3
    assert "btc: missing from this build" in capsys.readouterr().err  # what one runner does

    shards = [str(tmp_path / f"shard-{i}") for i in (1, 2)]
    rcs = [cli.main(["build", "--shard", f"{i}/2", "--docs", d]) for i, d in enumerate(shards, 1)]
    rcs.append(cli.main(["build", "--merge", *shards, "--docs", str(tmp_path / "docs"), "--out", str(tmp_path / "site")]))
    assert 3 in rcs and "btc: missing from this build" in capsys.readouterr().err
