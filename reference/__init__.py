"""The reference deployment: two models on one MLServer, trained, served and checked.

Everything else in the harness (conformance tests, load tests, benchmarks) starts,
uses and stops this deployment through :mod:`reference.server`.
"""

from reference.catalog import MODELS, ModelSpec
from reference.errors import HarnessError

__all__ = ["MODELS", "ModelSpec", "HarnessError"]
