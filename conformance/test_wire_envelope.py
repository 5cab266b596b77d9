"""The envelope of REST answers: Content-Type, Content-Encoding, and bodies read as strict JSON.

Each rule draws its own requests from one mix (:func:`envelope_probes`): valid
inferences, a few kinds of wrong ones, model and server metadata, model ready.
A probe is a plain dict (its keys are the features a deviation's trigger can
match: ``kind``, ``method``, ``path``, ``accept_encoding``...). Each problem is
reported under its own rule, so a server that gets one thing wrong fails one rule.

Every REST answer any rule got earlier in the session was also run through these
checks (:func:`conformance.envelope.witness`); the first few that broke one are
judged here too, as examples of kind ``witnessed`` naming the test that got them.
This module's name sorts last so that it runs after the other rules' modules.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import currently_in_test_context, note
from hypothesis import strategies as st

from conformance.bad_requests import BUILDERS, not_applicable
from conformance.calls import InferCall, Reply, RestBody, Transport, json_body
from conformance.checks import sent, violation
from conformance.envelope import CHECKS, witnessed
from conformance.explore import Explore
from conformance.models import ModelUnderTest
from conformance.strategies import explicit_calls, infer_calls
from oip.rest import model_path

#: The error rules whose REST requests the mix borrows (cheap ones: no huge or deep bodies).
ERROR_RULES = ("error_unknown_model", "error_unknown_version", "error_malformed_body",
               "error_unknown_datatype", "error_data_length_mismatch", "error_wrong_input_name",
               "error_unknown_output")
#: Accept-Encoding values the content-encoding rule sends (None: the suite's default, identity).
ACCEPT_ENCODINGS = (None, "identity", "gzip", "deflate", "gzip, deflate", "gzip;q=0, identity",
                    "*;q=0, identity")
#: Servers compress only answers past some size (Starlette's GZipMiddleware: 500 bytes). The
#: content-encoding rule sends this id, which an inference answer echoes, so that every one is past it.
LARGE_ANSWER_ID = "large-answer-" + "x" * 600
WITNESSED = "witnessed"  # the kind of an example that is an answer another rule got


def _post(kind: str, path: str, body: bytes, content_type: str = "application/json") -> dict[str, Any]:
    return {"kind": kind, "method": "POST", "path": path, "body": body, "content_type": content_type}


def _as_probe(kind: str, value: Any) -> dict[str, Any]:
    if isinstance(value, InferCall):
        path = model_path(value.model, value.version, "/infer")
        return _post(kind, path, json.dumps(json_body(value)).encode())
    return _post(kind, value.path, value.body, value.headers.get("Content-Type", ""))


def _gets(model: ModelUnderTest) -> list[dict[str, Any]]:
    versions = [model.version, None] if model.version else [None]
    paths = [("metadata", model_path(model.name, v)) for v in versions]
    paths += [("ready", model_path(model.name, v, "/ready")) for v in versions]
    paths += [("server", "/v2"), ("ready", "/v2/health/ready"), ("ready", "/v2/health/live")]
    return [{"kind": kind, "method": "GET", "path": path} for kind, path in paths]


def envelope_probes(model: ModelUnderTest, encodings: bool = False) -> st.SearchStrategy[dict[str, Any]]:
    """Any request of the mix; with ``encodings``, each with a drawn Accept-Encoding."""
    calls = infer_calls(model, max_batch=64)
    if encodings:
        calls = calls.map(lambda c: c.replace(id=LARGE_ANSWER_ID))
    parts = [calls.map(lambda c: _as_probe("infer", c)), st.sampled_from(_gets(model))]
    for rule in ERROR_RULES:
        build = BUILDERS[rule].rest
        if build is not None and not not_applicable(rule, model):
            parts.append(build(model).map(lambda v, r=rule: _as_probe(r, v)))
    probes = st.one_of(parts)
    if not encodings:
        return probes
    return st.tuples(probes, st.sampled_from(ACCEPT_ENCODINGS)).map(
        lambda pair: {**pair[0], "accept_encoding": str(pair[1])} if pair[1] else pair[0])


def fixed_probes(model: ModelUnderTest, encodings: bool = False) -> list[dict[str, Any]]:
    """Tried first: one valid inference (when one can be built) and every GET of the mix; with
    ``encodings``, that inference once with each Accept-Encoding."""
    calls = explicit_calls(model)[-1:]
    if not encodings:
        return [*(_as_probe("infer", c) for c in calls), *_gets(model)]
    infers = [{**_as_probe("infer", c.replace(id=LARGE_ANSWER_ID)), "accept_encoding": accept}
              for c in calls for accept in ACCEPT_ENCODINGS if accept]
    return [*infers, *_gets(model)]


def send(transport: Transport, probe: dict[str, Any]) -> Reply:
    headers = {"Accept-Encoding": probe["accept_encoding"]} if "accept_encoding" in probe else {}
    if probe["method"] == "POST":
        headers = {"Content-Type": probe["content_type"], **headers} if probe["content_type"] else headers
        return sent(transport, RestBody(probe["path"], probe["body"], headers))
    reply = transport.get(probe["path"], headers)
    if currently_in_test_context():
        note(f"request:\n{reply.repro}")
    return reply


def _explore(rule: str, transport: Transport, model: ModelUnderTest, explore_examples: Explore,
             encodings: bool = False) -> None:
    """Judge ``rule`` on the drawn mix, the fixed probes, and the answers other rules got."""
    if not model.signature.inputs:
        pytest.skip(model.missing)
    problem_of = CHECKS[rule]

    def check(probe: dict[str, Any]) -> None:
        reply = probe["reply"] if probe["kind"] == WITNESSED else send(transport, probe)
        problem = problem_of(reply)
        if problem is not None:
            observed, why = problem
            during = f" (an answer {probe['during']} got)" if probe["kind"] == WITNESSED else ""
            raise violation(reply, why + during, observed)

    seen = [{"kind": WITNESSED, "during": during, "reply": reply}
            for during, reply in witnessed(rule, model.name)]
    explore_examples(envelope_probes(model, encodings), check, [*fixed_probes(model, encodings), *seen])


@pytest.mark.transports("rest")
def test_rest_json_content_type(transport: Transport, model: ModelUnderTest,
                                explore_examples: Explore) -> None:
    _explore("rest_json_content_type", transport, model, explore_examples)


@pytest.mark.transports("rest")
def test_rest_answer_strict_json(transport: Transport, model: ModelUnderTest,
                                 explore_examples: Explore) -> None:
    _explore("rest_answer_strict_json", transport, model, explore_examples)


@pytest.mark.transports("rest")
def test_rest_answer_unique_keys(transport: Transport, model: ModelUnderTest,
                                 explore_examples: Explore) -> None:
    _explore("rest_answer_unique_keys", transport, model, explore_examples)


@pytest.mark.transports("rest")
def test_rest_content_encoding(transport: Transport, model: ModelUnderTest,
                               explore_examples: Explore) -> None:
    _explore("rest_content_encoding", transport, model, explore_examples, encodings=True)
