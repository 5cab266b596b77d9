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
    Rule("health_live", SERVER, "GET /v2/health/live is 200; ServerLive says live"),
    Rule("health_ready", SERVER, "GET /v2/health/ready is 200; ServerReady says ready"),
    Rule("server_metadata", SERVER, "server metadata has string name and version and a list of extensions"),
    Rule("model_metadata", MODEL,
         "model metadata (versioned and unversioned path) has name, platform and typed inputs/outputs"),
    Rule("model_metadata_lists_served_version", MODEL,
         "`versions`, when given, lists the versions that may be requested explicitly"),
    Rule("model_metadata_properties_are_text", MODEL,
         "gRPC ModelMetadataResponse field 6 is the OIP proto's `map<string, string> properties`"),
    Rule("model_metadata_matches_settings", MODEL,
         "model metadata (REST and gRPC) declares the inputs and outputs of the model's model-settings.json"),
    Rule("model_ready", MODEL, "model ready (versioned and unversioned path) is 200 / ready=true"),
    Rule("infer_echoes_model_name_and_version", MODEL,
         "a response names the model and the version that was requested"),
    Rule("infer_echoes_id", MODEL, "the request `id`, when given, is echoed in the response"),
    Rule("infer_outputs_well_formed", MODEL,
         "every output has name, shape, datatype and data; element count == product(shape)"),
    Rule("infer_returns_only_requested_outputs", MODEL, "only the requested outputs come back"),
    Rule("infer_returns_all_outputs_when_none_requested", MODEL,
         "with no `outputs` in the request, every output of the model comes back"),
    Rule("infer_flat_and_nested_data_agree", MODEL,
         "flat (row-major) and nested `data` give identical answers"),
    Rule("infer_batch_sizes", MODEL, "a batch of n rows (n >= 1) gives n prediction rows"),
    Rule("predictions_match_oracle", MODEL,
         "predictions equal the same artifact run in-process, for every datatype the server accepts"),
    Rule("error_unknown_model", MODEL, "an unknown model is a client error (404 + error / NOT_FOUND)"),
    Rule("error_unknown_version", MODEL, "an unknown version is a client error (404 + error / NOT_FOUND)"),
    Rule("error_malformed_body", MODEL,
         "a body that does not parse (JSON / protobuf) is a client error with an error message"),
    Rule("error_unknown_datatype", MODEL, "an unknown datatype name is a client error"),
    Rule("error_lowercase_datatype", MODEL, "datatype names are case-sensitive: `fp32` is a client error",
         level=HARDENING),
    Rule("error_negative_dimension", MODEL, "a negative dimension in a request shape is a client error"),
    Rule("error_data_length_mismatch", MODEL, "data whose length is not product(shape) is a client error"),
    Rule("error_wrong_feature_count", MODEL,
         "an input shape the model does not take (wrong size on a fixed dimension) is a client error"),
    Rule("error_wrong_input_name", MODEL, "an input the model does not have is a client error"),
    Rule("error_two_inputs", MODEL, "more inputs than the model takes (an extra input) is a client error"),
    Rule("error_missing_input", MODEL, "a request lacking one of the model's inputs is a client error"),
    Rule("error_undeclared_datatype", MODEL,
         "an input in a datatype other than the one the model declares is a client error"),
    Rule("error_unknown_output", MODEL, "requesting an output the model does not have is a client error"),
    Rule("error_nonfinite_literals", MODEL, "NaN/Infinity literals are not JSON: a client error"),
    Rule("error_oversized_payload", MODEL, "a payload far past normal size is refused as a client error",
         level=HARDENING),
    Rule("error_wrong_content_type", MODEL, "a body sent with a non-JSON Content-Type is a client error",
         level=HARDENING),
    Rule("error_deep_json", MODEL, "JSON nested very deep is refused as a client error",
         level=HARDENING),
    Rule("server_live_after_bad_requests", MODEL, "the server is still live after every bad request"),
    Rule("interop_tritonclient", MODEL,
         "the independent tritonclient package gets the same predictions as the suite's client",
         level=HARDENING),
)


# Each block below is owned by one area of the suite; add a rule to its block.
# ---- what the probe finds (conformance/probe.py)
PROBE: tuple[Rule, ...] = ()
# ---- rules proposed by docs/spec-audit.md (health bodies, metadata, malformed requests)
AUDIT: tuple[Rule, ...] = ()
# ---- answers checked in full: metadata vs infer, shapes, envelope, strict JSON, REST == gRPC
ANSWERS: tuple[Rule, ...] = ()
# ---- Triton's protocol extensions (level EXTENSION)
EXTENSIONS: tuple[Rule, ...] = ()

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
