"""pytest plugin writing each run's report into ``reports/conformance/<run-id>/``.

Collects one :class:`~conformance.results.Outcome` per test from
``pytest_runtest_logreport`` and writes, at the end of the session (also when it
failed or stopped early), ``report.md`` (the matrix), ``results.json`` (the same,
for machines) next to pytest's own ``junit.xml``.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import settings

from conformance import deviations
from conformance.explore import DEVIATION_KEY, EXAMPLES_KEY
from conformance.markdown import Header, render
from conformance.results import Outcome, TestMeta, classify, worse
from conformance.target import TARGET_KEY, Target, oracle_status
from reporting import Run

META_KEY = pytest.StashKey[TestMeta]()


class ReportPlugin:
    def __init__(self, config: pytest.Config, run: Run) -> None:
        self.config = config
        self.run = run
        self.started = time.monotonic()
        self.outcomes: dict[str, Outcome] = {}
        self.stopped: str | None = None
        self.exit_status: int | None = None
        self.written = False

    # -- collecting --------------------------------------------------------

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo[Any]) -> pytest.TestReport:
        report = yield
        meta = item.stash.get(META_KEY, None)
        if meta is not None and (report.when == "call" or report.outcome != "passed"):
            deviation = item.stash.get(DEVIATION_KEY, None)
            props = [
                ("rule", meta.rule), ("transport", meta.transport), ("model", meta.model),
                ("variant", meta.variant), ("examples", item.stash.get(EXAMPLES_KEY, 0)),
                ("deviation", deviation.label if deviation else ""),
            ]
            names = {name for name, _ in props}
            # On the item too, so that pytest's JUnit XML lists them as <properties>.
            item.user_properties[:] = [p for p in item.user_properties if p[0] not in names] + props
            report.user_properties = list(item.user_properties)
        return report

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        props = dict(report.user_properties)
        judged = classify(report)
        if "rule" not in props or judged is None:
            return
        status, detail = judged
        previous = self.outcomes.get(report.nodeid)
        if previous is None:
            previous = self.outcomes[report.nodeid] = Outcome(
                report.nodeid, props["rule"], props["transport"], props["model"], props["variant"], status,
                detail, int(props["examples"]), props["deviation"])
        elif worse(previous.status, status) != previous.status:
            previous.status, previous.detail = status, detail
        previous.examples = max(previous.examples, int(props["examples"]))
        previous.seconds += report.duration

    def pytest_keyboard_interrupt(self, excinfo: pytest.ExceptionInfo[BaseException]) -> None:
        self.stopped = str(getattr(excinfo.value, "msg", None) or excinfo.value or excinfo.typename)

    # -- writing -----------------------------------------------------------

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        self.exit_status = int(exitstatus)
        self.write()

    def pytest_unconfigure(self, config: pytest.Config) -> None:
        self.write()  # when the session never started (e.g. the target could not be reached)

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        examples = sum(o.examples for o in self.outcomes.values())
        terminalreporter.write_line(
            f"conformance: {examples} examples drawn (hypothesis profile "
            f"{settings.get_current_profile_name()!r}); report: {self.run.file('report.md')}")

    def note_stop(self, message: str) -> None:
        self.stopped = message

    def write(self) -> None:
        if self.written:
            return
        self.written = True
        target: Target | None = self.config.stash.get(TARGET_KEY, None)
        outcomes = sorted(self.outcomes.values(), key=lambda o: o.nodeid)
        models = [m.name for m in target.models] if target else []
        applies = bool(target) and deviations.applies_to((target.identity.name, target.identity.version))
        substitutions = {"$URL": target.rest_url, "$GRPC": target.grpc_target or "$GRPC"} if target else {}
        unused = deviations.unused(target.models) if target else []
        text = render(self._header(target, outcomes), outcomes, models, applies, substitutions, self.stopped,
                      unused)
        self.run.write_text("report.md", text)
        self.run.write_json("results.json", {
            "run_id": self.run.run_id,
            "revision": self.run.meta.get("revision"),
            "server": None if target is None else {
                "name": target.identity.name, "version": target.identity.version,
                "extensions": list(target.identity.extensions), "rest_url": target.rest_url,
                "grpc_target": target.grpc_target},
            "stopped": self.stopped,
            "exit_status": self.exit_status,
            "hypothesis_profile": settings.get_current_profile_name(),
            "models": [] if target is None else [_model_entry(target, m) for m in target.models],
            "unused_deviations": [d.label for d in unused],
            "outcomes": [o.as_dict() for o in outcomes],
        })

    def _header(self, target: Target | None, outcomes: list[Outcome]) -> Header:
        profile = settings.get_current_profile_name()
        lines: list[tuple[str, str]] = []
        if target is None:
            lines.append(("Server", "unknown: the target could not be used (see below)"))
        else:
            ident = target.identity
            lines += [
                ("Server (GET /v2)", f"name `{ident.name}`, version `{ident.version}`, "
                                     f"extensions {list(ident.extensions)}"),
                ("REST", target.rest_url + (" (reference deployment started by the suite)"
                                            if target.started_reference else "")),
                ("gRPC", target.grpc_target or f"not checked: {target.grpc_skip_reason}"),
                ("Models", ", ".join(f"{m.name} {m.version or '(unversioned)'}" for m in target.models)
                 + f" (from {target.models_from})"),
                *[(f"Model `{m.name}`", _model_line(target, m)) for m in target.models],
                ("Known deviations",
                 "applied (the target identifies as a server in conformance/deviations.py)"
                 if deviations.applies_to((ident.name, ident.version))
                 else "not applied: every rule is judged as written"),
                ("Oracle", target.oracle_note),
            ]
        lines += [
            ("Harness revision", str(self.run.meta.get("revision"))),
            ("Hypothesis", f"profile `{profile}` (max_examples {settings.default.max_examples}); "
                           f"{sum(o.examples for o in outcomes)} examples drawn"),
            ("Run", f"`{self.run.run_id}`, started {self.run.started.isoformat(timespec='seconds')}, "
                    f"{time.monotonic() - self.started:.1f} s, pytest exit status {self.exit_status}"),
            ("Written", datetime.now(UTC).isoformat(timespec="seconds")),
            ("Files", "report.md, results.json, junit.xml (pytest's JUnit XML)"),
        ]
        return Header("Open Inference Protocol conformance report", lines)


_UNKNOWN_RUNTIME = "unknown (deviations scoped to runtimes are not applied: give --models-dir)"


def _model_line(target: Target, model: Any) -> str:
    """Where the model's signature comes from, its samples, its runtime and its oracle."""
    if model.missing:
        return f"**inputs unknown, infer rules skipped**: {model.missing}"
    inputs = ", ".join(f"{s.name} {s.datatype} {list(s.shape)}" for s in model.signature.inputs)
    outputs = ", ".join(model.output_names) or "not declared"
    return (f"inputs {inputs} (from {model.signature_from}); outputs {outputs}; "
            f"{len(model.samples)} sample(s); "
            f"runtime {model.implementation or _UNKNOWN_RUNTIME}; oracle: {oracle_status(target, model)}")


def _model_entry(target: Target, model: Any) -> dict[str, Any]:
    return {"name": model.name, "version": model.version, "signature": model.signature.to_dict(),
            "signature_from": model.signature_from, "samples": [str(s.path) for s in model.samples],
            "implementation": model.implementation, "missing": model.missing,
            "oracle": oracle_status(target, model)}
