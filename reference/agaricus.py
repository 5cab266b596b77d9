"""The agaricus (mushroom) data: found locally or downloaded, always verified by sha256.

Lookup order for each file:
1. the folder given by ``--agaricus-dir`` or the ``AGARICUS_DIR`` environment
   variable (used strictly: a missing or corrupt file there is an error);
2. the local cache (``$XDG_CACHE_HOME/oip-harness/agaricus``);
3. the canonical URL, into the cache.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

import httpx

from reference.errors import DataError

ENV_VAR = "AGARICUS_DIR"
BASE_URL = "https://raw.githubusercontent.com/dmlc/xgboost/master/demo/data/"
SHA256 = {
    "agaricus.txt.train": "915c2def06e9b44a306ad097fe8b6652c7c477d9c1e605bd2130ad20a70a8ad6",
    "agaricus.txt.test": "765db79391141953d890ce197fe828a621d6487fbba4de5e4d2217bd140371c0",
}
DOWNLOAD_TIMEOUT_S = 20.0


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "oip-harness" / "agaricus"


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _verified(path: Path, name: str) -> Path:
    actual = sha256_of(path)
    if actual != SHA256[name]:
        raise DataError(
            f"{path} has sha256 {actual[:12]}..., expected {SHA256[name][:12]}...: "
            f"refusing it. Replace it with the file from {BASE_URL}{name}"
        )
    return path


def _download(name: str, dest: Path) -> Path:
    url = BASE_URL + name
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        response = httpx.get(url, timeout=DOWNLOAD_TIMEOUT_S, follow_redirects=True)
        response.raise_for_status()
        payload = response.content
    except httpx.HTTPError as exc:
        reason = exc
        raise DataError(
            f"{name} is not available locally and downloading {url} failed ({reason}). "
            f"Put the agaricus files in a folder and pass --agaricus-dir DIR "
            f"or set {ENV_VAR}=DIR (CI: ../shared/datasets/agaricus)."
        ) from None
    with tempfile.NamedTemporaryFile(dir=dest.parent, delete=False) as tmp:
        tmp.write(payload)
    tmp_path = Path(tmp.name)
    try:
        _verified(tmp_path, name)
    except DataError:
        tmp_path.unlink()
        raise DataError(f"{url} served a file whose sha256 does not match: refusing it.") from None
    tmp_path.replace(dest)
    return dest


def locate(name: str, folder: str | os.PathLike | None = None) -> Path:
    """Return a verified local path for ``name`` (``agaricus.txt.train`` or ``.test``)."""
    if name not in SHA256:
        raise ValueError(f"unknown agaricus file {name!r}; known: {sorted(SHA256)}")
    folder = folder or os.environ.get(ENV_VAR) or None
    if folder is not None:
        path = Path(folder).expanduser() / name
        if not path.is_file():
            source = "--agaricus-dir" if folder != os.environ.get(ENV_VAR) else ENV_VAR
            raise DataError(
                f"{path} does not exist ({source} names {folder}). "
                f"Point it at a folder holding {name}, or unset it to download {BASE_URL}{name}"
            )
        return _verified(path, name)
    cached = cache_dir() / name
    if cached.is_file():
        return _verified(cached, name)
    return _download(name, cached)
