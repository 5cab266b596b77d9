"""Unit tests of conformance.envelope: strict JSON, Content-Type and Content-Encoding of REST answers."""

from __future__ import annotations

import codecs
import json

import httpx
import pytest

from conformance import envelope
from conformance.calls import Reply
from conformance.envelope import (
    BOM,
    CHECKS,
    DUPLICATE_KEY,
    NONFINITE,
    NOT_JSON,
    NOT_UTF8,
    accepted_codings,
    encoding_problem,
    media_type,
    strict_json_problems,
    witness,
    witnessed,
)


def kinds(raw: bytes) -> list[str]:
    return [kind for kind, _ in strict_json_problems(raw)]


@pytest.mark.parametrize("raw", [
    b"", b'{"a": 1}', b' {"a": [1, 2.5e3, "\\u00e9", true, null]} \n', '{"é": "日本"}'.encode(),
    b'{"a": {"b": 1}, "b": {"b": 2}}',  # the same name in two objects is fine
    b'[{"name": "m"}]', b'"text"',  # any JSON text (the repository index is an array)
])
def test_strict_json_accepts(raw: bytes) -> None:
    assert strict_json_problems(raw) == ()


@pytest.mark.parametrize(("raw", "expected"), [
    (b'{"a": 1, "a": 2}', [DUPLICATE_KEY]),
    (b'{"o": {"x": 1, "x": 1}}', [DUPLICATE_KEY]),
    (b'{"a": NaN}', [NONFINITE]),
    (b'{"a": [Infinity, -Infinity]}', [NONFINITE]),
    (b'{"a": NaN, "a": 1}', [NONFINITE, DUPLICATE_KEY]),
    (b'{"a": "\xff"}', [NOT_UTF8]),
    (codecs.BOM_UTF8 + b'{"a": 1}', [BOM]),
    ('{"a": 1}'.encode("utf-16"), [NOT_UTF8]),  # Python's json.loads(bytes) would read it
    (b"{'a': 1}", [NOT_JSON]),
    (b'{"a": 1,}', [NOT_JSON]),  # the rest.md examples' trailing comma
    (b"Internal Server Error", [NOT_JSON]),
])
def test_strict_json_problems(raw: bytes, expected: list[str]) -> None:
    assert kinds(raw) == expected


def test_the_lenient_body_stays_for_other_rules() -> None:
    raw = b'{"model_name": "x", "model_name": "m", "outputs": []}'
    reply = Reply("rest", True, "200", body={"model_name": "m", "outputs": []}, raw=raw)
    assert [k for k, _ in reply.json_problems] == [DUPLICATE_KEY]
    assert reply.body["model_name"] == "m"
    assert Reply("grpc", True, "OK").json_problems == ()


@pytest.mark.parametrize(("value", "expected"), [
    ("application/json", "application/json"),
    ("Application/JSON; charset=utf-8", "application/json"),
    ("text/plain;charset=utf-8", "text/plain"),
    (None, ""),
])
def test_media_type(value: str | None, expected: str) -> None:
    headers = httpx.Headers({"Content-Type": value} if value else {})
    assert media_type(headers) == expected
    assert media_type({"content-type": value} if value else {}) == expected


@pytest.mark.parametrize(("accept", "allowed"), [
    (None, {"*"}),
    ("identity", {"identity"}),
    ("gzip", {"gzip", "identity"}),
    ("gzip, deflate", {"gzip", "deflate", "identity"}),
    ("gzip;q=0, identity", {"identity"}),
    ("gzip; q=0.0", {"identity"}),
    ("identity;q=0, gzip", {"gzip"}),
    ("*;q=0, identity", {"identity"}),
    ("*;q=0", set()),
    ("GZIP;q=0.5", {"gzip", "identity"}),
])
def test_accepted_codings(accept: str | None, allowed: set[str]) -> None:
    assert accepted_codings(accept) == allowed


@pytest.mark.parametrize(("encoding", "accept", "ok"), [
    (None, "identity", True),
    ("identity", "identity", True),
    ("gzip", "identity", False),
    ("gzip", "gzip;q=0, identity", False),
    ("gzip", "gzip, deflate", True),
    ("br", "gzip", False),
    ("gzip", None, True),  # no Accept-Encoding: any coding is acceptable
])
def test_encoding_problem(encoding: str | None, accept: str | None, ok: bool) -> None:
    headers = {"Content-Encoding": encoding} if encoding else {}
    problem = encoding_problem(headers, accept)
    assert (problem is None) == ok, problem


def rest_reply(status: str = "200", raw: bytes = b'{"model_name": "m"}',
               content_type: str = "application/json", encoding: str | None = None,
               accept: str | None = "identity",
               url: str = "http://h/v2/models/m/infer") -> Reply:
    headers = {"content-type": content_type, **({"content-encoding": encoding} if encoding else {})}
    try:
        body = json.loads(raw) if raw else None
    except ValueError:
        body = None  # what RestResponse.json gives for a body that is not JSON
    return Reply("rest", status.startswith("2"), status, body=body, raw=raw, headers=headers,
                 accept_encoding=accept, repro=f"curl -sS -X POST {url}")


@pytest.mark.parametrize(("rule", "reply", "observed"), [
    ("rest_json_content_type", rest_reply(content_type="text/plain"), "200 text/plain"),
    ("rest_json_content_type", rest_reply("400", b'{"error": "x"}', content_type=""), "400 no Content-Type"),
    ("rest_answer_strict_json", rest_reply(raw=b'{"a": NaN}'), f"200 {NONFINITE}"),
    ("rest_answer_unique_keys", rest_reply(raw=b'{"a": 1, "a": 1}'), f"200 {DUPLICATE_KEY}"),
    ("rest_content_encoding", rest_reply(encoding="gzip"), "200 Content-Encoding gzip"),
])
def test_each_rule_sees_its_own_problem_only(rule: str, reply: Reply, observed: str) -> None:
    assert CHECKS[rule](reply)[0] == observed
    assert [r for r, check in CHECKS.items() if check(reply) is not None] == [rule]


def test_a_text_error_body_is_the_error_rules_case() -> None:
    reply = rest_reply("500", b"Internal Server Error", content_type="text/plain; charset=utf-8")
    assert all(check(reply) is None for check in CHECKS.values())


def test_witnessed_answers_are_kept_per_rule_and_model(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(envelope, "_witnessed", {})
    monkeypatch.setenv("PYTEST_CURRENT_TEST", "conformance/test_infer.py::test_x[rest-m] (call)")
    for _ in range(5):
        witness(rest_reply(raw=b'{"a": 1, "a": 2}'))
    witness(rest_reply())  # nothing wrong: not kept
    witness(rest_reply(content_type="text/html", url="http://h/v2"))  # no model: every model's test
    kept = witnessed("rest_answer_unique_keys", "m")
    assert len(kept) == envelope.WITNESS_LIMIT
    assert kept[0][0] == "conformance/test_infer.py::test_x[rest-m]"
    assert len(witnessed("rest_json_content_type", "other")) == 1
    assert witnessed("rest_content_encoding", "m") == []
