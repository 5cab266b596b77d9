"""A thin V2 REST client that reports what the server said instead of raising.

Every method returns a ``RestResponse`` whatever the status code, so tests
can assert on 4xx/5xx answers. Only failing to reach the server at all
raises (``TargetUnreachable``). ``RestClient.curl`` renders a request as a
copy-pasteable ``curl`` command to reproduce a failure by hand.
"""

from __future__ import annotations

import json as jsonlib
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any
from urllib.parse import quote

import httpx

from .errors import TargetUnreachable

__all__ = ["RestClient", "RestResponse", "model_path"]

_JSON_HEADERS = {"Content-Type": "application/json"}


def model_path(model: str, version: str | None = None, suffix: str = "") -> str:
    """Return ``/v2/models/{model}[/versions/{version}]{suffix}`` (names URL-quoted)."""
    path = f"/v2/models/{quote(model, safe='')}"
    if version:
        path += f"/versions/{quote(version, safe='')}"
    return path + suffix


@dataclass(frozen=True)
class RestResponse:
    """Status, headers and body of one HTTP response; ``json`` is parsed on first use."""

    status: int
    headers: Mapping[str, str] = field(repr=False)
    body: bytes = field(repr=False)

    @cached_property
    def json(self) -> Any | None:
        """The body parsed as JSON, or ``None`` if it is empty or not JSON."""
        if not self.body:
            return None
        try:
            return jsonlib.loads(self.body)
        except ValueError:
            return None

    @property
    def ok(self) -> bool:
        """True for a 2xx status."""
        return 200 <= self.status < 300

    @property
    def text(self) -> str:
        """The body decoded as UTF-8 (undecodable bytes replaced)."""
        return self.body.decode("utf-8", errors="replace")


class RestClient:
    """V2 REST endpoints of one server, e.g. ``RestClient("http://127.0.0.1:8080")``.

    Sends ``Accept-Encoding: identity`` by default so bodies arrive
    uncompressed (MLServer gzips otherwise). ``timeout`` is in seconds;
    ``headers`` are added to every request; ``transport`` is passed to
    ``httpx.Client`` (e.g. ``httpx.MockTransport`` in tests).
    """

    def __init__(
        self,
        base_url: str,
        timeout: float = 30.0,
        headers: Mapping[str, str] | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.headers = {"Accept-Encoding": "identity", **(headers or {})}
        self._http = httpx.Client(
            base_url=self.base_url, timeout=timeout, headers=self.headers, transport=transport
        )

    # -- endpoints -------------------------------------------------------

    def live(self) -> RestResponse:
        return self.get("/v2/health/live")

    def ready(self) -> RestResponse:
        return self.get("/v2/health/ready")

    def server_metadata(self) -> RestResponse:
        return self.get("/v2")

    def model_metadata(self, model: str, version: str | None = None) -> RestResponse:
        return self.get(model_path(model, version))

    def model_ready(self, model: str, version: str | None = None) -> RestResponse:
        return self.get(model_path(model, version, "/ready"))

    def infer(
        self,
        model: str,
        payload: Mapping[str, Any],
        version: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> RestResponse:
        """POST ``payload`` as JSON to the model's ``/infer`` endpoint."""
        return self.post_raw(
            model_path(model, version, "/infer"),
            _dump_json(payload),
            {**_JSON_HEADERS, **(headers or {})},
        )

    # -- raw access (for malformed-request tests) ------------------------

    def get(self, path: str, headers: Mapping[str, str] | None = None) -> RestResponse:
        return self.request("GET", path, headers=headers)

    def post_raw(self, path: str, content: bytes, headers: Mapping[str, str] | None = None) -> RestResponse:
        """POST ``content`` byte for byte; no Content-Type unless given in ``headers``."""
        return self.request("POST", path, content, headers)

    def request(
        self,
        method: str,
        path: str,
        content: bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> RestResponse:
        """Send any request to ``path`` (relative to ``base_url``)."""
        try:
            response = self._http.request(method, path, content=content, headers=headers)
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            raise TargetUnreachable(self.base_url + path, str(exc) or type(exc).__name__) from exc
        return RestResponse(response.status_code, response.headers, response.content)

    # -- reproduction ----------------------------------------------------

    def curl(
        self,
        method: str,
        path: str,
        body: Mapping[str, Any] | bytes | str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> str:
        """Render a request as a shell ``curl`` command that reproduces it.

        A mapping ``body`` is sent as JSON (like ``infer``); bytes that are not
        printable text are piped in through ``printf`` with octal escapes.
        """
        all_headers = dict(self.headers)
        if isinstance(body, Mapping):
            all_headers.update(_JSON_HEADERS)
            body = _dump_json(body)
        all_headers.update(headers or {})
        if isinstance(body, str):
            body = body.encode("utf-8")
        words = ["curl", "-sS", "-X", method.upper(), self.base_url + path]
        for name, value in all_headers.items():
            words += ["-H", f"{name}: {value}"]
        prefix = ""
        if body is not None:
            if _is_printable(body) and not body.startswith(b"@"):  # curl reads @file
                words += ["--data-binary", body.decode("utf-8")]
            else:
                prefix = f"printf {shlex.quote(_printf_escape(body))} | "
                words += ["--data-binary", "@-"]
        return prefix + shlex.join(words)

    # -- lifecycle -------------------------------------------------------

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> RestClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"RestClient({self.base_url!r})"


def _dump_json(payload: Mapping[str, Any]) -> bytes:
    # NaN/Infinity pass through: the codec refuses them unless explicitly allowed.
    return jsonlib.dumps(payload, separators=(",", ":")).encode("utf-8")


def _is_printable(body: bytes) -> bool:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return all(ch.isprintable() or ch in "\n\t" for ch in text)


def _printf_escape(body: bytes) -> str:
    """Escape bytes for a POSIX ``printf`` format string."""
    out = []
    for byte in body:
        char = chr(byte)
        if 0x20 <= byte < 0x7F and char not in "\\%":
            out.append(char)
        else:
            out.append(f"\\{byte:03o}")
    return "".join(out)
