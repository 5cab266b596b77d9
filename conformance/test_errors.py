"""Error rules: each deliberately wrong request is a client error and leaves the server live.

REST: non-2xx, 4xx for a client's mistake, body ``{"error": "<string>"}`` (on the
ready endpoints, for which the spec defines no error object, any 4xx). gRPC: a
non-OK status, INVALID_ARGUMENT or NOT_FOUND (RESOURCE_EXHAUSTED also for an
oversized message). The requests come from :mod:`conformance.bad_requests`.
A mistyped JSON element may be coerced or refused: only a 5xx or no answer fails.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from conformance.bad_requests import BUILDERS, UNKNOWN_MODEL, UNKNOWN_VERSION, any_bad_request, not_applicable
from conformance.bad_requests_wire import broken_features
from conformance.calls import Probe, Reply, Transport
from conformance.checks import expect_client_error, expect_live, sent, violation
from conformance.explore import CheckOnce, Explore
from conformance.judge import features_of
from conformance.models import ModelUnderTest
from conformance.target import Target

ENDPOINTS = ("infer", "metadata", "ready")


def _rule_check(transport: Transport, grpc_codes: frozenset[str]) -> Callable[[Probe], None]:
    def check(probe: Probe) -> None:
        reply = sent(transport, probe)
        expect_client_error(reply, grpc_codes)
        expect_live(transport, after=reply)

    return check


def _explore_rule(rule: str, transport: Transport, model: ModelUnderTest, explore_examples: Explore) -> None:
    requests = BUILDERS[rule]
    why_not = not_applicable(rule, model)
    if why_not:
        pytest.skip(why_not)
    build = requests.for_transport(transport.name)
    assert build is not None, f"{rule} has no {transport.name} builder"
    explore_examples(build(model), _rule_check(transport, requests.grpc_codes), features=_features)


def _features(probe: Probe) -> dict[str, str]:
    """The request's features plus what the builder broke (``field``, ``dimension``...)."""
    return {**features_of(probe), **broken_features(probe)}


def _lookup(transport: Transport, endpoint: str, model: str, version: str | None) -> Reply:
    if endpoint == "metadata":
        return transport.model_metadata(model, version)
    return transport.model_ready(model, version)


def _grpc_ready_false_is_fine(reply: Reply) -> bool:
    """gRPC ModelReady may also answer an unknown model with ready=false."""
    return reply.transport == "grpc" and reply.ok and reply.message.DESCRIPTOR.name == "ModelReadyResponse" \
        and not reply.message.ready


def _expect_lookup_error(reply: Reply, endpoint: str) -> None:
    """A client error; on REST ready, any 4xx: the spec defines no error body there (spec audit F8)."""
    if reply.transport == "rest" and endpoint == "ready" and reply.status.isdigit() \
            and 400 <= int(reply.status) < 500:
        return
    if not _grpc_ready_false_is_fine(reply):
        expect_client_error(reply)


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_error_unknown_model(transport: Transport, model: ModelUnderTest, endpoint: str,
                             explore_examples: Explore, check_once: CheckOnce) -> None:
    if endpoint == "infer":
        _explore_rule("error_unknown_model", transport, model, explore_examples)
        return

    def check() -> None:
        reply = _lookup(transport, endpoint, UNKNOWN_MODEL, None)
        _expect_lookup_error(reply, endpoint)
        expect_live(transport, after=reply)

    check_once(check)


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_error_unknown_version(transport: Transport, model: ModelUnderTest, endpoint: str, target: Target,
                               explore_examples: Explore, check_once: CheckOnce) -> None:
    if transport.name == "rest" and (why := target.probe.no_versioned_path(model.name)):
        pytest.skip(why)  # a missing capability fails once, in its own rule
    if endpoint == "infer":
        _explore_rule("error_unknown_version", transport, model, explore_examples)
        return

    def check() -> None:
        reply = _lookup(transport, endpoint, model.name, UNKNOWN_VERSION)
        _expect_lookup_error(reply, endpoint)
        expect_live(transport, after=reply)

    check_once(check)


def test_error_malformed_body(transport: Transport, model: ModelUnderTest, explore_examples: Explore) -> None:
    _explore_rule("error_malformed_body", transport, model, explore_examples)


def test_error_unknown_datatype(transport: Transport, model: ModelUnderTest,
                                explore_examples: Explore) -> None:
    _explore_rule("error_unknown_datatype", transport, model, explore_examples)


def test_error_lowercase_datatype(transport: Transport, model: ModelUnderTest,
                                  explore_examples: Explore) -> None:
    _explore_rule("error_lowercase_datatype", transport, model, explore_examples)


def test_error_negative_dimension(transport: Transport, model: ModelUnderTest,
                                  explore_examples: Explore) -> None:
    _explore_rule("error_negative_dimension", transport, model, explore_examples)


def test_error_data_length_mismatch(transport: Transport, model: ModelUnderTest,
                                    explore_examples: Explore) -> None:
    _explore_rule("error_data_length_mismatch", transport, model, explore_examples)


def test_error_wrong_feature_count(transport: Transport, model: ModelUnderTest,
                                   explore_examples: Explore) -> None:
    _explore_rule("error_wrong_feature_count", transport, model, explore_examples)


def test_error_wrong_input_name(transport: Transport, model: ModelUnderTest,
                                explore_examples: Explore) -> None:
    _explore_rule("error_wrong_input_name", transport, model, explore_examples)


def test_error_two_inputs(transport: Transport, model: ModelUnderTest, explore_examples: Explore) -> None:
    _explore_rule("error_two_inputs", transport, model, explore_examples)


def test_error_missing_input(transport: Transport, model: ModelUnderTest, explore_examples: Explore) -> None:
    _explore_rule("error_missing_input", transport, model, explore_examples)


def test_error_undeclared_datatype(transport: Transport, model: ModelUnderTest,
                                   explore_examples: Explore) -> None:
    _explore_rule("error_undeclared_datatype", transport, model, explore_examples)


def test_error_unknown_output(transport: Transport, model: ModelUnderTest, explore_examples: Explore) -> None:
    _explore_rule("error_unknown_output", transport, model, explore_examples)


@pytest.mark.transports("rest")
def test_error_nonfinite_literals(transport: Transport, model: ModelUnderTest,
                                  explore_examples: Explore) -> None:
    _explore_rule("error_nonfinite_literals", transport, model, explore_examples)


def test_error_oversized_payload(transport: Transport, model: ModelUnderTest,
                                 explore_examples: Explore) -> None:
    _explore_rule("error_oversized_payload", transport, model, explore_examples)


@pytest.mark.transports("rest")
def test_error_wrong_content_type(transport: Transport, model: ModelUnderTest,
                                  explore_examples: Explore) -> None:
    _explore_rule("error_wrong_content_type", transport, model, explore_examples)


@pytest.mark.transports("rest")
def test_error_deep_json(transport: Transport, model: ModelUnderTest, explore_examples: Explore) -> None:
    _explore_rule("error_deep_json", transport, model, explore_examples)


def test_server_live_after_bad_requests(transport: Transport, model: ModelUnderTest,
                                        explore_examples) -> None:
    if not model.signature.inputs:
        pytest.skip(model.missing)

    def check(probe: Probe) -> None:
        expect_live(transport, after=sent(transport, probe))

    explore_examples(any_bad_request(model, transport.name), check)


def test_error_missing_required_field(transport: Transport, model: ModelUnderTest,
                                      explore_examples: Explore) -> None:
    _explore_rule("error_missing_required_field", transport, model, explore_examples)


@pytest.mark.transports("rest")
def test_error_non_integer_dimension(transport: Transport, model: ModelUnderTest,
                                     explore_examples: Explore) -> None:
    _explore_rule("error_non_integer_dimension", transport, model, explore_examples)


@pytest.mark.transports("grpc")
def test_error_raw_contents_layout(transport: Transport, model: ModelUnderTest,
                                   explore_examples: Explore) -> None:
    _explore_rule("error_raw_contents_layout", transport, model, explore_examples)


@pytest.mark.transports("grpc")
def test_error_contents_field_mismatch(transport: Transport, model: ModelUnderTest,
                                       explore_examples: Explore) -> None:
    _explore_rule("error_contents_field_mismatch", transport, model, explore_examples)


@pytest.mark.transports("rest")
def test_infer_mistyped_element_coerced_or_refused(transport: Transport, model: ModelUnderTest,
                                                   explore_examples: Explore) -> None:
    """rest.md: the server "can decide to coerce each element ... or return an error": never a 5xx."""
    rule = "infer_mistyped_element_coerced_or_refused"
    why_not = not_applicable(rule, model)
    if why_not:
        pytest.skip(why_not)

    def check(probe: Probe) -> None:
        reply = sent(transport, probe)
        if not (reply.status.isdigit() and 200 <= int(reply.status) < 500):
            raise violation(reply, "a mistyped element should be coerced (2xx) or refused (4xx)")
        expect_live(transport, after=reply)

    explore_examples(BUILDERS[rule].rest(model), check, features=_features)
