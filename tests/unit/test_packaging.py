"""The project installs as a package: no module edits ``sys.path`` to find another."""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DIRS = ("bench", "conformance", "fakes", "loadtests", "oip", "peers", "reference", "reporting", "tests")


def _edits_sys_path(path: Path) -> bool:
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Attribute) and node.attr in {"insert", "append", "extend"} \
                and isinstance(node.value, ast.Attribute) and node.value.attr == "path" \
                and isinstance(node.value.value, ast.Name) and node.value.value.id == "sys":
            return True
    return False


def test_no_module_edits_sys_path() -> None:
    offenders = [str(p.relative_to(REPO)) for d in DIRS for p in sorted((REPO / d).rglob("*.py"))
                 if _edits_sys_path(p)]
    assert offenders == [], f"install the project (pip install -e .) instead of editing sys.path: {offenders}"
