"""Growth of the ``data`` branch per scheduled run, as packed git objects (issue 12 target: <= 300 KB per run, 4 assets).

Runs ``--runs`` consecutive scheduled runs of ``.github/workflows/publish.yml`` against the replay server
(``tests/replay``), two hours of server time apart, with the workflow's own step text, the way
``tests/test_publish_dry_run.py`` runs it: collect (restore, collect, export + compaction, thin, upload) ->
build shards (download, build, stage and upload snapshots) -> save-data (open the branch at the restored commit,
lay the artifacts over it, commit, push to a local bare repository). The merge job (site and MkDocs) writes
nothing to the branch and is left out. The replay server serves all four assets of ``assets.yaml`` (SOL and
XRP are added to its two coins for this run).

After each run the bare repository is repacked (``git repack -a -d``, as GitHub keeps it) and ``git
count-objects -v``'s ``size-pack`` is read; the growth of a run is the difference. The first run starts the
branch (days of history at once), so the steady growth is the median of the runs after it. Each run's new
blobs are also listed by folder (uncompressed bytes) to show what grows.

    .venv/bin/python bench/bench_growth.py --runs 6
"""

from __future__ import annotations

import argparse
import collections
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

EXTRA_COINS = {"SOL": (180.0, 9_000_000.0, 60_000.0), "XRP": (2.3, 600_000_000.0, 4_000_000.0)}
EXTRA_INSTRUMENTS = {"binance": "{c}USDT", "bybit": "{c}USDT", "okx": "{c}-USDT-SWAP", "hyperliquid": "{c}",
                     "dydx": "{c}-USD"}


def _serve_four_coins(S) -> None:
    for coin, spec in EXTRA_COINS.items():
        S.COINS[coin] = spec
        for ex, pattern in EXTRA_INSTRUMENTS.items():
            S.INSTRUMENTS[ex][pattern.format(c=coin)] = coin
        S.OKX_CT_VAL[coin] = "1"
        S.OKX_FAMILY[f"{coin}-USDT"] = f"{coin}-USDT-SWAP"


def _git(*args: str, env) -> str:
    return subprocess.run(["git", *args], capture_output=True, text=True, env=env, check=True).stdout


def _size_pack_kib(origin: Path, env) -> int:
    _git("--git-dir", str(origin), "repack", "-a", "-d", "-q", env=env)
    stats = dict(line.split(": ", 1) for line in _git("--git-dir", str(origin), "count-objects", "-v", env=env).splitlines())
    return int(stats["size-pack"]) + int(stats["size"])


def _new_blobs(origin: Path, env) -> dict[str, int]:
    """Uncompressed bytes of the blobs the last commit of `data` added or changed, by folder."""
    g = ["--git-dir", str(origin)]
    parents = _git(*g, "rev-list", "--parents", "-n", "1", "data", env=env).split()
    if len(parents) < 2:
        rows = _git(*g, "ls-tree", "-r", "-l", "data", env=env).splitlines()
        changed = [(r.split()[3], r.split("\t", 1)[1]) for r in rows]
    else:
        rows = _git(*g, "diff-tree", "-r", "--no-renames", "data~1", "data", env=env).splitlines()
        changed = [(r.split()[3], r.split("\t", 1)[1]) for r in rows if r.split()[3] != "0" * 40]
        changed = [(_git(*g, "cat-file", "-s", sha, env=env).strip(), path) for sha, path in changed]
    out: dict[str, int] = collections.Counter()
    for size, path in changed:
        parts = path.split("/")
        folder = "/".join(parts[:2]) if parts[0] == "history" else parts[0]
        if parts[0] == "history" and len(parts) > 2:
            folder += "/" + parts[2].split("=", 1)[0] + "="
        out[folder] += int(size)
    return dict(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=6)
    args = ap.parse_args()

    import pytest
    import test_publish_dry_run as dry
    from replay import series as S
    from replay.harness import factory
    from replay.server import ReplayServer

    import pipeline.collect.live as collect_mod
    from pipeline import settings

    _serve_four_coins(S)
    tmp = Path(tempfile.mkdtemp(prefix="bench-growth-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GIT_", "GITHUB_", "GH_"))}
    env.update(HOME=str(tmp / "home"), GIT_CONFIG_NOSYSTEM="1")
    mp = pytest.MonkeyPatch()
    growth, sizes = [], []
    with ReplayServer(now_ms=dry.NOW) as srv:
        for k, v in srv.env().items():
            mp.setenv(k, v)
        settings.get.cache_clear()
        mp.setattr(collect_mod.time, "time", lambda: srv.now_ms / 1000)
        mp.setattr(collect_mod, "ClientFactory", lambda: factory())
        actions = dry.Actions(tmp, env)
        before = _size_pack_kib(actions.origin, env)
        for run in range(1, args.runs + 1):
            actions.artifacts = tmp / f"artifacts-{run}"
            c = actions.runner(f"{run}-collect")
            c.sh("collect", "Site address")
            site_url = c.outputs["steps.site-url.outputs.url"]
            c.sh("collect", "Check out the data branch")
            data_sha = c.outputs["steps.data-branch.outputs.sha"]
            for step in ("Rebuild the store", "Collect new exchange data", "Export the history", "Thin snapshots"):
                rc = c.liqmap("collect", step, "--quiet", monkeypatch=mp) if step.startswith("Collect") else \
                    c.liqmap("collect", step, monkeypatch=mp)
                assert rc == 0, f"run {run}: {step} exited {rc}"
            for up in [s["name"] for s in dry.WORKFLOW["jobs"]["collect"]["steps"] if s.get("uses", "").startswith(
                    "actions/upload-artifact")]:
                c.upload("collect", up)
            for i in dry.SHARDS:
                b = actions.runner(f"{run}-build-{i}", checkout=False)
                b.values.update({"matrix.shard": i, "strategy.job-total": len(dry.SHARDS),
                                 "needs.collect.outputs.site-url": site_url})
                for st in dry.WORKFLOW["jobs"]["build"]["steps"]:
                    name, uses = st.get("name", ""), st.get("uses", "")
                    if uses.startswith("actions/download-artifact"):
                        b.download("build", name)
                    elif uses.startswith("actions/upload-artifact"):
                        b.upload("build", name)
                    elif name.startswith("Build shard"):
                        assert b.liqmap("build", "Build shard", monkeypatch=mp) == 0, f"run {run}: shard {i}"
                    elif "run" in st and not name.startswith("Install"):
                        b.sh("build", name)
            s = actions.runner(f"{run}-save-data")
            s.values["needs.collect.outputs.data-sha"] = data_sha
            for st in dry.WORKFLOW["jobs"]["save-data"]["steps"]:
                name, uses = st.get("name", ""), st.get("uses", "")
                if uses.startswith("actions/download-artifact"):
                    s.download("save-data", name)
                elif name.startswith(("Check out the data branch", "Mirror", "Commit")):
                    s.sh("save-data", name)
            size = _size_pack_kib(actions.origin, env)
            blobs = _new_blobs(actions.origin, env)
            growth.append(size - before)
            sizes.append(size)
            before = size
            print(f"run {run}: packed repository {size} KiB, +{growth[-1]} KiB; new blobs (uncompressed): "
                  + ", ".join(f"{k} {v / 1e3:.0f} KB" for k, v in sorted(blobs.items())), flush=True)
            srv.now_ms += 2 * dry.S.HOUR
    mp.undo()
    steady = growth[1:] or growth
    print(f"growth per scheduled run (4 assets, packed, runs 2..{args.runs}): median {statistics.median(steady):.0f} KiB, "
          f"max {max(steady)} KiB (target <= 300 KB); first run {growth[0]} KiB")


if __name__ == "__main__":
    main()
