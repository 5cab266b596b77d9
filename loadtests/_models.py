"""Which models a run can load: the served models of ``--models-dir``, or of the server itself.

:func:`served_catalog` reads Locust's options and answers ``{model: version}``
(``None``: unversioned) for every model the target serves: the seed's two
models for the seed's ``models/``, every ``model-settings.json`` of another
model repository (read, not imported: no MLServer here), or, with
``--models-dir ""`` (a server whose models are not local), the server's own
model repository index. :func:`default_mix` is the mix a run gets without
``--mix``: the seed's 3:1, else every served model with weight 1.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from reference.catalog import MODELS
from reference.errors import HarnessError
from reference.paths import MODELS_DIR

from ._plan import DEFAULT_MIX, PlanError

SERVER = ""  # --models-dir "": no local models, ask the server


def models_dir_of(options: Any) -> str:
    """``--models-dir`` as an absolute path, or ``""`` for the server's own models."""
    value = getattr(options, "models_dir", None)
    if value is None:
        return str(MODELS_DIR)
    if str(value).strip() == SERVER:
        return SERVER
    return str(Path(value).resolve())


def is_seed(models_dir: str) -> bool:
    """True for the seed's ``models/`` (its two models keep their in-process checks)."""
    return bool(models_dir) and Path(models_dir).resolve() == MODELS_DIR.resolve()


def local_models(models_dir: str) -> dict[str, Any]:
    """Every served model of a local model repository: name -> ``reference.config.DeployedModel``."""
    from reference.config import discover_models

    folder = Path(models_dir)
    try:
        return {m.name: m for m in discover_models(folder, require_artifacts=False)}
    except HarnessError as exc:
        raise PlanError(f"--models-dir {models_dir}: {exc}") from None


def server_models(rest_url: str, names: list[str] | None = None) -> dict[str, str | None]:
    """The models a server serves (its repository index, or ``names``), with their first version."""
    import httpx

    from oip.errors import OipError
    from oip.rest import RestClient

    try:
        with RestClient(rest_url, timeout=5.0) as client:
            if not names:
                index = client.post_raw("/v2/repository/index", b"{}", {"Content-Type": "application/json"})
                if index.status != 200 or not isinstance(index.json, list):
                    raise PlanError(
                        f"{rest_url}/v2/repository/index answered HTTP {index.status}: the server does not "
                        "list its models; name them with --mix or pass --models-dir DIR"
                    )
                names = sorted({str(m.get("name")) for m in index.json
                                if isinstance(m, dict) and m.get("name")
                                and m.get("state", "READY") == "READY"})
            catalog: dict[str, str | None] = {}
            for name in names:
                meta = client.model_metadata(name)
                if meta.status != 200 or not isinstance(meta.json, dict):
                    raise PlanError(f"{rest_url}/v2/models/{name} answered HTTP {meta.status}: "
                                    f"the server does not describe {name!r}; remove it from --mix")
                versions = meta.json.get("versions") or []
                catalog[name] = str(versions[0]) if versions else None
    except (OipError, OSError, httpx.HTTPError) as exc:
        raise PlanError(f"cannot read the models of {rest_url} ({exc}): start the server or pass "
                        "--models-dir DIR") from None
    if not catalog:
        raise PlanError(f"{rest_url} lists no ready model: name them with --mix or pass --models-dir DIR")
    return catalog


def mix_names(text: str | None) -> list[str]:
    """The model names of a ``--mix`` text (for asking a server about just those)."""
    return [part.partition("=")[0].strip() for part in (text or "").split(",") if part.strip()]


def served_catalog(options: Any) -> dict[str, str | None]:
    """Every model the run may load, with its version (``None``: unversioned)."""
    models_dir = models_dir_of(options)
    if models_dir == SERVER:
        return server_models((getattr(options, "host", "") or "").rstrip("/"), mix_names(options.mix))
    if is_seed(models_dir):
        return {name: spec.version for name, spec in MODELS.items()}
    return {name: m.version for name, m in local_models(models_dir).items()}


def default_mix(models_dir: str, catalog: Mapping[str, str | None]) -> str:
    """``--mix`` when none is given: the seed's 3:1, else every served model with weight 1."""
    if is_seed(models_dir) or not models_dir and set(catalog) == set(MODELS):
        return DEFAULT_MIX
    return ",".join(f"{name}=1" for name in catalog)
