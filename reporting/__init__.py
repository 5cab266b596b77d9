"""Run folders and reports: the one place that decides where a run's output goes.

Every run of the harness (conformance, load test, benchmark, sweep) writes into
its own folder ``reports/<kind>/<run-id>/`` created by :func:`new_run`; a run
never overwrites another, and ``reports/<kind>/latest`` names the newest.
"""

from reporting.runs import Run, git_revision, latest_run, new_run

__all__ = ["Run", "git_revision", "latest_run", "new_run"]
