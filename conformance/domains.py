"""Each known model's real input domain, and the datatypes that carry it exactly.

``mnist-svm`` takes 8x8 digit images: 64 integer pixels 0..16. ``mushroom-xgboost``
takes 126 one-hot features: 0 or 1. A datatype "carries" a domain when every
value of the domain survives the trip through it unchanged.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

from oip.datatypes import DATATYPES
from reference import datasets
from reference.catalog import MODELS
from reference.errors import DataError


@dataclass(frozen=True)
class Domain:
    low: int
    high: int

    def carried_by(self, datatype: str) -> bool:
        info = DATATYPES[datatype]
        if info.name == "BYTES":
            return False  # numbers as text are not the same row
        if info.dtype.kind == "b":
            return self.low >= 0 and self.high <= 1
        if info.dtype.kind == "f":
            return self.high <= 2 ** (np.finfo(info.dtype).nmant + 1)
        limits = np.iinfo(info.dtype)
        return limits.min <= self.low and self.high <= limits.max


DOMAINS: dict[str, Domain] = {
    "mnist-svm": Domain(0, 16),
    "mushroom-xgboost": Domain(0, 1),
}


DECLARED = "declared"  # the datatype variant of a model without a known domain: what it declares


def domain_of(model: Any) -> Domain | None:
    """The real input domain of a seed model (a ``ModelUnderTest``), None for any other model."""
    return DOMAINS.get(model.name) if getattr(model, "spec", None) is not None else None


def datatypes_for(model: Any) -> list[str]:
    """Every V2 datatype that carries a seed model's domain exactly, in the protocol's order;
    ``["declared"]`` for any other model (its declared datatypes only)."""
    domain = domain_of(model)
    if domain is None:
        return [DECLARED]
    return [name for name in DATATYPES if domain.carried_by(name)]


@lru_cache(maxsize=4)
def heldout_rows(model: str) -> np.ndarray | None:
    """The model's held-out rows, or None when its data is not available here."""
    if model not in MODELS:
        return None
    try:
        rows, _ = datasets.heldout(model, os.environ.get("AGARICUS_DIR") or None)
    except (DataError, KeyError):
        return None
    return rows
