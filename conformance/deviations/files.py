"""Deviation files: TOML baselines of a server's known deviations, read, checked and written.

A file names the server identity it was recorded against (``[server]``, as
``GET /v2`` says it) and holds one ``[[deviation]]`` table per entry (see the
README, "Known deviations as data"). The suite's own files sit beside this
module, one per server identity (``mlserver-1.7.1.toml``); the one whose
identity the target reports is applied, plus any ``--deviations FILE``.
Reading is the standard library's ``tomllib``; writing is ``tomli_w``.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tomli_w

from conformance.deviations.entry import FEATURES, WHERE_KEYS, Deviation
from conformance.rules import RULES

BUILTIN_DIR = Path(__file__).resolve().parent
TRANSPORTS = ("rest", "grpc")
REQUIRED = ("rule", "transport", "observed")
TEXT_KEYS = ("spec", "server_does", "reproduce")
TABLE_KEYS = ("where", "trigger")
LIST_KEYS = ("models", "runtimes", "observed")
KNOWN_KEYS = frozenset((*REQUIRED, *TEXT_KEYS, *TABLE_KEYS, *LIST_KEYS))
_ENTRY_HEADER = re.compile(r"^[ \t]*\[\[[ \t]*deviation[ \t]*\]\]", re.MULTILINE)


class DeviationsError(Exception):
    """A deviation file the suite cannot use; the message is one line naming file and line."""


@dataclass(frozen=True)
class Baseline:
    """One deviation file: the server identity it was recorded against and its entries."""

    path: Path
    name: str
    version: str
    entries: tuple[Deviation, ...]

    @property
    def identity(self) -> str:
        return f"{self.name} {self.version}"

    def is_for(self, name: str, version: str) -> bool:
        return self.name.lower() == name.lower() and self.version == version


def load(path: Path) -> Baseline:
    """Read and check ``path``; :class:`DeviationsError` (file:line: what is wrong) otherwise."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise DeviationsError(f"{path}: cannot read the deviations file: {exc.strerror}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise DeviationsError(f"{path}: not valid TOML: {exc}") from None
    server = data.get("server")
    if not isinstance(server, dict) or not all(isinstance(server.get(k), str) for k in ("name", "version")):
        raise DeviationsError(f'{path}:1: needs a [server] table with name and version strings, as GET /v2 '
                              'says them, e.g. [server] name = "mlserver" version = "1.7.1"')
    unknown_top = sorted(set(data) - {"server", "deviation"})
    if unknown_top:
        raise DeviationsError(f"{path}:1: unknown top-level keys {unknown_top}: expected [server] and "
                              "[[deviation]] tables")
    raw = data.get("deviation", [])
    lines = [text.count("\n", 0, m.start()) + 1 for m in _ENTRY_HEADER.finditer(text)]
    entries = tuple(_entry(path, lines[i] if i < len(lines) else 1, item) for i, item in enumerate(raw))
    return Baseline(path, server["name"], server["version"], entries)


def _entry(path: Path, line: int, item: Any) -> Deviation:
    where = f"{path}:{line}"
    if not isinstance(item, dict):
        raise DeviationsError(f"{where}: a [[deviation]] entry must be a table")
    unknown = sorted(set(item) - KNOWN_KEYS)
    if unknown:
        raise DeviationsError(f"{where}: unknown keys {unknown}; an entry has {sorted(KNOWN_KEYS)}")
    missing = [k for k in REQUIRED if not item.get(k)]
    if missing:
        raise DeviationsError(f"{where}: the entry lacks {missing}")
    rule = item["rule"]
    if rule not in RULES:
        raise DeviationsError(f"{where}: unknown rule {rule!r}: rules are the ids in conformance/rules.py "
                              f"(e.g. {next(iter(RULES))!r})")
    if item["transport"] not in TRANSPORTS:
        raise DeviationsError(f"{where}: transport {item['transport']!r} is not one of {list(TRANSPORTS)}")
    for key in TEXT_KEYS:
        if not isinstance(item.get(key, ""), str):
            raise DeviationsError(f"{where}: {key} must be a string")
    for key in LIST_KEYS:
        value = item.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise DeviationsError(f"{where}: {key} must be a list of strings")
    for key in TABLE_KEYS:
        value = item.get(key, {})
        if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
            raise DeviationsError(f"{where}: {key} must be a table of strings, "
                                  f"e.g. {key} = {{ id = \"...\" }}")
    unknown_where = sorted(set(item.get("where", {})) - WHERE_KEYS)
    if unknown_where:
        raise DeviationsError(f"{where}: where names unknown test parameters {unknown_where}; "
                              f"they are {sorted(WHERE_KEYS)}")
    unknown_features = sorted(set(item.get("trigger", {})) - FEATURES)
    if unknown_features:
        raise DeviationsError(f"{where}: trigger names unknown features {unknown_features}; "
                              f"examples have {sorted(FEATURES)}")
    for feature, pattern in item.get("trigger", {}).items():
        try:
            re.compile(pattern)
        except re.error as exc:
            raise DeviationsError(f"{where}: trigger {feature} = {pattern!r} is not a regular expression: "
                                  f"{exc}") from None
    return Deviation(
        rule=rule, transport=item["transport"], observed=frozenset(item["observed"]),
        spec=item.get("spec", ""), server_does=item.get("server_does", ""),
        reproduce=item.get("reproduce", ""), where=dict(item.get("where", {})),
        models=frozenset(item.get("models", [])), runtimes=frozenset(item.get("runtimes", [])),
        trigger=dict(item.get("trigger", {})), file=path, line=line,
    )


def builtin_files() -> list[Path]:
    return sorted(BUILTIN_DIR.glob("*.toml"))


def builtin_for(name: str, version: str) -> Baseline | None:
    """The suite's own baseline for the server that calls itself ``name`` ``version``, if any."""
    for path in builtin_files():
        baseline = load(path)
        if baseline.is_for(name, version):
            return baseline
    return None


@dataclass(frozen=True)
class InForce:
    """The entries a run applies, and the files they come from."""

    baselines: tuple[Baseline, ...] = ()

    @property
    def entries(self) -> tuple[Deviation, ...]:
        return tuple(e for b in self.baselines for e in b.entries)

    def find(self, rule: str, params: Mapping[str, object], model: Any = None) -> list[Deviation]:
        """Every entry concerning this test (of ``model``)."""
        return [e for e in self.entries if e.matches(rule, params, model)]

    def unused(self, models: Iterable[Any]) -> list[Deviation]:
        """Entries scoped to models or runtimes none of which is in the run."""
        models = list(models)
        return [e for e in self.entries
                if (e.models or e.runtimes) and not any(e.in_scope(m) for m in models)]

    def describe(self) -> str:
        if not self.baselines:
            return "none: every rule is judged as written"
        return "; ".join(f"{b.path} ({b.identity}, {len(b.entries)} entries)" for b in self.baselines)


def in_force(name: str, version: str, extra: Sequence[Path] = (), builtin: bool = True) -> InForce:
    """The baselines for a target that says it is ``name`` ``version``: the suite's own (unless
    ``builtin`` is false) and each of ``extra``, which must have been recorded against it."""
    chosen = []
    if builtin and (own := builtin_for(name, version)) is not None:
        chosen.append(own)
    for path in extra:
        baseline = load(path)
        if not baseline.is_for(name, version):
            raise DeviationsError(
                f"{path}: recorded against {baseline.identity}, but the target says it is {name} {version} "
                "(GET /v2): record a baseline for this server with --record-deviations")
        chosen.append(baseline)
    return InForce(tuple(chosen))


def write(path: Path, name: str, version: str, entries: Sequence[Mapping[str, Any]],
          header: str = "") -> None:
    """Write a baseline file (``--record-deviations``); never overwrites an existing file."""
    document = {"server": {"name": name, "version": version}, "deviation": [dict(e) for e in entries]}
    text = tomli_w.dumps(document)
    comment = "".join(f"# {line}\n" if line else "#\n" for line in header.splitlines())
    with open(path, "x", encoding="utf-8") as out:
        out.write(comment + ("\n" if comment else "") + text)
