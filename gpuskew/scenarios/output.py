"""The files of a scenario run."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from gpuskew.scenarios.job import ScenarioResult


def heatmap_names(result: ScenarioResult) -> dict[str, str]:
    """``heatmap_<UNDERLYING>.png`` for every underlying of the run (injective file names)."""
    from gpuskew.reporting.scenarios_page import safe_name

    return {u: f"heatmap_{safe_name(u)}.png" for u in result.grid.underlying_names}


def scenario_writers(result: ScenarioResult, with_report: bool = True,
                     progress: Callable[[str], None] | None = None) -> dict[str, Callable[[Path], None]]:
    """The files of a scenarios output folder and how to write each (for gpuskew.io.publish_run):
    scenarios.parquet, risk_vectors.parquet, (with the report) one heatmap PNG per underlying and
    scenarios.html, then summary.json (the commit marker)."""
    from gpuskew.io import write_json, write_parquet, write_text

    files: dict[str, Callable[[Path], None]] = {
        "scenarios.parquet": lambda p: write_parquet(result.scenarios, p),
        "risk_vectors.parquet": lambda p: write_parquet(result.risk_vectors, p),
    }
    if with_report:
        from gpuskew.reporting.scenarios_page import render_page, write_heatmap

        names = heatmap_names(result)
        for u, name in names.items():
            files[name] = (lambda u_: lambda p: write_heatmap(result.scenarios, u_, p))(u)

        def page(path: Path) -> None:
            charts = [(path.parent / n, f"{u}: spot x vol P&L") for u, n in names.items()]
            write_text(render_page(result.summary, charts), path)
            if progress:
                progress("report")

        files["scenarios.html"] = page  # after the PNGs: it embeds them
    result.summary.setdefault("outputs", {})["files"] = [*files, "summary.json"]
    files["summary.json"] = lambda p: write_json(result.summary, p)
    return files
