"""Reading and checking the deployment's settings before MLServer sees them.

MLServer reports a broken ``settings.json`` or ``model-settings.json`` as a
traceback in its log, or as a model that never becomes ready; these checks turn
the common mistakes into one line that says what to fix.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reference.catalog import MODELS
from reference.errors import ConfigError

# Artifact file names each runtime looks for when model-settings has no `uri`.
RUNTIME_ARTIFACTS = {
    "mlserver_sklearn.SKLearnModel": ("model.joblib", "model.pickle", "model.pkl"),
    "mlserver_xgboost.XGBoostModel": ("model.bst", "model.json", "model.ubj"),
}


@dataclass(frozen=True)
class DeployedModel:
    name: str
    version: str | None
    folder: Path
    settings: dict[str, Any]


def _read_json(path: Path, what: str) -> dict[str, Any]:
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise ConfigError(f"{path} is missing: the {what} must exist") from None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(
            f"{path} is not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg}): fix the {what}"
        ) from None
    if not isinstance(value, dict):
        raise ConfigError(f"{path} must hold a JSON object, not {type(value).__name__}")
    return value


def is_seed_dir(models_dir: Path) -> bool:
    """True when ``models_dir`` is the seed's ``models/`` folder."""
    from reference.paths import MODELS_DIR

    return Path(models_dir).resolve() == MODELS_DIR.resolve()


def settings_file_for(models_dir: Path) -> Path:
    """The server settings for a model repository: its own ``settings.json``, else the repository's."""
    from reference.paths import SETTINGS_FILE

    own = Path(models_dir) / "settings.json"
    return own if own.is_file() else SETTINGS_FILE


def read_server_settings(path: Path) -> dict[str, Any]:
    """The root ``settings.json`` as a dict, unchecked: for clients that only need its ports.

    It does not import MLServer, so a load generator or conformance client never does.
    """
    return _read_json(path, "server settings file")


def load_server_settings(path: Path) -> dict[str, Any]:
    """The root ``settings.json`` as a dict, checked against MLServer's own schema."""
    settings = read_server_settings(path)
    from mlserver.settings import Settings

    unknown = sorted(set(settings) - set(Settings.model_fields))
    if unknown:
        raise ConfigError(f"{path}: unknown MLServer setting(s) {unknown}: remove or correct them")
    return settings


def discover_models(models_dir: Path, *, require_artifacts: bool = True) -> list[DeployedModel]:
    """Every ``model-settings.json`` below ``models_dir``, parsed and checked."""
    if not models_dir.is_dir():
        raise ConfigError(f"{models_dir} is not a folder: point --models-dir at the model repository")
    found: list[DeployedModel] = []
    for settings_path in sorted(models_dir.glob("**/model-settings.json")):
        folder = settings_path.parent
        settings = _read_json(settings_path, "model settings file")
        name = settings.get("name") or folder.name
        version = (settings.get("parameters") or {}).get("version")
        implementation = settings.get("implementation")
        if implementation is None:
            raise ConfigError(f"{settings_path}: no `implementation`: name the runtime class")
        if require_artifacts and "uri" not in (settings.get("parameters") or {}):
            candidates = RUNTIME_ARTIFACTS.get(implementation, ())
            if candidates and not any((folder / c).is_file() for c in candidates):
                if (models_dir / "build.py").is_file():
                    hint = f"run `python -m reference train --models-dir {models_dir}`"
                elif name in MODELS:
                    hint = "run `python -m reference train`"
                else:
                    hint = f"put one of {list(candidates)} in {folder}"
                raise ConfigError(f"model {name!r} has no artifact in {folder}: {hint}")
        found.append(DeployedModel(name, version, folder, settings))
    if not found:
        raise ConfigError(f"no model-settings.json found below {models_dir}: a model repository holds "
                          "one <model>/model-settings.json per model (see `mlserver start DIR`)")
    names = [m.name for m in found]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ConfigError(f"model name(s) {duplicates} are declared twice below {models_dir}")
    return found
