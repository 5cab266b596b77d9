"""conformance.probe: which version the rules use, from what a (mock) server answers."""

from __future__ import annotations

import json
from collections.abc import Callable

import httpx
import pytest

from conformance.probe import (
    Answer,
    Capabilities,
    candidates,
    choose,
    declared_versions,
    not_served,
    parse_index,
    probe_model,
    read_index,
)
from oip import RestClient

METADATA = {"name": "m", "platform": "p", "inputs": [{"name": "x", "datatype": "FP32", "shape": [-1, 2]}],
            "outputs": []}


def _client(routes: dict[str, tuple[int, object]]) -> RestClient:
    """A REST client whose server answers ``routes[path]`` (404 {"error"} elsewhere)."""

    def handler(request: httpx.Request) -> httpx.Response:
        status, body = routes.get(request.url.path, (404, {"error": "not found"}))
        content = body if isinstance(body, bytes) else json.dumps(body).encode()
        return httpx.Response(status, content=content)

    return RestClient("http://127.0.0.1:9", transport=httpx.MockTransport(handler))


def _server(versions: object = None, versioned: Callable[[str], int] = lambda v: 200,
            unversioned: int = 200) -> dict[str, tuple[int, object]]:
    meta = dict(METADATA) if versions is None else {**METADATA, "versions": versions}
    routes: dict[str, tuple[int, object]] = {"/v2/models/m": (200, meta),
                                             "/v2/models/m/ready": (unversioned, b"")}
    for v in ("1", "2", "v0.1.0"):
        routes[f"/v2/models/m/versions/{v}/ready"] = (versioned(v), b"")
        routes[f"/v2/models/m/versions/{v}"] = (versioned(v), {**meta, "name": "m"})
    return routes


def test_candidates_server_first_unique_and_bounded() -> None:
    assert candidates("v0.1.0", ["1", "v0.1.0"], "v0.1.0") == ["v0.1.0", "1"]
    assert candidates(None, None, None) == []
    assert candidates(None, [str(i) for i in range(20)], "h") == [*map(str, range(8)), "h"]


def test_declared_versions_and_index_read_leniently() -> None:
    assert declared_versions({"versions": ["1", 2]}) == ("1", "2")
    assert declared_versions({"versions": "1"}) is None
    assert declared_versions([]) is None
    index = parse_index([{"name": "a", "version": "1", "state": "READY"}, {"name": "b", "version": ""},
                         "junk", {"version": "x"}])
    assert index == {"a": ("1", "READY"), "b": (None, None)}
    assert parse_index({"error": "no"}) is None


def test_choose_first_served_version() -> None:
    no, yes = Answer("GET", "/a", 404), Answer("GET", "/b", 200)
    assert choose([("v0.1.0", no), ("1", yes)]) == "1"
    assert choose([("v0.1.0", no)]) is None
    assert not Answer("GET", "/c", "no-response").ok


def test_server_declared_version_wins_over_the_catalogue() -> None:
    """Triton: metadata declares "1"; the catalogue's v0.1.0 is not served."""
    server = _server(["1"], lambda v: 200 if v == "1" else 404)
    facts = probe_model(_client(server), "m", "v0.1.0", "models dir")
    assert facts.version == "1"
    assert facts.declared_versions == ("1",)
    assert [v for v, _ in facts.versioned] == ["1", "v0.1.0"]
    assert facts.named_by_server("1") == ["the model metadata's `versions`"]
    assert facts.named_by_server("v0.1.0") == []
    assert facts.metadata.path == "/v2/models/m/versions/1"
    assert Capabilities("s", "1", (), None, False, None, "", (facts,)).no_versioned_path("m") is None


def test_no_versioned_paths_uses_the_unversioned_path() -> None:
    facts = probe_model(_client(_server([], lambda v: 501)), "m", "v0.1.0", "models dir", ("v0.1.0", "READY"))
    assert facts.version is None
    assert not facts.versioned_served and facts.unversioned_served and facts.ready
    assert facts.metadata.path == "/v2/models/m" and facts.metadata_body["name"] == "m"
    assert facts.named_by_server("v0.1.0") == ["the repository index"]
    assert not_served(facts) is None
    probe = Capabilities("s", "1", (), None, False, None, "not asked", (facts,))
    assert probe.versioned_paths == "not served"
    assert "rule probe_versioned_path_served" in (probe.no_versioned_path("m") or "")
    assert probe.no_versioned_path("other") is None
    assert json.loads(json.dumps(probe.as_dict()))["models"][0]["versioned"]["v0.1.0"]["status"] == 501


def test_a_model_served_nowhere_says_why() -> None:
    facts = probe_model(_client({}), "m", "v0.1.0", "seed catalogue")
    assert not facts.ready and facts.metadata_body is None
    assert not_served(facts) == "GET /v2/models/m/ready answered 404 '{\"error\": \"not found\"}'"


@pytest.mark.parametrize("body", [b"not json", {"name": 3, "versions": {"a": 1}}, ["a list"]])
def test_a_contradictory_or_odd_metadata_is_a_fact_not_a_crash(body: object) -> None:
    routes = {"/v2/models/m": (200, body), "/v2/models/m/ready": (200, b"")}
    facts = probe_model(_client(routes), "m", None)
    assert facts.version is None and facts.declared_versions is None
    assert facts.metadata_name in (None, 3)
    json.dumps(facts.as_dict())


def test_index_not_served() -> None:
    answer, index = read_index(_client({}))
    assert index is None and answer.status == 404 and answer.method == "POST"
