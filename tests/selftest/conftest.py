"""Selftest fixtures: one reference deployment, and runs of the conformance suite in subprocesses."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from fakes.faulty_proxy import FaultyProxy
from reference.paths import REPO_ROOT
from reference.server import ReferenceServer

SUITE_TIMEOUT_S = 300.0


@dataclass
class SuiteRun:
    returncode: int
    output: str
    results: dict[str, Any] | None
    report: str

    def outcomes(self, rule: str, transport: str = "rest") -> list[dict[str, Any]]:
        outcomes = (self.results or {}).get("outcomes", [])
        return [o for o in outcomes if o["rule"] == rule and o["transport"] == transport]

    def statuses(self, rule: str, transport: str = "rest") -> set[str]:
        return {o["status"] for o in self.outcomes(rule, transport)}


class SuiteProcess:
    """``python -m pytest conformance ... *args`` started now (ci profile, own report root and
    hypothesis database below ``workdir``); ``result()`` waits for it."""

    def __init__(self, workdir: Path, args: tuple[str, ...]) -> None:
        self._reports = workdir / "reports"
        self._stdout, self._stderr = workdir / "stdout.txt", workdir / "stderr.txt"
        env = {**os.environ, "HYPOTHESIS_STORAGE_DIRECTORY": str(workdir / "hypothesis")}
        command = [sys.executable, "-m", "pytest", "conformance", "-p", "no:cacheprovider", "-q",
                   "--hypothesis-profile=ci", "--report-root", str(self._reports), *args]
        with self._stdout.open("w") as out, self._stderr.open("w") as err:
            self.proc = subprocess.Popen(command, cwd=REPO_ROOT, env=env, stdin=subprocess.DEVNULL,
                                         stdout=out, stderr=err)

    def result(self, timeout: float = SUITE_TIMEOUT_S) -> SuiteRun:
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise
        latest = self._reports / "conformance" / "latest"
        results = json.loads((latest / "results.json").read_text()) if (latest / "results.json").is_file() \
            else None
        report = (latest / "report.md").read_text() if (latest / "report.md").is_file() else ""
        output = self._stdout.read_text() + self._stderr.read_text()
        return SuiteRun(self.proc.returncode, output, results, report)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture(scope="session", autouse=True)
def reference_starting(request: pytest.FixtureRequest) -> Iterator[Future[ReferenceServer] | None]:
    """The reference deployment, started in the background as the session begins (when a selected
    test needs it), so it comes up while the first tests run."""
    if not any("reference" in getattr(item, "fixturenames", ()) for item in request.session.items):
        yield None
        return
    server = ReferenceServer(ports="free")
    with ThreadPoolExecutor(1, thread_name_prefix="reference-start") as pool:
        starting = pool.submit(server.start)
        try:
            yield starting
        finally:
            wait([starting])
            server.stop()


@pytest.fixture(scope="session")
def reference(reference_starting: Future[ReferenceServer] | None) -> ReferenceServer:
    assert reference_starting is not None
    return reference_starting.result()


@pytest.fixture(scope="session")
def start_suite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., SuiteProcess]]:
    """``start_suite(*pytest_args)``: the conformance suite started in a subprocess, not waited for."""
    started: list[SuiteProcess] = []

    def start(*args: str) -> SuiteProcess:
        started.append(SuiteProcess(tmp_path_factory.mktemp("suite"), args))
        return started[-1]

    yield start
    for process in started:
        process.kill()


@pytest.fixture
def run_suite(start_suite: Callable[..., SuiteProcess]) -> Callable[..., SuiteRun]:
    """``run_suite(*pytest_args)``: the conformance suite in a subprocess, run to its end."""

    def run(*args: str) -> SuiteRun:
        return start_suite(*args).result()

    return run


ProxiedRuns = dict[str, tuple[str, SuiteProcess]]
Cases = Mapping[str, tuple[Iterable[str], Sequence[str]]]  # name -> (proxy faults, suite arguments)


@pytest.fixture(scope="module")
def suites_behind_proxies(reference: ReferenceServer, start_suite: Callable[..., SuiteProcess]
                          ) -> Iterator[Callable[[Cases], ProxiedRuns]]:
    """``suites_behind_proxies({name: (faults, suite_args)})``: per case, a faulty proxy in front of the
    reference deployment and a suite run against it, all started at once; returns ``{name: (proxy URL,
    SuiteProcess)}``. The proxies stop with the module, each after its suite run is killed."""
    with contextlib.ExitStack() as stack:
        def start(cases: Cases) -> ProxiedRuns:
            runs = {}
            for name, (faults, args) in cases.items():
                proxy = stack.enter_context(FaultyProxy(reference.endpoints.rest_url, set(faults)))
                process = start_suite("--target-url", proxy.url, *args)
                stack.callback(process.kill)  # before its proxy stops, should its test not have run
                runs[name] = (proxy.url, process)
            return runs

        yield start
