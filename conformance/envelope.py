"""The envelope of a REST answer: its headers, and the exact bytes of its body read strictly.

``Reply.body`` is what a lenient parse gives (Python's ``json``: NaN/Infinity
accepted, the last of duplicate keys wins), so that the other rules keep working
on a sloppy answer. :func:`strict_json_problems` says what a strict reader
(RFC 8259) objects to, each problem a short kind (the ``observed`` signature)
and a sentence. The standard library does the parsing; the hooks only watch.

One check per envelope rule (:data:`CHECKS`) judges a reply. :func:`witness` runs
them on every REST reply any rule gets (``conformance.checks.sent``) and keeps the
first few that break one, so that the envelope rule reports them too, under its
own name, with the test that got them; no other rule fails for them.
"""

from __future__ import annotations

import codecs
import json
import os
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote

JSON_MEDIA_TYPE = "application/json"
IDENTITY = "identity"

# Problem kinds (the part of an ``observed`` signature after the status).
NOT_UTF8 = "not UTF-8"
BOM = "byte order mark"
NOT_JSON = "not JSON"
NONFINITE = "NaN/Infinity literal"
DUPLICATE_KEY = "duplicate key"


def strict_json_problems(raw: bytes) -> tuple[tuple[str, str], ...]:
    """(kind, sentence) pairs: where ``raw`` is not an RFC 8259 JSON text with unique names.

    An empty body has no problem here (whether a body was due is the caller's question).
    Duplicate names break RFC 8259 §4's SHOULD ("The names within an object SHOULD be
    unique"), the rest its MUSTs: UTF-8 without a byte order mark (§8.1), the grammar,
    which has no NaN or Infinity (§6). Whether the value is the right object (or, for
    Triton's repository index, an array) is the other rules' question.
    """
    if not raw:
        return ()
    problems: list[tuple[str, str]] = []
    if raw.startswith(codecs.BOM_UTF8):
        problems.append((BOM, "the body starts with a UTF-8 byte order mark (RFC 8259 §8.1: MUST NOT)"))
        raw = raw[len(codecs.BOM_UTF8):]
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        why = f"the body is not UTF-8 (byte {exc.start}: {exc.reason}; RFC 8259 §8.1)"
        return (*problems, (NOT_UTF8, why))
    duplicates: list[str] = []
    constants: list[str] = []

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        seen: set[str] = set()
        for key, _ in items:
            if key in seen:
                duplicates.append(key)
            seen.add(key)
        return dict(items)

    def constant(name: str) -> float:
        constants.append(name)
        return float(name)

    try:
        json.loads(text, object_pairs_hook=pairs, parse_constant=constant)
    except json.JSONDecodeError as exc:
        return (*problems, (NOT_JSON, f"the body is not JSON: {exc}"))
    except RecursionError:
        return (*problems, (NOT_JSON, "the body is nested too deep to parse"))
    if constants:
        problems.append((NONFINITE, f"the body holds {sorted(set(constants))}: no JSON number (RFC 8259 §6)"))
    if duplicates:
        problems.append((DUPLICATE_KEY, f"an object repeats the name(s) {sorted(set(duplicates))} "
                                        "(RFC 8259 §4: names SHOULD be unique; readers keep either value)"))
    return tuple(problems)


def header(headers: Mapping[str, str], name: str) -> str | None:
    """The value of header ``name`` (any case), None when absent."""
    wanted = name.lower()
    return next((v for k, v in headers.items() if k.lower() == wanted), None)


def media_type(headers: Mapping[str, str]) -> str:
    """``Content-Type`` without parameters, lower case ("" when absent)."""
    return (header(headers, "content-type") or "").split(";", 1)[0].strip().lower()


def accepted_codings(accept_encoding: str | None) -> set[str]:
    """The content codings an ``Accept-Encoding`` value allows (RFC 9110 §12.5.3), lower case.

    No header allows any coding (``*``); ``identity`` is allowed unless refused by
    ``identity;q=0`` or ``*;q=0``.
    """
    if accept_encoding is None:
        return {"*"}
    allowed, refused = set(), set()
    for item in accept_encoding.split(","):
        coding, _, params = item.strip().partition(";")
        coding = coding.strip().lower()
        if not coding:
            continue
        q = 1.0
        for param in params.split(";"):
            key, _, value = param.strip().partition("=")
            if key.strip().lower() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        (allowed if q > 0 else refused).add(coding)
    if IDENTITY not in refused and not ("*" in refused and IDENTITY not in allowed):
        allowed.add(IDENTITY)
    return allowed


def content_codings(headers: Mapping[str, str]) -> list[str]:
    """The codings a ``Content-Encoding`` header lists, in order, lower case."""
    value = header(headers, "content-encoding") or ""
    return [c.strip().lower() for c in value.split(",") if c.strip()]


def encoding_problem(headers: Mapping[str, str], accept_encoding: str | None) -> str | None:
    """Why the answer's ``Content-Encoding`` is not one ``accept_encoding`` allowed (None if it is)."""
    allowed = accepted_codings(accept_encoding)
    if "*" in allowed:
        return None
    unasked = [c for c in content_codings(headers) if c != IDENTITY and c not in allowed]
    if not unasked:
        return None
    asked = "no Accept-Encoding" if accept_encoding is None else f"Accept-Encoding: {accept_encoding}"
    return f"the answer is encoded {', '.join(unasked)}, which the request ({asked}) did not allow"


# ------------------------------------------------------------ one check per rule, on a REST reply
# Each returns None, or (observed, why): ``observed`` is the short signature, ``why`` the sentence.
# ``reply`` is a ``conformance.calls.Reply`` (REST).


def claims_json(reply: Any) -> bool:
    """A body labelled JSON, or any 200 body (success answers are JSON objects on every endpoint
    that has a body); a text error body is the error rules' case, not a JSON one."""
    media = media_type(reply.headers)
    labelled = media == JSON_MEDIA_TYPE or media.endswith("+json")
    return bool(reply.raw) and (labelled or reply.status == "200")


def content_type_problem(reply: Any) -> tuple[str, str] | None:
    """rest_json_content_type: a JSON body is labelled application/json (parameters allowed)."""
    if reply.body is None:
        return None  # no body, or not JSON at all (a text error body is the error rules' case)
    media = media_type(reply.headers)
    if media == JSON_MEDIA_TYPE:
        return None
    return (f"{reply.status} {media or 'no Content-Type'}",
            f"a JSON answer should say Content-Type: {JSON_MEDIA_TYPE}, it says "
            f"{header(reply.headers, 'content-type')!r}")


def strict_json_problem(reply: Any) -> tuple[str, str] | None:
    """rest_answer_strict_json: a body that claims to be JSON is RFC 8259 JSON (names aside)."""
    if not claims_json(reply):
        return None
    problems = [(k, why) for k, why in reply.json_problems if k != DUPLICATE_KEY]
    if not problems:
        return None
    return f"{reply.status} {problems[0][0]}", "; ".join(why for _, why in problems)


def unique_keys_problem(reply: Any) -> tuple[str, str] | None:
    """rest_answer_unique_keys: no object of a body that claims to be JSON repeats a name."""
    problems = [why for k, why in reply.json_problems if k == DUPLICATE_KEY] if claims_json(reply) else []
    return (f"{reply.status} {DUPLICATE_KEY}", "; ".join(problems)) if problems else None


def content_encoding_problem(reply: Any) -> tuple[str, str] | None:
    """rest_content_encoding: no Content-Encoding, or one the request's Accept-Encoding allowed."""
    problem = encoding_problem(reply.headers, reply.accept_encoding)
    if problem is None:
        return None
    return f"{reply.status} Content-Encoding {header(reply.headers, 'content-encoding')}", problem


CHECKS = {
    "rest_json_content_type": content_type_problem,
    "rest_answer_strict_json": strict_json_problem,
    "rest_answer_unique_keys": unique_keys_problem,
    "rest_content_encoding": content_encoding_problem,
}


# ------------------------------------------------------------ answers other rules got

WITNESS_LIMIT = 3  # replies kept per (rule, model): the first ones seen
_MODEL_IN_URL = re.compile(r"/v2/models/([^/\s?'\"]+)")
_witnessed: dict[tuple[str, str | None], list[tuple[str, Any]]] = {}


def witness(reply: Any) -> None:
    """Keep a REST reply another rule got if it breaks an envelope rule, for that rule to report.

    Cheap: the header checks always, the strict parse only on bodies that claim to be JSON.
    """
    if reply.transport != "rest" or reply.status == "no-response":
        return
    match = _MODEL_IN_URL.search(reply.repro)
    model = unquote(match[1]) if match else None
    during = os.environ.get("PYTEST_CURRENT_TEST", "").rsplit(" ", 1)[0]
    for rule, check in CHECKS.items():
        kept = _witnessed.setdefault((rule, model), [])
        if len(kept) < WITNESS_LIMIT and check(reply) is not None:
            kept.append((during, reply))


def witnessed(rule: str, model: str) -> list[tuple[str, Any]]:
    """(test id, reply) of the replies other tests got for ``model`` (or no model) breaking ``rule``."""
    return [*_witnessed.get((rule, model), []), *_witnessed.get((rule, None), [])]
