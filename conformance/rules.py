"""The rules the suite checks: one test per rule, named ``test_<rule id>``.

``RULES`` is the catalogue the report is ordered by; a test whose name is not
here is a collection error, so the matrix can never miss a rule.

Each rule has a level (see ``docs/spec-audit.md`` for the reading of the spec):
``MUST`` and ``SHOULD`` come from the OIP specification (``quote`` is the sentence,
``source`` where it stands); ``EXTENSION`` rules check one of Triton's protocol
extensions (``extension`` is its name as ``GET /v2`` advertises it); ``HARDENING``
is the harness's own policy (size limits, deep JSON, ...), with no spec text
behind it. By default a run fails on MUST, SHOULD and the rules of advertised
extensions; hardening failures are reported and fail only with ``--fail-on hardening``.
"""

from __future__ import annotations

from dataclasses import dataclass

SERVER = "server"  # rules about the server as a whole (no model)
MODEL = "model"  # rules checked once per model


MUST, SHOULD, EXTENSION, HARDENING = "MUST", "SHOULD", "extension", "hardening"
LEVELS = (MUST, SHOULD, EXTENSION, HARDENING)


@dataclass(frozen=True)
class Rule:
    id: str
    scope: str
    says: str  # the rule, in one line
    level: str = MUST
    quote: str = ""  # the spec sentence behind a MUST / SHOULD rule, verbatim (whitespace collapsed)
    source: str = ""  # where the quote stands, e.g. "rest.md § Inference Response JSON Object"
    extension: str = ""  # EXTENSION rules: the extension's name in GET /v2 `extensions`

    def __post_init__(self) -> None:
        if self.level not in LEVELS:
            raise ValueError(f"rule {self.id}: level {self.level!r} is not one of {LEVELS}")
        if (self.level == EXTENSION) != bool(self.extension):
            raise ValueError(f"rule {self.id}: an extension rule names its extension, and only it does")


def _rules(*rules: Rule) -> dict[str, Rule]:
    return {r.id: r for r in rules}


CORE: tuple[Rule, ...] = (
    Rule("health_live", SERVER, "GET /v2/health/live is 200; ServerLive says live",
         quote="/v2/health/live: get: summary: Server Live responses: '200': description: OK",
         source="rest.yaml § /v2/health/live"),
    Rule("health_ready", SERVER, "GET /v2/health/ready is 200; ServerReady says ready",
         quote="/v2/health/ready: get: summary: Server Ready tags: [] responses: '200': description: OK",
         source="rest.yaml § /v2/health/ready"),
    Rule("server_metadata", SERVER, "server metadata has string name and version and a list of extensions",
         quote="required: - name - version - extensions",
         source="rest.yaml § metadata_server_response"),
    Rule("model_metadata", MODEL,
         "model metadata (versioned and unversioned path) has name, platform and typed inputs/outputs; "
         "REST may refuse the unversioned path (4xx + error)",
         quote=('The "model metadata" API is a per-model endpoint that returns details about the '
                "model passed in the path."),
         source="rest.md § API Definitions"),
    Rule("model_metadata_lists_served_version", MODEL,
         "`versions`, when given, lists the versions that may be requested explicitly",
         quote="The model versions that may be explicitly requested via the appropriate endpoint.",
         source="rest.md § Model Metadata Response JSON Object"),
    Rule("model_metadata_properties_are_text", MODEL,
         "gRPC ModelMetadataResponse field 6 is the OIP proto's `map<string, string> properties`",
         quote="// Optional Model Properties map<string, string> properties = 6;",
         source="grpc.proto § ModelMetadataResponse"),
    Rule("model_metadata_matches_settings", MODEL,
         "model metadata (REST and gRPC) declares the inputs and outputs of the model's model-settings.json",
         quote="“inputs” : The inputs required by the model.",
         source="rest.md § Model Metadata Response JSON Object"),
    Rule("model_ready", MODEL,
         "model ready (versioned and unversioned path) is 200 / ready=true; REST may refuse the "
         "unversioned path (4xx + error)",
         quote="The “model ready” health API indicates if a specific model is ready for inferencing.",
         source="rest.md § API Definitions"),
    Rule("infer_echoes_model_name_and_version", MODEL,
         "a response names the model and the version that was requested",
         quote=("// The name of the model used for inference. string model_name = 1; // The "
                "version of the model used for inference. string model_version = 2;"),
         source="grpc.md § Inference"),
    Rule("infer_echoes_id", MODEL, "the request `id`, when given, is echoed in the response",
         quote="Optional, but if specified this identifier must be returned in the response.",
         source="rest.md § Inference Request JSON Object"),
    Rule("infer_outputs_well_formed", MODEL,
         "every output has name, shape, datatype and data; element count == product(shape)",
         quote='$response_output = { "name" : $string, "shape" : [ $number, ... ], "datatype" : $string,',
         source="rest.md § Response Output"),
    Rule("infer_returns_only_requested_outputs", MODEL, "only the requested outputs come back",
         quote=("The *$request_output* JSON is used to request which output tensors should be "
                "returned from the model."),
         source="rest.md § Request Output"),
    Rule("infer_returns_all_outputs_when_none_requested", MODEL,
         "with no `outputs` in the request, every output of the model comes back",
         quote=("Optional, if not specified all outputs produced by the model will be returned "
                "using default *$request_output* settings."),
         source="rest.md § Inference Request JSON Object"),
    Rule("infer_flat_and_nested_data_agree", MODEL,
         "flat (row-major) and nested `data` give identical answers",
         quote=("Tensor elements may be presented in their nature multi-dimensional "
                "representation, or as a flattened one-dimensional representation."),
         source="rest.md § Tensor Data"),
    Rule("infer_batch_sizes", MODEL, "a batch of n rows (n >= 1) gives n prediction rows",
         quote="If the output is batched, the shape and data represents the full shape of the entire batch.",
         source="rest.md § Response Output"),
    Rule("predictions_match_oracle", MODEL,
         "predictions equal the same artifact run in-process, for every datatype the server accepts",
         quote="The `/infer` endpoint performs inference on a model. The response is the prediction result.",
         source="rest.md § API Definitions"),
    Rule("error_unknown_model", MODEL,
         "an unknown model is a client error (4xx + error / NOT_FOUND or INVALID_ARGUMENT)",
         quote="A failed model metadata request must be indicated by an HTTP error status (typically 400).",
         source="rest.md § Model Metadata Response JSON Error Object"),
    Rule("error_unknown_version", MODEL,
         "an unknown version is a client error (4xx + error / NOT_FOUND or INVALID_ARGUMENT)",
         quote="A failed model metadata request must be indicated by an HTTP error status (typically 400).",
         source="rest.md § Model Metadata Response JSON Error Object"),
    Rule("error_malformed_body", MODEL,
         "a body that does not parse (JSON / protobuf) is a client error with an error message",
         quote=("The inference request object, identified as *$inference_request*, is required in "
                "the HTTP body of the POST request."),
         source="rest.md § Inference Request JSON Object"),
    Rule("error_unknown_datatype", MODEL, "an unknown datatype name is a client error",
         quote=('"datatype" : The data-type of the input tensor elements as defined in [Tensor '
                "Data Types](#tensor-data-types)."),
         source="rest.md § Request Input"),
    Rule("error_lowercase_datatype", MODEL, "datatype names are case-sensitive: `fp32` is a client error",
         level=HARDENING),
    Rule("error_negative_dimension", MODEL, "a negative dimension in a request shape is a client error",
         quote="Each dimension must be an integer representable as an unsigned 64-bit integer value.",
         source="rest.md § Request Input"),
    Rule("error_data_length_mismatch", MODEL, "data whose length is not product(shape) is a client error",
         quote=("If the input is batched, the shape and data must represent the full shape and "
                "contents of the entire batch."),
         source="rest.md § Request Input"),
    Rule("error_wrong_feature_count", MODEL,
         "an input shape the model does not take (wrong size on a fixed dimension) is a client error",
         quote="“inputs” : The inputs required by the model.",
         source="rest.md § Model Metadata Response JSON Object"),
    Rule("error_wrong_input_name", MODEL, "an input the model does not have is a client error",
         quote="“inputs” : The inputs required by the model.",
         source="rest.md § Model Metadata Response JSON Object"),
    Rule("error_two_inputs", MODEL, "more inputs than the model takes (an extra input) is a client error",
         quote="“inputs” : The inputs required by the model.",
         source="rest.md § Model Metadata Response JSON Object"),
    Rule("error_missing_input", MODEL, "a request lacking one of the model's inputs is a client error",
         quote="“inputs” : The inputs required by the model.",
         source="rest.md § Model Metadata Response JSON Object"),
    Rule("error_undeclared_datatype", MODEL,
         "an input in a datatype other than the one the model declares is a client error",
         quote="“inputs” : The inputs required by the model.",
         source="rest.md § Model Metadata Response JSON Object"),
    Rule("error_unknown_output", MODEL, "requesting an output the model does not have is a client error",
         quote="“outputs” : The outputs produced by the model.",
         source="rest.md § Model Metadata Response JSON Object"),
    Rule("error_nonfinite_literals", MODEL, "NaN/Infinity literals are not JSON: a client error",
         quote="Each element of the array may be an integer, floating-point number, string or boolean value.",
         source="rest.md § Tensor Data"),
    Rule("error_oversized_payload", MODEL, "a payload far past normal size is refused as a client error",
         level=HARDENING),
    Rule("error_wrong_content_type", MODEL, "a body sent with a non-JSON Content-Type is a client error",
         level=HARDENING),
    Rule("error_deep_json", MODEL, "JSON nested very deep is refused as a client error",
         level=HARDENING),
    Rule("server_live_after_bad_requests", MODEL, "the server is still live after every bad request",
         quote=("The “server live” health API indicates if the inference server is able to "
                "receive and respond to metadata and inference requests."),
         source="rest.md § API Definitions"),
    Rule("interop_tritonclient", MODEL,
         "the independent tritonclient package gets the same predictions as the suite's client",
         level=HARDENING),
)


# Each block below is owned by one area of the suite; add a rule to its block.
# ---- what the probe finds (conformance/probe.py)
PROBE: tuple[Rule, ...] = (
    Rule("probe_versioned_path_served", MODEL,
         "the versioned path form is served: /versions/<v>/ready answers 200 for the version the repository "
         "index names; a version only the models dir names may be refused with a 4xx (never 5xx/501)",
         quote="Model Ready| GET | v2/models/\\<model_name\\>[/versions/<model_version>]/ready",
         source="rest.md § HTTP/REST (API table)"),
    Rule("probe_metadata_consistent", MODEL,
         "metadata agrees with what is served: each version in metadata `versions` answers model ready on "
         "its versioned path",
         quote="The model versions that may be explicitly requested via the appropriate endpoint.",
         source="rest.md § Model Metadata Response JSON Object"),
)
# ---- rules proposed by docs/spec-audit.md (health bodies, metadata, malformed requests)
AUDIT: tuple[Rule, ...] = (
    Rule("server_ready_implies_models_ready", MODEL,
         "while the server says ready, each model's ready says ready (versioned path)", level=SHOULD,
         quote="The “server ready” health API indicates if all the models are ready for inferencing.",
         source="rest.md § API Definitions"),
    Rule("rest_server_health_body", SERVER,
         "a JSON body on /v2/health/live or /ready, if any, holds a true `live` (ready: `ready` or `live`)",
         level=SHOULD,
         quote='$live_server_response = { "live" : $bool, }',
         source="rest.md § Server Live Response JSON Objet"),
    Rule("rest_model_ready_body", MODEL,
         'a JSON body on model ready, if any, is {"name": <the model>, "ready": true}', level=SHOULD,
         quote=("The model ready endpoint returns the readiness probe response for the server along "
                "with the name of the model."),
         source="rest.md § Model Ready"),
    Rule("model_metadata_declares_tensors", MODEL,
         "REST model metadata has `inputs` and `outputs` lists (empty allowed)", level=SHOULD,
         quote='"inputs" : [ $metadata_tensor, ... ],',
         source="rest.md § Model Metadata Response JSON Object"),
    Rule("rest_model_metadata_properties_are_text", MODEL,
         "REST model metadata `properties`, when given, is an object of string values",
         quote="properties: type: object additionalProperties: type: string",
         source="rest.yaml § metadata_model_response"),
    Rule("model_metadata_platform_name", MODEL,
         "`platform` has the `<project>_<format>` form (the closed list is not enforced)", level=SHOULD,
         quote="Platform names use the format “<project>_<format>”.",
         source="rest.md § Platforms"),
    Rule("error_missing_required_field", MODEL,
         "a body without `inputs`, an input without name/shape/datatype/data, or a requested output "
         "without name is a client error (gRPC: an empty name or datatype)",
         quote=('$inference_request_input = { "name" : $string, "shape" : [ $number, ... ], '
                '"datatype" : $string,'),
         source="rest.md § Request Input"),
    Rule("error_non_integer_dimension", MODEL,
         "a dimension that is not an integer in [0, 2^64) (1.5, \"2\", true, null, 2^64) is a client error",
         quote="Each dimension must be an integer representable as an unsigned 64-bit integer value.",
         source="rest.md § Request Input"),
    Rule("error_raw_contents_layout", MODEL,
         "gRPC raw_input_contents with a count other than `inputs`, or beside typed contents, "
         "is a client error",
         quote=("// If this field is specified then InferInputTensor::contents must // not be "
                "specified for any input tensor."),
         source="grpc.md § Inference"),
    Rule("error_contents_field_mismatch", MODEL,
         "gRPC typed contents in another datatype's field (FP32 values in int_contents; FP16 in any "
         "typed field) is a client error",
         quote="// Representation for INT8, INT16, and INT32 data types.",
         source="grpc.md § Tensor Data"),
    Rule("infer_mistyped_element_coerced_or_refused", MODEL,
         "a REST data element of an unexpected JSON type (\"1\" or true in FP32, 1.5 in INT32) gets 2xx "
         "(coerced) or 4xx (refused): never a 5xx or no answer", level=HARDENING),
)
# ---- answers checked in full: metadata vs infer, shapes, envelope, strict JSON, REST == gRPC
ANSWERS: tuple[Rule, ...] = (
    Rule("infer_outputs_match_metadata", MODEL,
         "inputs shaped as the model metadata declares (-1 filled) are accepted; each output has the "
         "metadata's datatype and shape (-1 = any), metadata read over the same transport", level=SHOULD,
         quote="“outputs” : The outputs produced by the model.",
         source="rest.md § Model Metadata Response JSON Object"),
    Rule("rest_json_content_type", MODEL,
         "a REST answer whose body is JSON (200 or error) says Content-Type: application/json "
         "(parameters such as charset allowed)",
         level=SHOULD,
         quote=("'200': description: OK content: application/json: schema: $ref: "
                "'#/components/schemas/inference_response'"),
         source="rest.yaml § .../infer"),
    Rule("rest_answer_strict_json", MODEL,
         "a REST answer body labelled JSON (or any 200 body) is RFC 8259 JSON: UTF-8, no byte order "
         "mark, no NaN/Infinity",
         quote=("In the corresponding response the HTTP body contains the [Inference Response JSON "
                "Object](#inference-response-json-object) or [Inference Response JSON Error Object]"),
         source="rest.md § Inference"),
    Rule("rest_answer_unique_keys", MODEL,
         "no object of a REST answer body labelled JSON (or of any 200 body) repeats a name "
         "(RFC 8259 §4: names SHOULD be unique)", level=SHOULD,
         quote=("In the corresponding response the HTTP body contains the [Inference Response JSON "
                "Object](#inference-response-json-object) or [Inference Response JSON Error Object]"),
         source="rest.md § Inference"),
    Rule("rest_content_encoding", MODEL,
         "an answer has no Content-Encoding, or one the request's Accept-Encoding allowed",
         level=HARDENING),
    Rule("infer_without_version", MODEL,
         "an infer with no version to a versioned model: gRPC answers OK naming the version it chose; "
         'REST answers 200, or 4xx with {"error"}',
         quote=("// The version of the model to use for inference. If not given the // server will "
                "choose a version based on the model and internal policy."),
         source="grpc.md § Inference"),
    Rule("infer_parameters_are_scalars", MODEL,
         "REST `parameters` of an answer and of each output, when given, is an object of "
         "string / number / boolean values",
         quote=("where the “name” is the name of the parameter and the “value” is a $string, "
                "$number, or $boolean."),
         source="rest.md § Parameters"),
    Rule("transports_agree", MODEL,
         "the same request over REST and gRPC gives the same outputs: names, datatypes, shapes, values "
         "(FP16 within 1 ulp)",
         quote="The `/infer` endpoint performs inference on a model. The response is the prediction result.",
         source="rest.md § API Definitions"),
)
# ---- Triton's protocol extensions (level EXTENSION)
EXTENSIONS: tuple[Rule, ...] = (
    Rule("repository_index", SERVER,
         "the repository index (POST /v2/repository/index, gRPC RepositoryIndex) lists every served model "
         "as {name, version?, state, reason?} strings (gRPC: the states REST gives); with ready=true it "
         "lists only models that answer ready",
         level=EXTENSION, extension="model_repository",
         quote="The index API returns information about every model available in a model repository, even "
               "if it is not currently loaded into Triton.",
         source="triton docs/protocol/extension_model_repository.md § Index"),
    Rule("repository_load_unload", MODEL,
         "load (also of a loaded model) and unload answer 200 / OK; after unload the model is not ready and "
         "not in the ready index, after load it is ready and infers again",
         level=EXTENSION, extension="model_repository",
         quote="The unload API requests that a model be unloaded from Triton.",
         source="triton docs/protocol/extension_model_repository.md § Unload, § Load"),
    Rule("binary_data_input", MODEL,
         "an input sent as raw bytes after the JSON (binary_data_size, Inference-Header-Content-Length) "
         "gives the same outputs as the same input in JSON `data`",
         level=EXTENSION, extension="binary_tensor_data",
         quote="The binary data for a tensor is delivered in the HTTP body after the JSON object",
         source="triton docs/protocol/extension_binary_data.md"),
    Rule("binary_data_output", MODEL,
         "an output requested with binary_data=true (or every output, with binary_data_output=true) comes "
         "back as bytes after the JSON (binary_data_size, Inference-Header-Content-Length) equal to the JSON "
         "answer's output",
         level=EXTENSION, extension="binary_tensor_data",
         quote="If any binary data is present in the request or response the Inference-Header-Content-Length "
               "header must be provided to give the length of the JSON object",
         source="triton docs/protocol/extension_binary_data.md"),
    Rule("model_statistics", MODEL,
         "GET /v2/models[/<m>[/versions/<v>]]/stats (gRPC ModelStatistics) has model_stats entries of the "
         "documented shape, and the model's counts grow after a successful inference",
         level=EXTENSION, extension="statistics",
         quote="The statistics extension enables the reporting of per-model (per-version) statistics which "
               "provide aggregate information about all activity occurring for a specific model (version)",
         source="triton docs/protocol/extension_statistics.md"),
    Rule("classification_top_k", MODEL,
         "an output requested with classification=k comes back as BYTES [batch, k] entries "
         "\"value:index[:label]\": the k highest values of the plain output, highest first",
         level=EXTENSION, extension="classification",
         quote="the returned tensor will not be the shape and type produced by the model, but will instead "
               "be type BYTES with shape [ batch-size, <count> ]",
         source="triton docs/protocol/extension_classification.md"),
    Rule("parameters_accepted", MODEL,
         "custom request `parameters` (integer, string and boolean) are accepted and do not change the "
         "outputs",
         level=EXTENSION, extension="parameters",
         quote="The parameters extension allows an inference request to provide custom parameters that "
               "cannot be provided as inputs.",
         source="triton docs/protocol/extension_parameters.md"),
)

RULES: dict[str, Rule] = _rules(*CORE, *PROBE, *AUDIT, *ANSWERS, *EXTENSIONS)


def gates(rule: Rule, fail_on: str, advertised: tuple[str, ...] | list[str]) -> bool:
    """Whether a failure of ``rule`` fails the run, with ``--fail-on fail_on`` (the lowest level that
    does) and the extensions the server ``advertised``. An extension the server does not advertise
    counts as hardening: it is reported, and fails the run only with ``--fail-on hardening``."""
    if fail_on not in LEVELS:
        raise ValueError(f"--fail-on {fail_on!r}: choose one of {', '.join(LEVELS)}")
    level = rule.level
    if level == EXTENSION and rule.extension not in advertised:
        level = HARDENING
    return LEVELS.index(level) <= LEVELS.index(fail_on)


def rule_of_test(function_name: str) -> str:
    """``test_error_deep_json`` -> ``error_deep_json``."""
    return function_name.removeprefix("test_")
