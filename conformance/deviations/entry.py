"""One known deviation of a server: which tests and which examples it covers, what the server does.

An entry covers the tests of its ``rule`` over its ``transport``, limited by
``where`` (other test parameters), ``models`` and ``runtimes`` (empty: all), and
within those tests the examples whose features match every regex of
``trigger`` (empty: every example). A covered example that fails with one of the
``observed`` signatures is the known deviation; any other failure is a real one.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: The features examples are described by (conformance.judge.features_of, the bad requests' own
#: ``broken`` marks, the envelope rules' probes): the keys a ``trigger`` may use.
FEATURES = frozenset({
    "model", "version", "id", "input", "shape", "rows", "datatype", "raw", "nested", "outputs", "padding",
    "path", "content_type", "bytes", "method", "field", "dimension", "layout", "element",
    "kind", "body", "accept_encoding", "during",
})
#: The test parameters other than transport and model: the keys ``where`` may use.
WHERE_KEYS = frozenset({"datatype", "endpoint", "path"})


@dataclass(frozen=True, eq=False)
class Deviation:
    rule: str
    transport: str
    observed: frozenset[str]  # reply signatures of this deviation (conformance.calls.Reply.signature)
    spec: str = ""  # the spec text (or the suite's rule) it breaks
    server_does: str = ""  # what the server does instead
    reproduce: str = ""  # a command; $URL is the REST base URL, $GRPC the gRPC host:port
    where: Mapping[str, str] = field(default_factory=dict)  # further test parameters it is limited to
    models: frozenset[str] = frozenset()  # model names it is limited to (empty: every model)
    runtimes: frozenset[str] = frozenset()  # runtimes (model `implementation`) it is limited to
    trigger: Mapping[str, str] = field(default_factory=dict)  # feature -> regex (re.search); empty: all
    file: Path | None = None
    line: int = 0

    def matches(self, rule: str, params: Mapping[str, object], model: Any = None) -> bool:
        """Whether this entry concerns the test of ``rule`` with ``params`` (and ``model``)."""
        if rule != self.rule or params.get("transport") != self.transport:
            return False
        if not all(str(params.get(key)) == value for key, value in self.where.items()):
            return False
        return self.in_scope(model)

    def in_scope(self, model: Any) -> bool:
        """Whether this entry holds for ``model`` (a ``ModelUnderTest``; None: a server-level test)."""
        if model is None:
            return not self.models and not self.runtimes
        if self.models and model.name not in self.models:
            return False
        return not self.runtimes or getattr(model, "implementation", None) in self.runtimes

    def triggered_by(self, features: Mapping[str, str]) -> bool:
        """Whether an example with ``features`` is one this entry covers."""
        return all(key in features and re.search(pattern, features[key])
                   for key, pattern in self.trigger.items())

    @property
    def scope(self) -> str:
        parts = [f"models {', '.join(sorted(self.models))}"] if self.models else []
        parts += [f"runtimes {', '.join(sorted(self.runtimes))}"] if self.runtimes else []
        parts += [f"examples with {k} ~ /{v}/" for k, v in self.trigger.items()]
        return "; ".join(parts) or "all models"

    @property
    def label(self) -> str:
        where = "".join(f" [{k}={v}]" for k, v in self.where.items())
        scope = f" [{self.scope}]" if self.models or self.runtimes or self.trigger else ""
        return f"{self.rule} ({self.transport}){where}{scope}"

    @property
    def place(self) -> str:
        """``file:line`` of the entry, for messages that tell the user where to edit."""
        return f"{self.file}:{self.line}" if self.file else "(built in code)"
