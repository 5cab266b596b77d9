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

from conformance import record
from conformance.causes import root_causes
from conformance.checks import RuleViolation
from conformance.deviations import InForce, write
from conformance.explore import EXAMPLES_KEY
from conformance.judge import IN_FORCE_KEY, JUDGE_KEY, DeviationFixed
from conformance.markdown import Header, render, substituted
from conformance.results import FAIL, Outcome, TestMeta, classify, worse
from conformance.rules import HARDENING, RULES, gates
from conformance.target import TARGET_KEY, Target, oracle_status
from reporting import Run

META_KEY = pytest.StashKey[TestMeta]()
RECORD_KEY = pytest.StashKey[str]()  # the --record-deviations file


def _placeholders(target: Target | None) -> dict[str, str]:
    """What ``$URL`` and ``$GRPC`` stand for in reproductions, for this target."""
    return {"$URL": target.rest_url, "$GRPC": target.grpc_target or "$GRPC"} if target else {}


def _is_rule_failure(exc: BaseException | None) -> bool:
    """The server broke the rule (possibly several examples at once, as hypothesis groups them)."""
    if isinstance(exc, BaseExceptionGroup):
        return all(_is_rule_failure(e) for e in exc.exceptions)
    return isinstance(exc, RuleViolation)


def _failure_of(item: pytest.Item, call: pytest.CallInfo[Any]) -> dict[str, Any]:
    """What the server did (observed), in one line (why), its reproduction, and ``strict``: whether the
    failure fails the run whatever the rule's level (a known deviation changed or fixed, or an error of
    the test itself rather than a broken rule)."""
    exc = call.excinfo.value if call.excinfo is not None else None
    judge = item.stash.get(JUDGE_KEY, None)
    first = judge.first_failure if judge is not None else None
    why = str(exc).split("\n", 1)[0][:300] if exc is not None else ""
    if isinstance(exc, DeviationFixed):
        return {"observed": "deviation no longer happens", "why": why, "repro": "", "strict": True}
    strict = call.when != "call" or not _is_rule_failure(exc)
    if first is not None:
        return {"observed": first.observed, "why": first.why, "repro": first.repro, "strict": strict}
    if isinstance(exc, RuleViolation):
        return {"observed": exc.observed, "why": exc.why, "repro": exc.repro, "strict": strict}
    name = type(exc).__name__ if exc is not None else "error"
    return {"observed": f"{name} in the test ({call.when})", "why": why, "repro": "", "strict": True}


class ReportPlugin:
    def __init__(self, config: pytest.Config, run: Run) -> None:
        self.config = config
        self.run = run
        self.started = time.monotonic()
        self.outcomes: dict[str, Outcome] = {}
        self.stopped: str | None = None
        self.exit_status: int | None = None
        self.written = False
        self.failures: dict[str, dict[str, str]] = {}  # nodeid -> observed, why, repro
        self.judged: list[record.Judged] = []
        self.recorded: str | None = None
        self.ungated = 0  # failed tests whose level does not fail the run

    # -- collecting --------------------------------------------------------

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo[Any]) -> pytest.TestReport:
        report = yield
        meta = item.stash.get(META_KEY, None)
        if meta is not None and (report.when == "call" or report.outcome != "passed"):
            judge = item.stash.get(JUDGE_KEY, None)
            seen = [e.label for e in judge.entries if judge.seen[e]] if judge is not None else []
            if report.failed:
                self.failures[item.nodeid] = _failure_of(item, call)
            if report.when == "call" and judge is not None:
                model = item.callspec.params.get("model") if hasattr(item, "callspec") else None
                self.judged.append(record.Judged(meta, getattr(model, "implementation", None), judge))
            props = [
                ("rule", meta.rule), ("transport", meta.transport), ("model", meta.model),
                ("variant", meta.variant), ("examples", item.stash.get(EXAMPLES_KEY, 0)),
                ("deviation", "\n".join(seen)),
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
                detail, int(props["examples"]), props["deviation"], level=RULES[props["rule"]].level)
        elif worse(previous.status, status) != previous.status:
            previous.status, previous.detail = status, detail
        if "note" in props:
            previous.note = str(props["note"])
        if status == FAIL:
            failure = dict(self.failures.get(report.nodeid, {"strict": True}))
            strict = bool(failure.pop("strict"))
            for key, value in failure.items():
                setattr(previous, key, value)
            previous.strict = strict
            previous.gating = strict or self._gates(props["rule"])
        previous.examples = max(previous.examples, int(props["examples"]))
        previous.seconds += report.duration

    def pytest_keyboard_interrupt(self, excinfo: pytest.ExceptionInfo[BaseException]) -> None:
        self.stopped = str(getattr(excinfo.value, "msg", None) or excinfo.value or excinfo.typename)

    # -- writing -----------------------------------------------------------

    def _gates(self, rule: str) -> bool:
        target: Target | None = self.config.stash.get(TARGET_KEY, None)
        advertised = target.identity.extensions if target else ()
        return gates(RULES[rule], self.config.getoption("--fail-on"), advertised)

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        failed = [o for o in self.outcomes.values() if o.status == FAIL]
        self.ungated = sum(not o.gating for o in failed)
        # Tests outside the rules, and errors of the tests themselves, always count.
        other_failures = session.testsfailed > len(failed) or any(o.strict for o in failed)
        recording = bool(self.config.stash.get(RECORD_KEY, None))
        if exitstatus == pytest.ExitCode.TESTS_FAILED and not other_failures \
                and (recording or all(not o.gating for o in failed)):
            session.exitstatus = pytest.ExitCode.OK
        self.exit_status = int(session.exitstatus)
        if exitstatus in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED):
            self._record()  # not after an interrupted run: a partial baseline would mislead
        self.write()

    def _record(self) -> None:
        path = self.config.stash.get(RECORD_KEY, None)
        target: Target | None = self.config.stash.get(TARGET_KEY, None)
        if not path or target is None:
            return
        found = record.entries(self.judged, {target.rest_url: "$URL", target.grpc_target or "": "$GRPC"})
        header = (f"Recorded by `pytest conformance --record-deviations` (run {self.run.run_id}) against "
                  f"{target.rest_url}.\nReview each entry (narrow its trigger, quote the spec) before "
                  "committing it; pass it back with --deviations FILE.")
        try:
            write(path, target.identity.name, target.identity.version, found, header)
        except FileExistsError:
            self.recorded = f"NOT recorded: {path} appeared during the run (a recording never overwrites)"
            return
        self.recorded = f"{len(found)} deviation entries recorded in {path}"

    def pytest_unconfigure(self, config: pytest.Config) -> None:
        self.write()  # when the session never started (e.g. the target could not be reached)

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        examples = sum(o.examples for o in self.outcomes.values())
        causes = root_causes(sorted(self.outcomes.values(), key=lambda o: o.nodeid))
        target: Target | None = self.config.stash.get(TARGET_KEY, None)
        substitutions = _placeholders(target)
        if causes:
            failed = sum(len(c.tests) for c in causes)
            terminalreporter.section(f"conformance: {failed} failed tests, {len(causes)} root causes")
            for cause in causes:
                gate = "" if cause.gating else " (does not fail the run: see --fail-on)"
                terminalreporter.write_line(f"- {cause.title}: {len(cause.tests)} test(s){gate}")
                terminalreporter.write_line(f"    {cause.why[:200]}")
                repro = substituted(cause.repro, substitutions).strip()
                if repro:
                    shown = repro if len(repro) <= 300 else repro[:300] + "..."
                    terminalreporter.write_line("    reproduce: " + shown.replace("\n", "\n    "))
        if self.ungated:
            terminalreporter.write_line(
                f"conformance: {self.ungated} failed test(s) at levels that do not fail the run "
                f"(--fail-on {self.config.getoption('--fail-on')}; --fail-on {HARDENING} makes every "
                "failure count)")
        if self.recorded:
            terminalreporter.write_line(f"conformance: {self.recorded}; exit status {self.exit_status}")
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
        in_force = self.config.stash.get(IN_FORCE_KEY, InForce())
        substitutions = _placeholders(target)
        unused = in_force.unused(target.models) if target else []
        causes = root_causes(outcomes)
        coverage = {e: (sum(e in j.judge.entries for j in self.judged),
                        sum(j.judge.covered[e] for j in self.judged)) for e in in_force.entries}
        text = render(self._header(target, outcomes), outcomes, models, in_force, substitutions, self.stopped,
                      unused, causes, coverage)
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
            "deviation_files": [str(b.path) for b in in_force.baselines],
            "unused_deviations": [d.label for d in unused],
            "fail_on": self.config.getoption("--fail-on"),
            "recorded": self.recorded,
            "root_causes": [c.as_dict() for c in causes],
            "outcomes": [o.as_dict() for o in outcomes],
            "probe": None if target is None else target.probe.as_dict(),
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
                ("Probe", target.probe.summary()),
                ("Known deviations", self.config.stash.get(IN_FORCE_KEY, InForce()).describe()),
                ("Fails the run", f"failures at level {self.config.getoption('--fail-on')} and above "
                                  "(MUST > SHOULD > extension > hardening; extensions the server does not "
                                  "advertise count as hardening)"),
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
