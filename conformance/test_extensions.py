"""Triton's model repository and statistics extensions, over REST and gRPC.

Model repository (``model_repository``): the index, and load / unload with the model's
readiness before and after. gRPC calls go to ``inference.GRPCInferenceService`` (Triton's
documents, MLServer too), else to MLServer's deprecated
``inference.model_repository.ModelRepositoryService`` (same messages). Unloading changes
what the server serves: that rule runs last (``changes_server_state``), first reloads the
loaded model (so the run knows it can load it back), and leaves it loaded and ready or
fails loudly saying it did not.

Statistics (``statistics``): ``GET /v2/models/<m>[/versions/<v>]/stats`` and gRPC
ModelStatistics have the documented shape, and the counts grow after an inference.

See :mod:`conformance.extension_checks` for how a rule treats an extension the server
does not advertise.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from conformance.calls import GrpcTransport, Reply, RestTransport, Transport
from conformance.checks import RuleViolation, expect_ok, expect_true, sent, violation
from conformance.explore import CheckOnce
from conformance.extension_checks import (
    STAT_KEYS,
    advertised,
    answered,
    grpc_ext,
    note_served,
    poll,
    rest_json,
    rest_stat_problems,
    skip_unserved,
    unserved,
)
from conformance.models import ModelUnderTest
from conformance.strategies import generated_call
from conformance.target import Target
from oip.extensions_grpc import REPOSITORY_SERVICES, ExtensionsGrpcClient, ext_pb
from oip.names import GRPC_SERVICE
from oip.rest import model_path

READY_AFTER_LOAD_S = 30.0
UNREADY_AFTER_UNLOAD_S = 10.0
MAX_READY_PROBES = 50  # index entries whose readiness is checked


# ------------------------------------------------------------------ the repository API, per transport


class Repository:
    """Index, load and unload over one transport; each call gives a :class:`Reply`."""

    where = ""  # gRPC: the service that answered, when not Triton's

    def index(self, ready: bool) -> tuple[Reply, list[dict[str, Any]]]:
        raise NotImplementedError

    def load(self, model: str) -> Reply:
        raise NotImplementedError

    def unload(self, model: str) -> Reply:
        raise NotImplementedError

    def close(self) -> None:
        pass


class RestRepository(Repository):
    def __init__(self, transport: RestTransport) -> None:
        self.transport = transport

    def index_reply(self, ready: bool) -> Reply:
        return rest_json(self.transport, "/v2/repository/index", json.dumps({"ready": ready}).encode())

    def index(self, ready: bool) -> tuple[Reply, list[dict[str, Any]]]:
        reply = self.index_reply(ready)
        if not reply.ok:
            return reply, []
        body = reply.body
        expect_true(isinstance(body, list), reply, "the index answer must be a JSON array",
                    "index not a list")
        for entry in body:
            # "reason" is shown without #optional, but described as "the reason, if any", and Triton
            # leaves it out when there is none: optional here, like "version".
            ok = (isinstance(entry, dict) and all(isinstance(entry.get(k), str) for k in ("name", "state"))
                  and all(isinstance(entry.get(k, ""), str) for k in ("version", "reason")))
            expect_true(ok, reply, f"index entry {entry!r} must be strings: name, state, and version and "
                                   "reason when given", "bad index entry")
        return reply, body

    def load(self, model: str) -> Reply:
        return rest_json(self.transport, f"/v2/repository/models/{model}/load", b"{}")

    def unload(self, model: str) -> Reply:
        return rest_json(self.transport, f"/v2/repository/models/{model}/unload", b"{}")


class GrpcRepository(Repository):
    def __init__(self, transport: GrpcTransport) -> None:
        self.transport = transport
        self.client = ExtensionsGrpcClient(transport.target)
        self.service = GRPC_SERVICE

    def find_service(self) -> Reply:
        """Index on Triton's service, else MLServer's own; the first answer that is not UNIMPLEMENTED."""
        reply = None
        for service in REPOSITORY_SERVICES:
            self.service = service
            reply = self._index(False)
            if not unserved(reply):
                break
        self.where = "" if self.service == GRPC_SERVICE else f"served on {self.service} only"
        return reply

    def _index(self, ready: bool) -> Reply:
        return grpc_ext(self.transport, self.client, self.service, "RepositoryIndex",
                        ext_pb.RepositoryIndexRequest(ready=ready))

    def index(self, ready: bool) -> tuple[Reply, list[dict[str, Any]]]:
        reply = self._index(ready)
        if not reply.ok:
            return reply, []
        return reply, [{"name": m.name, "version": m.version, "state": m.state, "reason": m.reason}
                       for m in reply.message.models]

    def load(self, model: str) -> Reply:
        return grpc_ext(self.transport, self.client, self.service, "RepositoryModelLoad",
                        ext_pb.RepositoryModelLoadRequest(model_name=model))

    def unload(self, model: str) -> Reply:
        return grpc_ext(self.transport, self.client, self.service, "RepositoryModelUnload",
                        ext_pb.RepositoryModelUnloadRequest(model_name=model))

    def close(self) -> None:
        self.client.close()


@contextmanager
def repository(transport: Transport) -> Iterator[Repository]:
    repo = RestRepository(transport) if isinstance(transport, RestTransport) else GrpcRepository(transport)
    try:
        yield repo
    finally:
        repo.close()


def first_reply(repo: Repository) -> Reply:
    """The index, asked once: on gRPC this also finds the service that serves it."""
    return repo.find_service() if isinstance(repo, GrpcRepository) else repo.index_reply(False)


def is_ready(transport: Transport, name: str, version: str | None) -> bool:
    reply = transport.model_ready(name, version)
    return reply.ok and (transport.name == "rest" or bool(reply.message.ready))


# ------------------------------------------------------------------ model_repository: index


def _same_states_as_rest(reply: Reply, entries: list[dict[str, Any]], rest: RestTransport) -> None:
    """The gRPC index gives each model the state the REST index gives it (the same server, one index)."""
    rest_reply, rest_entries = RestRepository(rest).index(False)
    if not rest_reply.ok:
        return  # nothing to compare with; the REST variant of the rule says why
    by_rest = {(e["name"], e.get("version", "")): e["state"] for e in rest_entries}
    differ = [f"{e['name']} {e['version']}: gRPC {e['state']!r}, REST {by_rest[key]!r}" for e in entries
              if (key := (e["name"], e["version"])) in by_rest and by_rest[key] != e["state"]]
    expect_true(not differ, reply, "the gRPC index gives other states than the REST index "
                                   f"({rest_reply.repro}): " + "; ".join(differ),
                "gRPC state differs from REST")


def test_repository_index(transport: Transport, target: Target, request: pytest.FixtureRequest,
                          check_once: CheckOnce) -> None:
    with repository(transport) as repo:
        probe = first_reply(repo)
        is_advertised = advertised(target, request)
        if not is_advertised and unserved(probe):
            skip_unserved(answered(probe))

        def check() -> None:
            expect_true(not (is_advertised and repo.where), probe,
                        f"the repository calls belong to {GRPC_SERVICE} (Triton's documents): {repo.where}",
                        "UNIMPLEMENTED on GRPCInferenceService")
            for ready in (False, True):
                reply, entries = repo.index(ready)
                expect_ok(reply, f"the repository index (ready={str(ready).lower()})")
                names = {e["name"] for e in entries}
                missing = [m.name for m in target.models if m.name not in names]
                expect_true(not missing, reply, f"the index (ready={str(ready).lower()}) lacks the served, "
                                                f"ready models {missing}", "index lacks a ready model")
                if not ready and isinstance(repo, GrpcRepository):
                    _same_states_as_rest(reply, entries, request.getfixturevalue("rest_transport"))
                if ready:
                    for entry in entries[:MAX_READY_PROBES]:
                        expect_true(is_ready(transport, entry["name"], entry.get("version") or None), reply,
                                    f"the ready index lists {entry!r}, which does not answer ready",
                                    "ready index lists an unready model")

        check_once(check)
        if not is_advertised:
            note_served(request, repo.where)


# ------------------------------------------------------------------ model_repository: load / unload


def _restore(model: ModelUnderTest, transports: list[Transport]) -> list[str]:
    """Load ``model`` again over every transport until it is ready; what was tried, when it never is."""
    tried = []
    for transport in transports:
        with repository(transport) as repo:
            if isinstance(repo, GrpcRepository):
                repo.find_service()
            reply = repo.load(model.name)
            tried.append(f"{reply.signature}:\n{reply.repro}")
            if poll(lambda t=transport: is_ready(t, model.name, model.version), READY_AFTER_LOAD_S):
                return []
    return tried


@pytest.mark.changes_server_state
def test_repository_load_unload(transport: Transport, model: ModelUnderTest, target: Target,
                                request: pytest.FixtureRequest, check_once: CheckOnce) -> None:
    if not is_ready(transport, model.name, model.version):
        pytest.fail(f"{model.name} is not ready before the load/unload rule runs: an earlier rule left it so")
    is_advertised = advertised(target, request)

    def ready() -> bool:
        return is_ready(transport, model.name, model.version)

    def wait_ready(reply: Reply, what: str) -> None:
        expect_true(poll(ready, READY_AFTER_LOAD_S), reply,
                    f"{model.name} is not ready {READY_AFTER_LOAD_S:.0f} s after {what}",
                    f"not ready after {what}")

    with repository(transport) as repo:
        try:
            found = first_reply(repo)
            if not is_advertised and unserved(found):
                skip_unserved(f"the repository index: {answered(found)}")
            reload = repo.load(model.name)  # of a loaded model: a reload, and proof it can be loaded back
            if not is_advertised and unserved(reload):
                skip_unserved(f"load: {answered(reload)}")

            def check() -> None:
                expect_ok(reload, f"load of the loaded model {model.name} (a reload)")
                wait_ready(reload, "a reload")
                unload = repo.unload(model.name)
                expect_ok(unload, f"unload of {model.name}")
                expect_true(poll(lambda: not ready(), UNREADY_AFTER_UNLOAD_S), unload,
                            f"{model.name} still answers ready {UNREADY_AFTER_UNLOAD_S:.0f} s after its "
                            "unload",
                            "ready after unload")
                index, entries = repo.index(True)
                expect_ok(index, "the ready index after an unload")
                expect_true(model.name not in {e["name"] for e in entries}, index,
                            f"the ready index still lists the unloaded {model.name}",
                            "unloaded model in ready index")
                load = repo.load(model.name)
                expect_ok(load, f"load of the unloaded {model.name}")
                wait_ready(load, "its load")
                if model.signature.inputs:
                    # raw contents over gRPC: valid for every datatype (a typed FP16 answer is its own rule)
                    expect_ok(sent(transport, generated_call(model, raw=True)),
                              f"inference on {model.name} after its load")

            check_once(check)
        finally:
            if not ready():
                others = [t for t in (request.getfixturevalue("rest_transport"),) if t is not transport]
                tried = _restore(model, [transport, *others])
                if tried:
                    raise RuleViolation(
                        f"{model.name} STAYS UNLOADED after the load/unload rule: every later rule on it "
                        "fails. Load attempts:\n" + "\n".join(tried), "model left unloaded")
    if not is_advertised:
        note_served(request, repo.where)


# ------------------------------------------------------------------ statistics


def _grpc_stat(entry: Any) -> dict[str, Any]:
    stats = entry.inference_stats
    return {"name": entry.name, "version": entry.version, "last_inference": entry.last_inference,
            "inference_count": entry.inference_count, "execution_count": entry.execution_count,
            "success": stats.success.count}


def _stats_reply(transport: Transport, model: ModelUnderTest, version: str | None,
                 every_model: bool = False) -> Reply:
    """Statistics of the model (and version), or of every model (``GET /v2/models/stats``, name "")."""
    if isinstance(transport, RestTransport):
        return transport.get("/v2/models/stats" if every_model else model_path(model.name, version, "/stats"))
    name = "" if every_model else model.name
    with ExtensionsGrpcClient(transport.target) as client:
        return grpc_ext(transport, client, GRPC_SERVICE, "ModelStatistics",
                        ext_pb.ModelStatisticsRequest(name=name, version=version or ""))


def _stats(transport: Transport, model: ModelUnderTest, version: str | None,
           every_model: bool = False) -> tuple[Reply, list[dict[str, Any]]]:
    """The model's entries of the statistics answer, checked for shape."""
    reply = _stats_reply(transport, model, version, every_model)
    if isinstance(transport, RestTransport):
        if not reply.ok:
            return reply, []
        entries = reply.body.get("model_stats") if isinstance(reply.body, dict) else None
        expect_true(isinstance(entries, list), reply, 'the answer must be {"model_stats": [...]}',
                    "no model_stats")
        for entry in entries:
            problems = rest_stat_problems(entry)
            expect_true(not problems, reply,
                        f"a $model_stat is not the documented shape: {'; '.join(problems)}", "bad model_stat")
        mine = [{**e, "success": e["inference_stats"]["success"]["count"]} for e in entries]
    else:
        if not reply.ok:
            return reply, []
        expect_true(all(e.HasField("inference_stats") for e in reply.message.model_stats), reply,
                    "every ModelStatistics must carry inference_stats", "no inference_stats")
        mine = [_grpc_stat(e) for e in reply.message.model_stats]
    mine = [e for e in mine
            if e["name"] == model.name and (version is None or e.get("version", version) == version)]
    expect_true(bool(mine), reply, f"no statistics entry for {model.name}"
                + (f" version {version}" if version else ""), "no entry for the model")
    return reply, mine


def _totals(entries: list[dict[str, Any]]) -> dict[str, int]:
    return {k: sum(e[k] for e in entries) if k != "last_inference" else max(e[k] for e in entries)
            for k in (*STAT_KEYS, "success")}


def test_model_statistics(transport: Transport, model: ModelUnderTest, target: Target,
                          request: pytest.FixtureRequest, check_once: CheckOnce) -> None:
    is_advertised = advertised(target, request)
    first = _stats_reply(transport, model, model.version)
    if not is_advertised and unserved(first):
        skip_unserved(answered(first))
    if not model.signature.inputs:
        pytest.skip(model.missing)

    def check() -> None:
        reply, _ = _stats(transport, model, None, every_model=True)
        expect_ok(reply, "statistics of every model")
        if model.version is not None:
            reply, _ = _stats(transport, model, None)
            expect_ok(reply, "statistics on the unversioned path")
        before_reply, before = _stats(transport, model, model.version)
        expect_ok(before_reply, "statistics")
        expect_ok(sent(transport, generated_call(model, n=2)), "the inference counted")
        after: dict[str, Any] = {}

        def grown() -> bool:
            reply, entries = _stats(transport, model, model.version)
            expect_ok(reply, "statistics")
            after.update(totals=_totals(entries), reply=reply)
            new, old = after["totals"], _totals(before)
            return all(new[k] > old[k] for k in ("inference_count", "execution_count", "success")) \
                and new["last_inference"] >= old["last_inference"] > -1 and new["last_inference"] > 0

        if not poll(grown, 2.0):
            raise violation(after["reply"], "the counts did not grow after a successful inference: "
                                            f"before {_totals(before)}, after {after['totals']}",
                            "counts did not grow")

    check_once(check)
    if not is_advertised:
        note_served(request)

