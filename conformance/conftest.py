"""pytest wiring of the conformance suite: options, the target, parametrization, deviations.

Options: ``--target-url`` (REST base URL; absent = start the reference deployment),
``--grpc-target`` (host:port), ``--models`` (comma-separated; default: discovered),
``--models-dir`` (the model repository: served by the reference deployment, or, with
``--target-url``, read for signatures and runtime oracles), ``--samples`` (DIR/<model>/*.json),
``--report-root`` (default ``reports/``), and hypothesis' ``--hypothesis-profile``
(``dev`` by default, ``ci`` under tox, ``thorough`` nightly). Known deviations:
``--deviations FILE`` (repeatable), ``--no-builtin-deviations``, ``--record-deviations FILE``;
``--fail-on LEVEL`` (the lowest rule level whose failures fail the run).
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import settings

from conformance import profiles
from conformance.calls import TRANSPORTS, GrpcTransport, RestTransport, Transport
from conformance.deviations import DeviationsError, InForce, in_force
from conformance.domains import datatypes_for
from conformance.explore import CheckOnce, Explore, explore, once
from conformance.judge import IN_FORCE_KEY, JUDGE_KEY, Judge
from conformance.report import META_KEY, RECORD_KEY, ReportPlugin
from conformance.results import describe
from conformance.rules import EXTENSION, LEVELS, RULES, rule_of_test
from conformance.target import TARGET_KEY, Options, Target, TargetError, resolve
from reference.paths import MODELS_DIR, REPORTS_DIR
from reporting import new_run

SUITE_DIR = Path(__file__).resolve().parent
EXIT_BAD_TARGET = 4
PLUGIN_NAME = "conformance-report"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("conformance", "Open Inference Protocol conformance suite")
    group.addoption("--target-url", default=None,
                    help="REST base URL of the V2 server to check (default: start the reference deployment)")
    group.addoption("--grpc-target", default=None,
                    help="gRPC host:port of the server (default: the reference's; none for a --target-url)")
    group.addoption("--models", default=None,
                    help="comma-separated models to check (default: discovered from the server)")
    group.addoption("--models-dir", default=None, type=Path,
                    help="model repository (<model>/model-settings.json): what the reference deployment "
                         "serves (default: models/); with --target-url, the served models' settings and "
                         "runtimes, run in-process as the oracle")
    group.addoption("--samples", default=None, type=Path,
                    help="folder of sample requests, <DIR>/<model>/*.json (V2 request bodies)")
    group.addoption("--report-root", default=str(REPORTS_DIR), type=Path,
                    help="folder holding conformance/<run-id>/ report folders (default: reports/)")
    group.addoption("--deviations", action="append", default=[], type=Path, metavar="FILE",
                    help="a TOML baseline of known deviations of the target, added to the suite's own one "
                         "for the server GET /v2 names (repeatable)")
    group.addoption("--no-builtin-deviations", action="store_true",
                    help="leave out the suite's own baseline for the target (conformance/deviations/*.toml)")
    group.addoption("--record-deviations", default=None, type=Path, metavar="FILE",
                    help="write every failure of this run as a baseline entry to FILE (a new file), "
                         "to review and pass back with --deviations; exit 0 when the run completes")
    group.addoption("--fail-on", default=EXTENSION, choices=LEVELS, metavar="LEVEL",
                    help="the lowest rule level whose failures fail the run: MUST, SHOULD, extension "
                         "(default: MUST, SHOULD and the advertised extensions) or hardening (every rule)")


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "transports(*names): the transports a rule applies to")
    config.addinivalue_line("markers", "changes_server_state: runs after every other test (e.g. unloads "
                                       "and reloads a model)")
    record = config.getoption("--record-deviations", None)
    if record is not None:
        if record.exists():
            raise pytest.UsageError(f"--record-deviations {record}: the file exists; give a new file name "
                                    "(a recording never overwrites an earlier one)")
        if not record.parent.is_dir():
            raise pytest.UsageError(f"--record-deviations {record}: no folder {record.parent}")
        config.stash[RECORD_KEY] = str(record)
    if not config.getoption("--hypothesis-profile", None):
        settings.load_profile(profiles.DEFAULT_PROFILE)
    if config.option.collectonly or config.option.help or hasattr(config, "workerinput"):
        return
    run = new_run("conformance", root=Path(config.getoption("--report-root")))
    if not config.option.xmlpath:
        config.option.xmlpath = str(run.file("junit.xml"))
    config.pluginmanager.register(ReportPlugin(config, run), PLUGIN_NAME)


def pytest_sessionstart(session: pytest.Session) -> None:
    config = session.config
    models = config.getoption("--models")
    models_dir = config.getoption("--models-dir")
    options = Options(
        target_url=config.getoption("--target-url"), grpc_target=config.getoption("--grpc-target"),
        models=[m.strip() for m in models.split(",") if m.strip()] if models else None,
        models_dir=(models_dir or MODELS_DIR).resolve(), models_dir_given=models_dir is not None,
        samples_dir=config.getoption("--samples"),
    )
    try:
        target = resolve(options)
    except TargetError as exc:
        _stop(config, str(exc))
    config.stash[TARGET_KEY] = target
    try:
        config.stash[IN_FORCE_KEY] = in_force(
            target.identity.name, target.identity.version, config.getoption("--deviations"),
            builtin=not config.getoption("--no-builtin-deviations"))
    except DeviationsError as exc:
        _stop(config, str(exc))


def _stop(config: pytest.Config, message: str) -> None:
    plugin = config.pluginmanager.get_plugin(PLUGIN_NAME)
    if plugin is not None:
        plugin.note_stop(message)
    pytest.exit(message, returncode=EXIT_BAD_TARGET)


def pytest_unconfigure(config: pytest.Config) -> None:
    target = config.stash.get(TARGET_KEY, None)
    if target is not None:
        target.close()


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    target = metafunc.config.stash[TARGET_KEY]
    if "transport" in metafunc.fixturenames:
        marker = metafunc.definition.get_closest_marker("transports")
        metafunc.parametrize("transport", marker.args if marker else TRANSPORTS, indirect=True)
    if "datatype" in metafunc.fixturenames:
        pairs = [(m, dt) for m in target.models for dt in datatypes_for(m)]
        metafunc.parametrize(("model", "datatype"), pairs, ids=[f"{m.name}-{dt}" for m, dt in pairs])
    elif "model" in metafunc.fixturenames:
        metafunc.parametrize("model", target.models, ids=[m.name for m in target.models])


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    target = config.stash[TARGET_KEY]
    deviations = config.stash.get(IN_FORCE_KEY, InForce())
    recording = RECORD_KEY in config.stash
    by_name = {m.name: m for m in target.models}
    for item in items:
        if not item.path.is_relative_to(SUITE_DIR):
            continue  # another folder's test in the same session
        rule = rule_of_test(getattr(item, "originalname", item.name))
        if rule not in RULES:
            raise pytest.UsageError(f"{item.nodeid}: no rule {rule!r} in conformance/rules.py")
        meta = describe(item, rule)
        item.stash[META_KEY] = meta
        entries = [] if recording else deviations.find(rule, meta.params, by_name.get(meta.model))
        item.stash[JUDGE_KEY] = Judge(entries, recording=recording)
    # Tests that change what the server serves run last, so that no other rule sees the change.
    items.sort(key=lambda item: item.get_closest_marker("changes_server_state") is not None)


# ------------------------------------------------------------------ fixtures


@pytest.fixture(scope="session")
def target(pytestconfig: pytest.Config) -> Target:
    return pytestconfig.stash[TARGET_KEY]


@pytest.fixture(scope="session")
def rest_transport(target: Target) -> Iterator[RestTransport]:
    transport = RestTransport(target.rest_url)
    yield transport
    transport.close()


@pytest.fixture(scope="session")
def grpc_transport(target: Target) -> Iterator[GrpcTransport]:
    if target.grpc_target is None:
        pytest.skip(target.grpc_skip_reason or "no gRPC target")
    transport = GrpcTransport(target.grpc_target)
    yield transport
    transport.close()


@pytest.fixture
def transport(request: pytest.FixtureRequest) -> Transport:
    return request.getfixturevalue(f"{request.param}_transport")


@pytest.fixture
def explore_examples(request: pytest.FixtureRequest) -> Explore:
    """``explore_examples(strategy, check, examples=())``: check drawn examples (conformance.explore)."""
    params = getattr(request.node, "callspec", None)
    params = params.params if params else {}
    model = params.get("model")
    if model is not None and not model.signature.inputs and params.get("endpoint", "infer") == "infer":
        pytest.skip(model.missing)
    return functools.partial(explore, request.node)


@pytest.fixture
def check_once(request: pytest.FixtureRequest) -> CheckOnce:
    """``check_once(check)``: a fixed check, judged like drawn ones."""
    return functools.partial(once, request.node)
