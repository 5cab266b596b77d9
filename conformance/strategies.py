"""Hypothesis builders for V2 requests: small pieces composed into whole calls.

Valid requests come from the model's signature: one array per declared input,
every V2 datatype (BYTES and FP16 included), the first free dimension the batch
and any other free dimension drawn within limits. A seed model draws its rows
from its real domain (drawn values, or held-out rows). The ``error`` builders in
:mod:`conformance.bad_requests` start from these. :func:`explicit_calls` gives
the examples every infer rule tries first: the model's samples, the seed's
held-out rows, and one request generated from the signature.
"""

from __future__ import annotations

import string

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from conformance.calls import InferCall
from conformance.domains import DOMAINS, domain_of, heldout_rows
from conformance.models import ModelUnderTest
from oip.codec import from_json_tensor
from oip.datatypes import DATATYPES
from oip.samples import Sample
from oip.signature import FREE, TensorSpec, generate_arrays
from reference.catalog import MODELS

MAX_BATCH = 16  # most rules: small batches, many examples
LARGE_BATCH = 256  # the batch-size rule reaches further
MAX_FREE_DIM = 4  # a free dimension other than the batch
MAX_ID_LENGTH = 64
PLAIN_ID_ALPHABET = string.ascii_letters + string.digits + "-_."
BYTES_ALPHABET = string.ascii_letters + string.digits + " -_."  # UTF-8 text: JSON carries it
MAX_BYTES_LENGTH = 12
MAX_GENERIC_VALUE = 10  # numbers drawn for a model of unknown domain: 0..10, valid in every datatype


def batch_sizes(max_batch: int = MAX_BATCH) -> st.SearchStrategy[int]:
    return st.integers(min_value=1, max_value=max_batch)


# ------------------------------------------------------------ seed models (known domain)


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


# ------------------------------------------------------------ any model (its signature)


def elements(datatype: str) -> st.SearchStrategy[object]:
    """Values valid in ``datatype`` for a model whose domain is unknown."""
    if datatype == "BYTES":
        return st.text(BYTES_ALPHABET, min_size=1, max_size=MAX_BYTES_LENGTH).map(str.encode)
    if datatype == "BOOL":
        return st.booleans()
    info = DATATYPES[datatype]
    if info.dtype.kind in "iu":
        return st.integers(0, MAX_GENERIC_VALUE)
    width = 8 * info.dtype.itemsize
    return st.floats(0, MAX_GENERIC_VALUE, width=width, allow_nan=False, allow_infinity=False)


def tensor_values(spec: TensorSpec, shape: tuple[int, ...]) -> st.SearchStrategy[np.ndarray]:
    """An array of ``shape`` in ``spec``'s datatype (numpy dtype = the datatype's, object for BYTES)."""
    dtype = DATATYPES[spec.datatype].dtype
    return hnp.arrays(dtype, shape, elements=elements(spec.datatype))


@st.composite
def shape_for(draw: st.DrawFn, spec: TensorSpec, batch: int) -> tuple[int, ...]:
    """The declared shape, the first free dimension ``batch`` and any other drawn 1..MAX_FREE_DIM."""
    if not spec.shape:
        return (batch,)
    dims = [batch if i == 0 and d == FREE else d for i, d in enumerate(spec.shape)]
    return tuple(draw(st.integers(1, MAX_FREE_DIM)) if d == FREE else d for d in dims)


@st.composite
def signature_inputs(draw: st.DrawFn, model: ModelUnderTest,
                     max_batch: int = MAX_BATCH) -> tuple[tuple[str, np.ndarray], ...]:
    """One drawn array per declared input, all with the same batch size."""
    n = draw(batch_sizes(max_batch))
    return tuple((spec.name, draw(tensor_values(spec, draw(shape_for(spec, n)))))
                 for spec in model.signature.inputs)


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
    """A valid inference call for ``model``: inputs, datatype, layout (nested / raw) and maybe an id.

    ``datatype`` re-encodes a seed model's rows (one of its domain's datatypes); any other model
    sends each input in its declared datatype.
    """
    if domain_of(model) is not None:
        inputs = ((model.input_names[0], draw(rows(model.name, max_batch))),)
        datatype = datatype or model.input_datatype
    else:
        inputs, datatype = draw(signature_inputs(model, max_batch)), None
    wants_id = draw(st.booleans()) if with_id is None else with_id
    return InferCall(
        model=model.name,
        version=model.version,
        inputs=inputs,
        datatype=datatype,
        id=draw(ids if ids is not None else plain_ids()) if wants_id else None,
        outputs=outputs,
        nested=draw(st.booleans()),
        raw=draw(st.booleans()),
    )


# ------------------------------------------------------------ explicit examples


def sample_call(model: ModelUnderTest, sample: Sample) -> InferCall:
    """A sample request as a call (its id and requested outputs kept)."""
    inputs = tuple((t["name"], from_json_tensor(t)) for t in sample.body["inputs"])
    outputs = tuple(sample.requested_outputs) or None
    return InferCall(model.name, model.version, inputs, id=sample.body.get("id"), outputs=outputs)


def generated_call(model: ModelUnderTest, n: int = 1, **changes: object) -> InferCall:
    """A fixed valid call: the seed's first held-out rows, else arrays generated from the signature."""
    if domain_of(model) is not None:
        held = heldout_rows(model.name)
        batch = held[:n] if held is not None else np.zeros((n, MODELS[model.name].n_features), np.float32)
        call = InferCall(model.name, model.version, ((model.input_names[0], batch),),
                         datatype=model.input_datatype)
    else:
        arrays = generate_arrays(model.signature, n, seed=0)
        call = InferCall(model.name, model.version, tuple(arrays.items()))
    return call.replace(**changes) if changes else call


def explicit_calls(model: ModelUnderTest, **changes: object) -> list[InferCall]:
    """The examples an infer rule tries before drawn ones: samples, then a generated call."""
    if not model.signature.inputs:
        return []
    calls = [sample_call(model, s).replace(**changes) for s in model.samples]
    return [*calls, generated_call(model, **changes)]
