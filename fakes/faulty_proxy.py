"""A deliberately faulty V2 REST proxy in front of a real server: proof that the suite can fail.

It forwards every request to ``--upstream`` (a loopback URL only) and breaks the
answers with the chosen faults:

- ``drop-id``: inference answers lose their ``id``;
- ``wrong-shape``: each output's last dimension grows by one (count != product(shape));
- ``500-unknown-model``: a 404 for a model the upstream does not serve becomes a 500;
- ``wrong-prediction``: predictions change (labels + 1 mod 10, probabilities p -> 1 - p);
- ``no-versioned-paths``: every ``/v2/models/<m>/versions/...`` path answers 501
  ``{"error": "versioned paths not served"}`` (a server that serves unversioned paths only);
- ``unserved-version-listed``: model metadata ``versions`` also lists ``v-listed-not-served``,
  a version the upstream does not serve;
- ``wrong-output-datatype``: each output's datatype changes (INT64 -> INT32, FP32 -> FP64, ...), data kept;
- ``misnested-data``: each output's ``data`` becomes one list of all elements, whatever ``shape`` says;
- ``nan-literal``: inference answers get ``"parameters": {"score": NaN}`` (not JSON);
- ``duplicate-key``: inference answers repeat ``model_name`` (an earlier copy; the last one wins);
- ``text-content-type``: inference answers say ``Content-Type: text/plain``;
- ``gzip-unasked``: inference answers are gzip-encoded whatever the request's Accept-Encoding.

Everything else (health, metadata, ``GET /v2`` identity, errors) passes through.
It binds 127.0.0.1 on a free port::

    python -m fakes.faulty_proxy --upstream http://127.0.0.1:8080 --fault drop-id

or, in a test::

    with FaultyProxy("http://127.0.0.1:8080", {"wrong-shape"}) as proxy:
        proxy.url
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import ipaddress
import json
import re
import signal
import sys
import threading
from collections.abc import Callable, Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote, urlsplit

import httpx

from oip.names import LOOPBACK

TIMEOUT_S = 120.0
INFER_PATH = re.compile(r"^/v2/models/(?P<model>[^/]+)(/versions/[^/]+)?/infer$")
MODEL_PATH = re.compile(r"^/v2/models/(?P<model>[^/?]+)")
VERSIONED_PATH = re.compile(r"^/v2/models/[^/]+/versions/")
METADATA_PATH = re.compile(r"^/v2/models/[^/]+(/versions/[^/]+)?$")
UNSERVED_VERSION = "v-listed-not-served"
HOP_HEADERS = {"connection", "keep-alive", "transfer-encoding", "content-length", "content-encoding",
               "host", "accept-encoding", "upgrade", "te", "trailer", "proxy-connection"}


def _drop_id(body: dict[str, Any]) -> None:
    body.pop("id", None)


def _wrong_shape(body: dict[str, Any]) -> None:
    for output in body.get("outputs") or []:
        if output.get("shape"):
            output["shape"][-1] += 1


def _changed(value: Any) -> Any:
    if isinstance(value, list):
        return [_changed(v) for v in value]
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return (value + 1) % 10
    if isinstance(value, float):
        return 1.0 - value
    return value


def _wrong_prediction(body: dict[str, Any]) -> None:
    for output in body.get("outputs") or []:
        output["data"] = _changed(output.get("data"))


OTHER_DATATYPE = {"INT64": "INT32", "INT32": "INT64", "FP32": "FP64", "FP64": "FP32", "FP16": "FP32",
                  "UINT8": "UINT16", "BOOL": "UINT8", "BYTES": "BOOL"}


def _wrong_output_datatype(body: dict[str, Any]) -> None:
    for output in body.get("outputs") or []:
        output["datatype"] = OTHER_DATATYPE.get(output.get("datatype"), "INT8")


def _flat(value: Any) -> list[Any]:
    return [x for v in value for x in _flat(v)] if isinstance(value, list) else [value]


def _misnested_data(body: dict[str, Any]) -> None:
    for output in body.get("outputs") or []:
        output["data"] = [_flat(output.get("data") or [])]


def _nan_literal(body: dict[str, Any]) -> None:
    body["parameters"] = {**(body.get("parameters") or {}), "score": float("nan")}


INFER_FAULTS: dict[str, Callable[[dict[str, Any]], None]] = {
    "drop-id": _drop_id,
    "wrong-shape": _wrong_shape,
    "wrong-prediction": _wrong_prediction,
    "wrong-output-datatype": _wrong_output_datatype,
    "misnested-data": _misnested_data,
    "nan-literal": _nan_literal,
}
ENVELOPE_FAULTS = ("duplicate-key", "text-content-type", "gzip-unasked")  # bytes and headers of infer answers
FAULTS = (*INFER_FAULTS, "500-unknown-model", "no-versioned-paths", "unserved-version-listed")
FAULTS = (*FAULTS, *ENVELOPE_FAULTS)


def check_upstream(url: str) -> str:
    """The upstream URL, refused unless it is http(s) on a loopback address."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if parts.scheme not in ("http", "https") or not loopback:
        raise ValueError(f"upstream {url!r} must be an http(s) URL on a loopback address (127.0.0.0/8, ::1)")
    return url.rstrip("/")


class FaultyProxy:
    """The proxy server, run in a background thread of this process."""

    def __init__(self, upstream: str, faults: Iterable[str], host: str = LOOPBACK, port: int = 0) -> None:
        self.upstream = check_upstream(upstream)
        self.faults = frozenset(faults)
        unknown = self.faults - set(FAULTS)
        if unknown:
            raise ValueError(f"unknown fault(s) {sorted(unknown)}; known: {', '.join(FAULTS)}")
        self._client = httpx.Client(base_url=self.upstream, timeout=TIMEOUT_S)
        self._served: set[str] | None = None
        self._server = ThreadingHTTPServer((host, port), self._handler_class())
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> FaultyProxy:
        self._thread = threading.Thread(target=self._server.serve_forever, name="faulty-proxy", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._client.close()

    def __enter__(self) -> FaultyProxy:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- what the faults do ---------------------------------------------------

    def served_models(self) -> set[str]:
        if self._served is None:
            response = self._client.post("/v2/repository/index", json={})
            entries = response.json() if response.status_code == 200 else []
            self._served = {str(e.get("name")) for e in entries if isinstance(e, dict)}
        return self._served

    def rewrite(self, path: str, status: int, body: bytes) -> tuple[int, bytes]:
        """The (status, body) the client gets instead of the upstream's."""
        if "no-versioned-paths" in self.faults and VERSIONED_PATH.match(path):
            return 501, json.dumps({"error": "versioned paths not served"}).encode()
        if "unserved-version-listed" in self.faults and status == 200 and METADATA_PATH.match(path):
            with contextlib.suppress(ValueError):
                parsed = json.loads(body)
                if isinstance(parsed, dict):
                    listed = parsed.get("versions") if isinstance(parsed.get("versions"), list) else []
                    parsed["versions"] = [*listed, UNSERVED_VERSION]
                    return status, json.dumps(parsed).encode()
        if "500-unknown-model" in self.faults and status == 404:
            match = MODEL_PATH.match(path)
            if match and unquote(match["model"]) not in self.served_models():
                return 500, json.dumps({"error": "faulty proxy: unknown model as a server error"}).encode()
        active = [INFER_FAULTS[f] for f in sorted(self.faults) if f in INFER_FAULTS]
        if status == 200 and active and INFER_PATH.match(path):
            try:
                parsed = json.loads(body)
            except ValueError:
                return status, body
            if isinstance(parsed, dict):
                for fault in active:
                    fault(parsed)
                return status, json.dumps(parsed).encode()
        return status, body

    def envelope(self, path: str, status: int, body: bytes,
                 headers: list[tuple[str, str]]) -> tuple[bytes, list[tuple[str, str]]]:
        """The body bytes and headers of an inference answer, broken by the envelope faults."""
        if status != 200 or not INFER_PATH.match(path):
            return body, headers
        if "duplicate-key" in self.faults and body.startswith(b"{"):
            with contextlib.suppress(ValueError, AttributeError):
                name = json.loads(body).get("model_name")
                body = b'{"model_name": ' + json.dumps(name).encode() + b", " + body[1:]
        if "text-content-type" in self.faults:
            headers = [(k, v) for k, v in headers if k.lower() != "content-type"]
            headers.append(("Content-Type", "text/plain; charset=utf-8"))
        if "gzip-unasked" in self.faults:
            body = gzip.compress(body)
            headers = [*headers, ("Content-Encoding", "gzip")]
        return body, headers

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                self._forward()

            def do_POST(self) -> None:  # noqa: N802
                self._forward()

            def _forward(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                content = self.rfile.read(length) if length else None
                headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_HEADERS}
                headers["Accept-Encoding"] = "identity"
                try:
                    upstream = proxy._client.request(self.command, self.path, content=content,
                                                     headers=headers)
                    status, body = proxy.rewrite(urlsplit(self.path).path, upstream.status_code,
                                                 upstream.content)
                    reply_headers = [(k, v) for k, v in upstream.headers.items()
                                     if k.lower() not in HOP_HEADERS]
                    path = urlsplit(self.path).path
                    body, reply_headers = proxy.envelope(path, status, body, reply_headers)
                except httpx.HTTPError as exc:
                    status = 502
                    body = json.dumps({"error": f"faulty proxy: upstream failed: {exc}"}).encode()
                    reply_headers = [("Content-Type", "application/json")]
                self.send_response(status)
                for key, value in reply_headers:
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base's signature
                pass

        return Handler


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fakes.faulty_proxy", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--upstream", required=True, help="REST base URL of the real server (loopback)")
    parser.add_argument("--fault", action="append", choices=FAULTS, default=[], help="repeatable")
    parser.add_argument("--port", type=int, default=0, help=f"port on {LOOPBACK} (default: a free one)")
    args = parser.parse_args(argv)
    try:
        proxy = FaultyProxy(args.upstream, args.fault, port=args.port)
    except ValueError as exc:
        parser.error(str(exc))
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with proxy:
        print(json.dumps({"url": proxy.url, "faults": sorted(proxy.faults)}), flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            stop.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
