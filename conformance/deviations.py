"""Known deviations: every place the reference MLServer breaks a rule, in ONE table.

Each entry is applied to the matching tests as a strict expected failure, and
only when ``GET /v2`` says the target is one of ``SERVERS``: another server is
judged on the plain rule. ``observed`` lists the short signatures of what the
server does (see :attr:`conformance.calls.Reply.signature`); a failure with any
other signature is a real failure, so a deviation that changes shape is not
hidden. When MLServer fixes one, its test passes, strict xfail turns that red,
and the entry must be removed.

``reproduce`` uses ``$URL`` (REST base URL) and ``$GRPC`` (gRPC host:port).

An entry may be scoped to models (by name) and/or runtimes (the model's
``implementation``); unscoped, it holds for every model. A runtime that checks its
inputs does not inherit the stock runtimes' deviations. An entry scoped to models
none of which is in the run is unused (listed as such in the report).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

SERVERS = frozenset({("mlserver", "1.7.1")})
SKLEARN = "mlserver_sklearn.SKLearnModel"
XGBOOST = "mlserver_xgboost.XGBoostModel"
STOCK_RUNTIMES = frozenset({SKLEARN, XGBOOST})  # MLServer's own runtimes: they check no signature

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
    models: frozenset[str] = frozenset()  # model names it is limited to (empty: every model)
    implementations: frozenset[str] = frozenset()  # runtimes it is limited to (empty: every runtime)

    def matches(self, rule: str, params: Mapping[str, object], model: Any = None) -> bool:
        if rule != self.rule or params.get("transport") != self.transport:
            return False
        if not all(str(params.get(key)) == value for key, value in self.where.items()):
            return False
        return self.in_scope(model)

    def in_scope(self, model: Any) -> bool:
        """Whether this entry holds for ``model`` (a ``ModelUnderTest``; None: a server-level test)."""
        if model is None:
            return not self.models and not self.implementations
        if self.models and model.name not in self.models:
            return False
        return not self.implementations or getattr(model, "implementation", None) in self.implementations

    @property
    def scope(self) -> str:
        parts = [f"models {', '.join(sorted(self.models))}"] if self.models else []
        parts += [f"runtimes {', '.join(sorted(self.implementations))}"] if self.implementations else []
        return "; ".join(parts) or "all models"

    @property
    def label(self) -> str:
        where = "".join(f" [{k}={v}]" for k, v in self.where.items())
        scope = "".join(f" [{s}]" for s in (self.scope,) if self.models or self.implementations)
        return f"{self.rule} ({self.transport}){where}{scope}"


def _d(rule: str, transport: str, spec: str, does: str, observed: set[str], reproduce: str,
       **where: str) -> Deviation:
    return Deviation(rule, transport, spec, does, frozenset(observed), reproduce, where)


def _only(deviation: Deviation, *, models: Iterable[str] = (), runtimes: Iterable[str] = ()) -> Deviation:
    """``deviation`` limited to some models and/or runtimes."""
    return dataclasses.replace(deviation, models=frozenset(models), implementations=frozenset(runtimes))


# ---- found on tests/model_repo (`--models-dir tests/model_repo`)
_WINE = "$URL/v2/models/wine-proba/infer"
_WINE_ROW = _tensor("[1,13]", "FP64", "[" + ",".join(["3"] * 13) + "]", "features")
_DIGITS_TYPED = ("python3 -c \"import numpy as np; from oip import GrpcClient, build_infer_request as b; "
                 "print(GrpcClient('$GRPC').infer(b('digits-lowprec', {'pixels': np.ones((1,64), np.uint8)}, "
                 "model_version='1')))\"")
_FP16_SPEC = "a valid request gets an answer; the OIP proto carries FP16 in raw_output_contents"
_FP16_DOES = ("a typed (non-raw) request to a model with an FP16 output fails with INTERNAL 'expected bytes, "
              "float found' (mlserver/grpc/converters.py maps FP16 to bytes_contents); a raw request works")
_FP16_RULES = ("infer_echoes_model_name_and_version", "infer_outputs_well_formed",
               "infer_returns_only_requested_outputs", "infer_returns_all_outputs_when_none_requested",
               "infer_batch_sizes", "predictions_match_oracle", "interop_tritonclient")
_UNDECLARED = ("an input in a datatype other than the declared one (model metadata `inputs`) "
               "is a client mistake")
_PROPERTIES = ("field 6 entry 'content_type' holds an InferParameter (string_param: \"np\"), not a string: "
               "map<string, InferParameter> where the OIP proto has map<string, string> properties")
_WINE_INT = _WINE_ROW.replace('"FP64"', '"INT32"')

REPO_DEVIATIONS: tuple[Deviation, ...] = (
    _only(_d("infer_returns_all_outputs_when_none_requested", "rest",
             "with no `outputs` in the request, 'all outputs produced by the model will be returned'",
             "MLServer's sklearn runtime answers only `predict`, although model-settings.json declares "
             "`predict` and `predict_proba`", {"missing outputs"}, _curl(_WINE_ROW, _WINE)),
          models={"wine-proba"}),
    _only(_d("infer_returns_all_outputs_when_none_requested", "grpc",
             "with no `outputs` in the request, 'all outputs produced by the model will be returned'",
             "MLServer's sklearn runtime answers only `predict`, although model-settings.json declares "
             "`predict` and `predict_proba`", {"missing outputs"},
             "python3 -c \"import numpy as np; from oip import GrpcClient, build_infer_request as b; "
             "print(GrpcClient('$GRPC').infer(b('wine-proba', {'features': np.full((1,13), 3.0)})))\""),
          models={"wine-proba"}),
    *(_only(_d(rule, "grpc", _FP16_SPEC, _FP16_DOES, {"INTERNAL"}, _DIGITS_TYPED), models={"digits-lowprec"})
      for rule in _FP16_RULES),
    _only(_d("infer_flat_and_nested_data_agree", "rest",
             "`data` may be flat (row-major) or nested: both give the same tensor",
             "nested BYTES data reaches the runtime as empty strings: MLServer's StringCodec.decode_input "
             "turns [[\"0\"]] into [''] (flat [\"0\"] gives ['0']), so the tag comes back empty",
             {"flat != nested"},
             _curl('{"inputs":[{"name":"features","shape":[1,4],"datatype":"FP32","data":[[5,3,1,0]]},'
                   '{"name":"tag","shape":[1,1],"datatype":"BYTES","data":[["0"]]}]}',
                   "$URL/v2/models/iris-tagged/versions/2/infer") + "   # tag: [\"\"]"),
          models={"iris-tagged"}),
    _only(_d("model_metadata_properties_are_text", "grpc",
             "ModelMetadataResponse field 6 is `map<string, string> properties` (OIP proto)",
             "sends field 6 as MLServer's `map<string, InferParameter> parameters`, {\"content_type\": "
             "InferParameter(string_param: \"np\")}, for a model whose model-settings.json sets "
             "`parameters.content_type` (wine-proba)", {_PROPERTIES},
             "python3 -c \"from oip import GrpcClient; print(GrpcClient('$GRPC').model_metadata_checked("
             "'wine-proba', ''))\""),
          models={"wine-proba"}),
    _only(_d("error_undeclared_datatype", "rest", _UNDECLARED,
             "MLServer's stock runtimes never check the declared signature: answered 200 with predictions",
             {"200 json"}, _curl(_WINE_INT, _WINE)), runtimes=STOCK_RUNTIMES),
    _only(_d("error_undeclared_datatype", "grpc", _UNDECLARED,
             "MLServer's stock runtimes never check the declared signature: answered OK with predictions",
             {"OK"}, _grpc(extra=", datatypes={'predict': 'FP64'}")), runtimes=STOCK_RUNTIMES),
)

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
    _only(_d("error_negative_dimension", "rest",
             "shapes are non-negative; a negative dimension is a client mistake",
             "accepts it (200, numpy reshape treats a negative size as 'infer this one'); "
             "two negative dimensions give 500 text/plain (a runtime that checks shapes answers 400)",
             {"200 json", "500 text"}, _curl(_tensor(shape="[-1,64]"))), runtimes=STOCK_RUNTIMES),
    _d("error_data_length_mismatch", "rest", ERROR_BODY,
       "500 'Internal Server Error' (text/plain; a reshape ValueError escapes)", {"500 text"},
       _curl(_tensor(shape="[2,64]"))),
    _only(_d("error_wrong_feature_count", "rest", ERROR_BODY,
             "500 'Internal Server Error' (text/plain; the model's ValueError escapes)", {"500 text"},
             _curl(_tensor(shape="[1,3]", data="[1,2,3]"))), runtimes=STOCK_RUNTIMES),
    _only(_d("error_wrong_input_name", "rest",
             "an input the model does not have (metadata `inputs`) is a client mistake",
             "ignores the name and answers 200 with predictions", {"200 json"}, _curl(_tensor(name="zzz"))),
          runtimes=STOCK_RUNTIMES),
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
       "accepts a negative dimension (OK with predictions); two give INTERNAL; with raw or BYTES contents "
       "the converter fails first: INTERNAL 'unpack requires a buffer of N bytes' / 'bad char in struct "
       "format' (also for a runtime that checks shapes)", {"OK", "INTERNAL"},
       _grpc("r.inputs[0].shape[0]=-1; ")),
    _d("error_data_length_mismatch", "grpc", GRPC_CLIENT,
       "INTERNAL 'cannot reshape array of size 64 into shape (2,64)'", {"INTERNAL"},
       _grpc("r.inputs[0].shape[0]=2; ")),
    _only(_d("error_wrong_feature_count", "grpc", GRPC_CLIENT,
             "INTERNAL 'X has 3 features, but SVC is expecting 64 features as input.'", {"INTERNAL"},
             _grpc("r.inputs[0].shape[1]=3; del r.inputs[0].contents.fp32_contents[3:]; ")),
          runtimes=STOCK_RUNTIMES),
    _only(_d("error_wrong_input_name", "grpc", GRPC_CLIENT,
             "ignores the name: OK with predictions", {"OK"}, _grpc("r.inputs[0].name='zzz'; ")),
          runtimes=STOCK_RUNTIMES),
    *REPO_DEVIATIONS,
)


def applies_to(server: tuple[str, str]) -> bool:
    return (server[0].lower(), server[1]) in SERVERS


def find(server: tuple[str, str], rule: str, params: Mapping[str, object],
         model: Any = None) -> Deviation | None:
    """The known deviation of ``server`` for this test (of ``model``), if any."""
    if not applies_to(server):
        return None
    return next((d for d in DEVIATIONS if d.matches(rule, params, model)), None)


def unused(models: Iterable[Any]) -> list[Deviation]:
    """The entries that hold for none of ``models`` (scoped to models or runtimes not in the run)."""
    models = list(models)
    return [d for d in DEVIATIONS
            if (d.models or d.implementations) and not any(d.in_scope(m) for m in models)]
