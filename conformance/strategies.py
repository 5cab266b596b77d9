"""Hypothesis builders for V2 requests: small pieces composed into whole calls.

Valid rows come from each model's real domain (drawn values, or held-out rows);
the ``error`` builders in :mod:`conformance.bad_requests` start from these.
"""

from __future__ import annotations

import string

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from conformance.calls import InferCall
from conformance.domains import DOMAINS, heldout_rows
from conformance.target import ModelUnderTest
from reference.catalog import MODELS

MAX_BATCH = 16  # most rules: small batches, many examples
LARGE_BATCH = 256  # the batch-size rule reaches further
MAX_ID_LENGTH = 64
PLAIN_ID_ALPHABET = string.ascii_letters + string.digits + "-_."


def batch_sizes(max_batch: int = MAX_BATCH) -> st.SearchStrategy[int]:
    return st.integers(min_value=1, max_value=max_batch)


def domain_rows(model: str, n: int) -> st.SearchStrategy[np.ndarray]:
    """``n`` rows of values drawn from the model's domain, as float32."""
    domain = DOMAINS[model]
    width = MODELS[model].n_features
    return hnp.arrays(np.int64, (n, width), elements=st.integers(domain.low, domain.high)).map(
        lambda a: a.astype(np.float32)
    )


def sampled_heldout_rows(model: str, n: int) -> st.SearchStrategy[np.ndarray]:
    rows = heldout_rows(model)
    if rows is None:
        return domain_rows(model, n)
    indices = st.lists(st.integers(0, len(rows) - 1), min_size=n, max_size=n)
    return indices.map(lambda ix: rows[np.asarray(ix)])


@st.composite
def rows(draw: st.DrawFn, model: str, max_batch: int = MAX_BATCH) -> np.ndarray:
    """A batch of 1..max_batch rows: real held-out rows or drawn domain values."""
    n = draw(batch_sizes(max_batch))
    return draw(st.one_of(domain_rows(model, n), sampled_heldout_rows(model, n)))


def request_ids() -> st.SearchStrategy[str]:
    """Non-empty ids of any text (gRPC cannot tell "" from no id): what the id rule draws."""
    return st.text(st.characters(codec="utf-8"), min_size=1, max_size=MAX_ID_LENGTH)


def plain_ids() -> st.SearchStrategy[str]:
    """Ids of ASCII letters, digits and ``-_.``, for the rules that are not about ids."""
    return st.text(PLAIN_ID_ALPHABET, min_size=1, max_size=MAX_ID_LENGTH)


@st.composite
def infer_calls(
    draw: st.DrawFn,
    model: ModelUnderTest,
    *,
    datatype: str | None = None,
    with_id: bool | None = None,
    ids: st.SearchStrategy[str] | None = None,
    outputs: tuple[str, ...] | None = None,
    max_batch: int = MAX_BATCH,
) -> InferCall:
    """A valid inference call for ``model``: rows, datatype, layout (nested / raw) and maybe an id."""
    batch = draw(rows(model.name, max_batch))
    wants_id = draw(st.booleans()) if with_id is None else with_id
    return InferCall(
        model=model.name,
        version=model.version,
        inputs=((model.spec.input_name, batch),),
        datatype=datatype or model.input_datatype,
        id=draw(ids or plain_ids()) if wants_id else None,
        outputs=outputs,
        nested=draw(st.booleans()),
        raw=draw(st.booleans()),
    )
