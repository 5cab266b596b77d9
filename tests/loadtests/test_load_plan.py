"""Unit tests of the load-test options: --mix/--transports parsing, validation, load profiles."""

from __future__ import annotations

from argparse import Namespace
from fractions import Fraction

import pytest

from loadtests._plan import (
    DEFAULT_MIX,
    PlanError,
    integer_weights,
    parse_weights,
    plan_from_options,
    profile,
    shares,
    users_at,
)
from oip.names import LOOPBACK

MODELS = ["mnist-svm", "mushroom-xgboost"]


def options(**overrides: object) -> Namespace:
    values = dict(
        mix=DEFAULT_MIX, transports="rest,grpc", batch_size=1, path_style="versioned",
        grpc_host=f"{LOOPBACK}:8081", host=f"http://{LOOPBACK}:8080", shape="steady", steps=4,
        spike_factor=4.0, arrival_rate=0.0, arrival="constant", max_requests=1000, late_ms=1.0,
        seed=None, tags=None, exclude_tags=None, allow_remote=False, client="precise",
    )
    values.update(overrides)
    return Namespace(**values)


def test_mix_weights_are_parsed_in_order() -> None:
    assert parse_weights("mnist-svm=3,mushroom-xgboost=1", MODELS, "model", "--mix") == {
        "mnist-svm": Fraction(3), "mushroom-xgboost": Fraction(1)}


def test_bare_names_weigh_one_and_zero_weights_drop_out() -> None:
    assert parse_weights(" mnist-svm , mushroom-xgboost=0 ", MODELS, "model", "--mix") == {
        "mnist-svm": Fraction(1)}


def test_decimal_weights_become_small_integers() -> None:
    weights = parse_weights("mnist-svm=0.75,mushroom-xgboost=0.25", MODELS, "model", "--mix")
    assert integer_weights(weights) == {"mnist-svm": 3, "mushroom-xgboost": 1}
    assert shares(weights) == {"mnist-svm": 0.75, "mushroom-xgboost": 0.25}


@pytest.mark.parametrize(("text", "fragment"), [
    ("resnet=1", "unknown model 'resnet'"),
    ("mnist-svm=x", "not a number"),
    ("mnist-svm=-1", "negative"),
    ("mnist-svm=1,,mushroom-xgboost=1", "empty entry"),
    ("mnist-svm=1,mnist-svm=2", "twice"),
    ("mnist-svm=0", "at least one needs a positive weight"),
    ("", "is empty"),
])
def test_bad_mixes_are_refused_with_the_fix(text: str, fragment: str) -> None:
    with pytest.raises(PlanError, match=fragment) as info:
        parse_weights(text, MODELS, "model", "--mix")
    assert "--mix" in str(info.value)


def test_too_fine_weights_are_refused() -> None:
    weights = {"a": Fraction(1), "b": Fraction(1000)}
    with pytest.raises(PlanError, match="round them"):
        integer_weights(weights)


def test_plan_from_default_options() -> None:
    plan = plan_from_options(options())
    assert plan.mix == {"mnist-svm": 3, "mushroom-xgboost": 1}
    assert set(plan.transports) == {"rest", "grpc"}
    assert plan.versioned and not plan.open_loop
    assert len(plan.combinations()) == 4


def test_tags_select_model_transport_pairs() -> None:
    plan = plan_from_options(options(tags=["grpc"], exclude_tags=["mushroom-xgboost"]))
    assert plan.combinations() == [("mnist-svm", "grpc")]


@pytest.mark.parametrize(("overrides", "fragment"), [
    ({"tags": ["nothing"]}, "leave no model x transport"),
    ({"transports": "http"}, "unknown transport 'http'"),
    ({"batch_size": 0}, "--batch-size"),
    ({"arrival_rate": -5.0}, "--arrival-rate"),
    ({"max_requests": 0}, "--max-requests"),
    ({"grpc_host": "localhost"}, "HOST:PORT"),
    ({"host": f"{LOOPBACK}:8080"}, "not a URL"),
    ({"host": "http://192.0.2.10:8080"}, "not a loopback address"),
    ({"spike_factor": 0.5}, "--spike-factor"),
    ({"client": "curl"}, "--client"),
    ({"host": f"https://{LOOPBACK}:8443"}, "pass --client stock"),
])
def test_bad_options_are_refused(overrides: dict, fragment: str) -> None:
    with pytest.raises(PlanError, match=fragment):
        plan_from_options(options(**overrides))


def test_https_targets_take_the_stock_client() -> None:
    assert plan_from_options(options(host=f"https://{LOOPBACK}:8443", client="stock")).client == "stock"


def test_remote_targets_need_allow_remote() -> None:
    plan = plan_from_options(options(host="http://192.0.2.10:8080", allow_remote=True))
    assert plan.rest_url == "http://192.0.2.10:8080"


def test_grpc_host_accepts_a_url() -> None:
    assert plan_from_options(options(grpc_host=f"grpc://{LOOPBACK}:9000")).grpc_target == f"{LOOPBACK}:9000"


@pytest.mark.parametrize(("shape", "t", "expected"), [
    ("steady", 0.0, 1.0), ("steady", 59.0, 1.0),
    ("ramp", 0.0, 0.05), ("ramp", 30.0, 0.5), ("ramp", 60.0, 1.0),
    ("step", 0.0, 0.25), ("step", 15.0, 0.5), ("step", 59.9, 1.0),
    ("spike", 10.0, 0.25), ("spike", 25.0, 1.0), ("spike", 40.0, 0.25),
])
def test_profiles(shape: str, t: float, expected: float) -> None:
    assert profile(shape, t, 60.0, steps=4, spike_factor=4.0) == pytest.approx(expected)


def test_users_never_drop_below_one_and_reach_the_peak() -> None:
    assert users_at("ramp", 0.0, 60.0, 8) == 1
    assert users_at("ramp", 60.0, 60.0, 8) == 8
    assert [users_at("step", t, 40.0, 8, steps=4) for t in (0, 10, 20, 30)] == [2, 4, 6, 8]


# ------------------------------------------------------------------ any model repository

SERVED = {"iris-tagged": "2", "wine-proba": None, "cancer-samples": "2024-06"}


def test_without_mix_every_served_model_gets_the_same_weight() -> None:
    plan = plan_from_options(options(mix=""), SERVED, "/elsewhere")
    assert plan.mix == {name: 1 for name in SERVED}
    assert (plan.version("iris-tagged"), plan.version("wine-proba")) == ("2", "")
    assert plan_from_options(options(mix="")).mix == {"mnist-svm": 3, "mushroom-xgboost": 1}  # the seed


def test_mix_names_only_served_models() -> None:
    with pytest.raises(PlanError, match="unknown model 'mnist-svm'; known: iris-tagged, wine-proba"):
        plan_from_options(options(mix="iris-tagged=1,mnist-svm=1"), SERVED, "/elsewhere")
    plan = plan_from_options(options(mix="wine-proba=2,iris-tagged=1", path_style="unversioned"),
                             SERVED, "/elsewhere")
    assert plan.mix == {"wine-proba": 2, "iris-tagged": 1} and plan.version("iris-tagged") == ""
