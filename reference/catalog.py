"""The two models of the reference deployment and what a client needs to call them."""

from dataclasses import dataclass

REFERENCE_VERSION = "v0.1.0"


@dataclass(frozen=True)
class ModelSpec:
    name: str
    artifact: str  # file name inside models/<name>/
    n_features: int
    input_name: str
    output_name: str
    output_datatype: str
    version: str = REFERENCE_VERSION


MNIST_SVM = ModelSpec(
    name="mnist-svm",
    artifact="model.joblib",
    n_features=64,
    input_name="predict",
    output_name="predict",
    output_datatype="INT64",
)
MUSHROOM_XGBOOST = ModelSpec(
    name="mushroom-xgboost",
    artifact="model.json",
    n_features=126,
    input_name="predict",
    output_name="predict",
    output_datatype="FP32",
)

MODELS: dict[str, ModelSpec] = {m.name: m for m in (MNIST_SVM, MUSHROOM_XGBOOST)}
