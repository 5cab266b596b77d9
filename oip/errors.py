"""Exceptions raised by the ``oip`` package.

Every message says what went wrong *and* what to do about it, so a failing
conformance test or load run can be fixed without reading this package.
"""

from __future__ import annotations

__all__ = ["CodecError", "OipError", "TargetUnreachable"]


class OipError(Exception):
    """Base class of every error raised on purpose by ``oip``."""


class CodecError(OipError, ValueError):
    """A tensor or message cannot be converted to or from the V2 wire format."""


class TargetUnreachable(OipError, ConnectionError):
    """The model server could not be reached at all (nothing listening, bad host)."""

    def __init__(self, url: str, reason: str) -> None:
        self.url = url
        self.reason = reason
        super().__init__(
            f"cannot connect to {url}: {reason}. Check that the model server is "
            "running and listening there (e.g. `mlserver start <model-dir>`), or "
            "point the client at the right address."
        )
