"""Any model: ``python -m bench run --models-dir tests/model_repo`` and the checks of its answers.

One bench run serves tests/model_repo (its own MLServer on free loopback ports)
and loads it with ``locust -f loadtests/ --headless --models-dir tests/model_repo``
over REST and gRPC for 3 s: the Locust run's ``latency.json`` (copied into the
bench's run folder) answers the load-test questions, its ``summary.json`` the
bench's. It starts in the background with the module and is awaited by the
tests that read it, so the in-process checks below run meanwhile. The refused
runs (bad samples) are in test_locust_runs.py, beside the other refusals.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from oip.codec import build_infer_response, from_json_tensor
from reference.paths import MODELS_DIR, REPO_ROOT
from reference.train import build_models_dir

MODEL_REPO = REPO_ROOT / "tests" / "model_repo"
MODELS = ("cancer-samples", "digits-lowprec", "iris-tagged", "wine-proba")
BENCH_TIMEOUT_S = 240


@dataclasses.dataclass
class BenchRun:
    returncode: int
    stdout: str
    stderr: str
    summary: dict[str, Any]
    latency: dict[str, Any]  # the measured Locust run's latency.json


@pytest.fixture(scope="module")
def bench_process(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[subprocess.Popen, Path]]:
    """``python -m bench run --models-dir tests/model_repo``, started with the module."""
    build_models_dir(MODEL_REPO)  # no work when up to date
    root = tmp_path_factory.mktemp("bench")
    process = subprocess.Popen(
        [sys.executable, "-m", "bench", "run", "--models-dir", str(MODEL_REPO), "--seconds", "3",
         "--warmup", "0", "--users", "4", "--reports-root", str(root)],
        cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        yield process, root
    finally:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)  # nothing it started outlives the module
        process.wait(10)


@pytest.fixture(scope="module")
def bench(bench_process: tuple[subprocess.Popen, Path]) -> BenchRun:
    process, root = bench_process
    stdout, stderr = process.communicate(timeout=BENCH_TIMEOUT_S)
    run_dir = root / "bench" / "latest"
    summary = json.loads((run_dir / "summary.json").read_text())
    latency_file = run_dir / "latency.json"
    latency = json.loads(latency_file.read_text()) if latency_file.exists() else {}
    return BenchRun(process.returncode, stdout, stderr, summary, latency)


# ------------------------------------------------------------ checks, no server (while the bench runs)


@pytest.fixture(scope="module")
def iris(bench_process: Any) -> Any:
    """iris-tagged's load: generated requests, expected answers from its runtime in-process."""
    from loadtests._expected import build_any_load, local_source
    from loadtests._models import local_models

    deployed = local_models(str(MODEL_REPO))
    return build_any_load(local_source(deployed["iris-tagged"], None), 2, True, "http://127.0.0.1:1")


def _answer(load: Any, expected: dict[str, Any], **changes: Any) -> dict[str, Any]:
    return {"model_name": load.name, "outputs": [dict(o) for o in expected["outputs"]], **changes}


def test_answers_are_compared_with_the_runtime_in_process(iris: Any) -> None:
    item = iris.items[0]
    assert item.expected is not None and "in-process" in iris.checked_by
    right = _answer(iris, item.expected)
    assert iris.check_rest(item, 200, json.dumps(right).encode()) is None
    tensors = {o["name"]: from_json_tensor(o) for o in item.expected["outputs"]}
    grpc_answer = build_infer_response("iris-tagged", tensors,
                                       datatypes={o["name"]: o["datatype"] for o in item.expected["outputs"]})
    assert iris.check_grpc(item, grpc_answer.SerializeToString()) is None

    wrong = _answer(iris, item.expected)
    species = next(o for o in wrong["outputs"] if o["name"] == "species")
    species["data"] = ["not-a-species"] * len(species["data"])
    for problem in (iris.check_rest(item, 200, json.dumps(wrong).encode()),
                    iris.check_grpc(item, build_infer_response(
                        "iris-tagged", {**tensors, "species": np.full((2, 1), b"x", dtype=object)},
                        datatypes={"species": "BYTES", "tag": "BYTES"}).SerializeToString())):
        assert problem is not None and problem.startswith("wrong answer: iris-tagged generated request 0")
        assert "'species'" in problem
    assert "HTTP 400" in iris.check_rest(item, 400, b'{"error": "bad"}')
    assert "model_name is 'x'" in iris.check_rest(item, 200, json.dumps(_answer(iris, item.expected,
                                                                                model_name="x")).encode())


def test_without_a_runtime_the_signature_still_checks(iris: Any) -> None:
    item = dataclasses.replace(iris.items[0], expected=None)
    answer = _answer(iris, iris.items[0].expected)
    assert iris.check_rest(item, 200, json.dumps(answer).encode()) is None
    answer["outputs"] = [o for o in answer["outputs"] if o["name"] != "species"]
    problem = iris.check_rest(item, 200, json.dumps(answer).encode())
    assert problem is not None and "breaks the signature" in problem and "'species'" in problem


# ------------------------------------------------------------ the bench run and its Locust run


def test_locust_loads_every_model_over_both_transports(bench: BenchRun) -> None:
    doc = bench.latency
    assert bench.summary["run"]["locust_exit_code"] == 0, bench.stderr[-3000:]
    assert doc.get("complete") is True, bench.stderr[-3000:]
    assert doc["plan"]["mix"] == {m: 1.0 for m in MODELS}  # no --mix: every served model alike
    assert doc["total"]["errors"] == 0 and doc["locust"]["failures"] == 0
    assert doc["total"]["requests"] == doc["locust"]["requests"] > 40
    assert {(s["model"], s["transport"]) for s in doc["series"]} == {
        (m, t) for m in MODELS for t in ("rest", "grpc")}
    for series in doc["series"]:
        assert series["requests"] > 0 and series["errors"] == 0
        assert 0 < series["latency_us"]["p50"] <= series["latency_us"]["max"]
    for model in MODELS:  # every answer compared with the model's own runtime in-process
        assert "in-process" in doc["checks"][model], doc["checks"]


def test_bench_run_reports_every_model(bench: BenchRun) -> None:
    assert bench.returncode == 0, (bench.stdout + bench.stderr)[-3000:]
    assert bench.summary["verdict"].startswith("PASS"), bench.summary["verdict"]
    assert bench.summary["run"]["arguments"]["models_dir"] == str(MODEL_REPO)
    for model in MODELS:
        assert bench.summary["scopes"][model]["requests"] > 0, sorted(bench.summary["scopes"])
        assert f"  {model}: " in bench.stdout  # printed per model
    print(bench.stdout)


# ------------------------------------------------------------ options, no server


def test_served_models_come_from_the_models_dir() -> None:
    from argparse import Namespace

    from loadtests._models import default_mix, models_dir_of, served_catalog

    repo = Namespace(models_dir=str(MODEL_REPO), mix="", host="")
    assert served_catalog(repo) == {"cancer-samples": "2024-06", "digits-lowprec": "1", "iris-tagged": "2",
                                    "wine-proba": None}
    assert default_mix(models_dir_of(repo), served_catalog(repo)) == ",".join(f"{m}=1" for m in MODELS)
    seed = Namespace(models_dir=str(MODELS_DIR), mix="", host="")
    assert default_mix(models_dir_of(seed), served_catalog(seed)) == "mnist-svm=3,mushroom-xgboost=1"


def test_bench_passes_the_models_dir_and_samples_to_locust() -> None:
    from bench.scenario import FIXED_SCENARIO, for_models, locust_args

    args = locust_args(for_models(FIXED_SCENARIO, MODEL_REPO, Path("samples")), 3, "http://h:1", "h:2")
    assert "--mix" not in args  # every served model alike
    assert args[args.index("--models-dir") + 1] == str(MODEL_REPO)
    assert args[args.index("--samples") + 1] == str(Path("samples").resolve())
    seed = locust_args(for_models(FIXED_SCENARIO, MODELS_DIR), 3, "http://h:1", "h:2")
    assert seed[seed.index("--mix") + 1] == "mnist-svm=3,mushroom-xgboost=1" and "--models-dir" not in seed
