"""Fixtures shared by the harness's own test suites."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

WHO_RUNTIME = Path(__file__).resolve().parent / "runtimes" / "who_runtime.py"


@pytest.fixture
def two_models_one_module_name(tmp_path: Path) -> list[Path]:
    """Models ``a`` and ``b`` in ``tmp_path``, each with its own ``who_runtime.py`` (WHO = its name)."""
    folders = []
    for who in ("a", "b"):
        folder = tmp_path / who
        folder.mkdir()
        (folder / "who_runtime.py").write_text(WHO_RUNTIME.read_text().replace('WHO = "a"', f"WHO = {who!r}"))
        settings = {"name": who, "implementation": "who_runtime.Who"}
        (folder / "model-settings.json").write_text(json.dumps(settings))
        folders.append(folder)
    return folders
