"""What a build did: pages written, per-step timings, warnings, views, held-back snapshots."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from pipeline.model.views import AssetView


@dataclass
class BuildReport:
    docs_dir: Path
    site_dir: Path
    pages: list[Path] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)  # with workers > 1, model/charts/backtest are summed
    workers: int = 1  # processes the per-asset jobs ran in (steps/compute.py)
    worker_rss_mb: float = 0.0  # with workers > 1: the largest peak RSS of one worker process
    warnings: list[str] = field(default_factory=list)
    assets: dict[str, AssetView] = field(default_factory=dict)
    # Gate problems: snapshots held back. The site is still built (to inspect), but
    # `liqmap build` exits non-zero so a publish run does not deploy it.
    held: list[str] = field(default_factory=list)
    held_site: Path | None = None  # where a held-back build's site was left, the previous one untouched

    def summary(self) -> str:
        t = ", ".join(f"{k} {v:.2f}s" for k, v in self.timings.items())
        w = f", {self.workers} workers" if self.workers > 1 else ""
        return f"{len(self.pages)} pages -> {self.site_dir} ({t}{w}); {len(self.warnings)} warning(s)"
