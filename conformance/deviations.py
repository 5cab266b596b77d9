"""Known deviations: every place the reference MLServer breaks a rule, in ONE table.

Each entry is applied to the matching tests as a strict expected failure, and
only when ``GET /v2`` says the target is one of ``SERVERS``: another server is
judged on the plain rule. ``observed`` lists the short signatures of what the
server does (see :attr:`conformance.calls.Reply.signature`); a failure with any
other signature is a real failure, so a deviation that changes shape is not
hidden. When MLServer fixes one, its test passes, strict xfail turns that red,
and the entry must be removed.

``reproduce`` uses ``$URL`` (REST base URL) and ``$GRPC`` (gRPC host:port).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

SERVERS = frozenset({("mlserver", "1.7.1")})

_ROW = "[" + ",".join(["1"] * 64) + "]"
_INFER = "$URL/v2/models/mnist-svm/versions/v0.1.0/infer"
_JSON = "-H 'Content-Type: application/json'"
_GRPC_CALL = ("python3 -c \"import numpy as np; from oip import GrpcClient, build_infer_request as b; "
              "r=b('mnist-svm', {{'predict': np.ones(({rows},64), np.float32)}}, "
              "model_version='v0.1.0'{extra}); {edit}print(GrpcClient('$GRPC').infer(r))\"")

_OVERSIZED = (
    """{ printf '{"parameters":{"padding":"'; head -c $((24 << 20)) /dev/zero | tr '\\0' x; """
    f"""printf '"}},"inputs":[{{"name":"predict","shape":[1,64],"datatype":"FP32","data":{_ROW}}}]}}'; }} """
    f"| curl -sS {_JSON} --data-binary @- {_INFER}"
)
_DEEP = (
    """{ printf '{"inputs":[{"name":"predict","shape":[1,64],"datatype":"FP32","data":'; """
    """head -c 100000 /dev/zero | tr '\\0' '['; printf 1; head -c 100000 /dev/zero | tr '\\0' ']'; """
    f"""printf '}}]}}'; }} | curl -sS {_JSON} --data-binary @- {_INFER}"""
)

ERROR_BODY = 'a failure is a non-2xx status with body {"error": "<string>"}; a client mistake is 4xx'
GRPC_CLIENT = "a client mistake is a non-OK status, INVALID_ARGUMENT (or NOT_FOUND)"


def _curl(data: str, url: str = _INFER, headers: str = _JSON) -> str:
    return f"curl -sS {headers} -d '{data}' {url}"


def _tensor(shape: str = "[1,64]", datatype: str = "FP32", data: str = _ROW, name: str = "predict") -> str:
    return f'{{"inputs":[{{"name":"{name}","shape":{shape},"datatype":"{datatype}","data":{data}}}]}}'


def _grpc(edit: str = "", rows: int = 1, extra: str = "") -> str:
    return _GRPC_CALL.format(rows=rows, extra=extra, edit=edit)


@dataclass(frozen=True)
class Deviation:
    rule: str
    transport: str
    spec: str  # what the spec (or the suite's rule) says
    server_does: str  # what the server does instead
    observed: frozenset[str]  # reply signatures of this deviation
    reproduce: str
    where: Mapping[str, str] = field(default_factory=dict)  # further test parameters it is limited to

    def matches(self, rule: str, params: Mapping[str, object]) -> bool:
        if rule != self.rule or params.get("transport") != self.transport:
            return False
        return all(str(params.get(key)) == value for key, value in self.where.items())

    @property
    def label(self) -> str:
        where = "".join(f" [{k}={v}]" for k, v in self.where.items())
        return f"{self.rule} ({self.transport}){where}"


def _d(rule: str, transport: str, spec: str, does: str, observed: set[str], reproduce: str,
       **where: str) -> Deviation:
    return Deviation(rule, transport, spec, does, frozenset(observed), reproduce, where)


DEVIATIONS: tuple[Deviation, ...] = (
    # ---- REST
    _d("infer_echoes_id", "rest", "`id` (any string) is echoed in the response",
       "copies the id into a `Ce-Id` response header: an id outside Latin-1 gives 500 text/plain "
       "(UnicodeEncodeError); one with leading/trailing blanks or a newline gets no answer at all "
       "(h11 'Illegal header value', connection closed)", {"500 text", "no-response"},
       _curl('{"id":"日本語",' + _tensor()[1:]) + "   # or \"id\":\" padded \": empty reply"),
    _d("model_metadata_lists_served_version", "rest",
       "`versions`: the model versions that may be explicitly requested",
       'lists "versions": [] although /versions/v0.1.0/ answers', {"versions=[]"},
       "curl -sS $URL/v2/models/mnist-svm"),
    _d("error_malformed_body", "rest", ERROR_BODY,
       '422 with FastAPI\'s {"detail": [{"type": "json_invalid", ...}]}', {"422 detail"},
       _curl('{"inputs": [')),
    _d("error_unknown_datatype", "rest", ERROR_BODY,
       '422 {"detail": [{"type": "enum", ...}]}', {"422 detail"}, _curl(_tensor(datatype="FP31"))),
    _d("error_lowercase_datatype", "rest", ERROR_BODY + "; datatype names are case-sensitive",
       '422 {"detail": [{"type": "enum", ...}]}', {"422 detail"}, _curl(_tensor(datatype="fp32"))),
    _d("error_negative_dimension", "rest",
       "shapes are non-negative; a negative dimension is a client mistake",
       "accepts it (200, numpy reshape treats a negative size as 'infer this one'); "
       "two negative dimensions give 500 text/plain", {"200 json", "500 text"},
       _curl(_tensor(shape="[-1,64]"))),
    _d("error_data_length_mismatch", "rest", ERROR_BODY,
       "500 'Internal Server Error' (text/plain; a reshape ValueError escapes)", {"500 text"},
       _curl(_tensor(shape="[2,64]"))),
    _d("error_wrong_feature_count", "rest", ERROR_BODY,
       "500 'Internal Server Error' (text/plain; the model's ValueError escapes)", {"500 text"},
       _curl(_tensor(shape="[1,3]", data="[1,2,3]"))),
    _d("error_wrong_input_name", "rest",
       "an input the model does not have (metadata `inputs`) is a client mistake",
       "ignores the name and answers 200 with predictions", {"200 json"}, _curl(_tensor(name="zzz"))),
    _d("error_nonfinite_literals", "rest", ERROR_BODY + "; NaN/Infinity are not JSON",
       '422 {"detail": [{"type": "json_invalid", ...}]}', {"422 detail"},
       _curl(_tensor(data="[NaN" + ",1" * 63 + "]"))),
    _d("error_oversized_payload", "rest",
       "a body far past normal size is refused (413 or another 4xx) with an error body",
       "no body size limit: a 24 MiB request is parsed and answered 200", {"200 json"},
       _OVERSIZED),
    _d("error_wrong_content_type", "rest", ERROR_BODY,
       '422 {"detail": [{"type": "model_attributes_type", ...}]} (the body is read as a string)',
       {"422 detail"},
       _curl(_tensor(), headers="-H 'Content-Type: text/plain'")),
    _d("error_deep_json", "rest", ERROR_BODY,
       '422 {"detail": [{"type": "json_invalid", ... "depth limit exceeded"}]}', {"422 detail"},
       _DEEP),
    # ---- gRPC
    _d("infer_echoes_id", "grpc", "`id` (any string) is echoed in the response",
       "copies the id into `Ce-Id` trailing metadata: any id outside printable ASCII (é, tab, ...) "
       "fails with INTERNAL 'Invalid metadata'", {"INTERNAL"}, _grpc(extra=", id='é'")),
    _d("error_unknown_model", "grpc",
       GRPC_CLIENT + "; ModelReady of an unknown model: NOT_FOUND or ready=false",
       "ModelReady answers UNKNOWN 'Unexpected <class mlserver.errors.ModelNotFound>'", {"UNKNOWN"},
       "python3 -c \"from oip import GrpcClient; GrpcClient('$GRPC').model_ready('no-such-model')\"",
       endpoint="ready"),
    _d("error_unknown_version", "grpc",
       GRPC_CLIENT + "; ModelReady of an unknown version: NOT_FOUND or ready=false",
       "ModelReady answers UNKNOWN 'Unexpected <class mlserver.errors.ModelNotFound>'", {"UNKNOWN"},
       "python3 -c \"from oip import GrpcClient; GrpcClient('$GRPC').model_ready('mnist-svm', 'v-none')\"",
       endpoint="ready"),
    _d("error_malformed_body", "grpc", GRPC_CLIENT,
       "UNKNOWN 'Unexpected <class google.protobuf.message.DecodeError>'", {"UNKNOWN"},
       "python3 -c \"import grpc; grpc.insecure_channel('$GRPC').unary_unary("
       "'/inference.GRPCInferenceService/ModelInfer')(b'\\xff\\xff')\""),
    _d("error_unknown_datatype", "grpc", GRPC_CLIENT, "INTERNAL \"'FP31' is not a valid Datatype\"",
       {"INTERNAL"}, _grpc("r.inputs[0].datatype='FP31'; ")),
    _d("error_lowercase_datatype", "grpc", GRPC_CLIENT + "; datatype names are case-sensitive",
       "INTERNAL \"'fp32' is not a valid Datatype\"", {"INTERNAL"}, _grpc("r.inputs[0].datatype='fp32'; ")),
    _d("error_negative_dimension", "grpc", GRPC_CLIENT + "; shapes are non-negative",
       "accepts a negative dimension (OK with predictions); two give INTERNAL", {"OK", "INTERNAL"},
       _grpc("r.inputs[0].shape[0]=-1; ")),
    _d("error_data_length_mismatch", "grpc", GRPC_CLIENT,
       "INTERNAL 'cannot reshape array of size 64 into shape (2,64)'", {"INTERNAL"},
       _grpc("r.inputs[0].shape[0]=2; ")),
    _d("error_wrong_feature_count", "grpc", GRPC_CLIENT,
       "INTERNAL 'X has 3 features, but SVC is expecting 64 features as input.'", {"INTERNAL"},
       _grpc("r.inputs[0].shape[1]=3; del r.inputs[0].contents.fp32_contents[3:]; ")),
    _d("error_wrong_input_name", "grpc", GRPC_CLIENT,
       "ignores the name: OK with predictions", {"OK"}, _grpc("r.inputs[0].name='zzz'; ")),
)


def applies_to(server: tuple[str, str]) -> bool:
    return (server[0].lower(), server[1]) in SERVERS


def find(server: tuple[str, str], rule: str, params: Mapping[str, object]) -> Deviation | None:
    """The known deviation of ``server`` for this test, if any."""
    if not applies_to(server):
        return None
    return next((d for d in DEVIATIONS if d.matches(rule, params)), None)
