"""The one report writer: ``summary.json``, ``report.md`` and the plots into a run folder.

Used by the benchmark, the A/B comparison, the saturation sweep and the load
tests. Writing is split so that a run that fails still leaves what it measured:
call :func:`write_report` as soon as there is anything to say, again at the end.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from reporting import markdown, plots
from reporting.runs import Run
from reporting.summary import SCHEMA


def write_report(run: Run, summary: Mapping[str, Any], *, draw_plots: bool = True,
                 extra_images: tuple[str, ...] = ()) -> Path:
    """Write ``summary.json``, the PNG plots and ``report.md``; returns the report's path."""
    summary = {"schema": SCHEMA, **summary}
    run.write_json("summary.json", summary)
    images: list[str] = []
    if draw_plots:
        try:
            images = [p.name for p in plots.plot_all(summary, run.path)]
        except Exception as exc:  # a plot must never cost the report
            summary.setdefault("warnings", []).append(f"plots could not be drawn: {exc}")
            run.write_json("summary.json", summary)
    images += [name for name in extra_images if (run.path / name).exists()]
    return run.write_text("report.md", markdown.render(summary, images))
