"""Model metadata whose field 6 is not the OIP proto's: decoded, and the problem named."""

from __future__ import annotations

from oip._pb import pb
from oip.metadata_wire import decode_model_metadata


def _field6(entry: bytes) -> bytes:
    assert len(entry) < 128
    return bytes([6 << 3 | 2, len(entry)]) + entry


def _metadata(**extra: object) -> pb.ModelMetadataResponse:
    return pb.ModelMetadataResponse(name="m", platform="p", inputs=[pb.ModelMetadataResponse.TensorMetadata(
        name="x", datatype="FP32", shape=[-1, 4])], **extra)


def test_the_spec_message_decodes_with_no_problem() -> None:
    sent = _metadata(properties={"owner": "team a", "stage": "prod"})
    message, problems = decode_model_metadata(sent.SerializeToString())
    assert problems == [] and message == sent


def test_an_infer_parameter_at_field_6_is_named_and_dropped() -> None:
    # MLServer 1.7.1: map<string, InferParameter> parameters = 6, e.g. {"content_type": "np"}.
    value = pb.InferParameter(string_param="np")
    entry = pb.ModelInferResponse.ParametersEntry(key="content_type", value=value)
    raw = _metadata().SerializeToString() + _field6(entry.SerializeToString())
    message, problems = decode_model_metadata(raw)
    assert message == _metadata()
    assert len(problems) == 1 and "'content_type'" in problems[0] and "InferParameter" in problems[0]


def test_a_value_that_is_not_utf8_does_not_crash() -> None:
    entry = pb.ModelInferResponse.ParametersEntry(key="scale", value=pb.InferParameter(double_param=1.5))
    raw = _metadata().SerializeToString() + _field6(entry.SerializeToString())
    message, problems = decode_model_metadata(raw)
    assert message.name == "m" and len(problems) == 1 and "'scale'" in problems[0]


def test_a_parameter_whose_encoding_is_printable_is_still_named() -> None:
    entry = pb.ModelInferResponse.ParametersEntry(key="k", value=pb.InferParameter(uint64_param=42))  # b"(*"
    raw = _metadata().SerializeToString() + _field6(entry.SerializeToString())
    message, problems = decode_model_metadata(raw)
    assert message == _metadata() and len(problems) == 1 and "'k'" in problems[0]


def test_an_answer_that_is_not_protobuf_is_a_problem_not_a_crash() -> None:
    message, problems = decode_model_metadata(b"\x0b\x0c")
    assert message == pb.ModelMetadataResponse()
    assert len(problems) == 1 and "not a ModelMetadataResponse" in problems[0]
