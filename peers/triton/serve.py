"""Serve the seed's two artifacts with Triton, through PyTriton: run INSIDE the peer virtualenv.

This file imports only the standard library, numpy, scikit-learn (through joblib),
xgboost and pytriton, never the harness: it runs under Debian's Python 3.11 in the
virtualenv built from ``peers/triton/requirements.txt``. ``python -m peers.triton``
starts it; by hand::

    PEER/bin/python peers/triton/serve.py --models-dir models --http-port 8000 --grpc-port 8001

Both models are served as version ``1`` under the seed's names, with the inputs and
outputs of ``models/<name>/model-settings.json`` (``predict`` FP32 ``[-1, n]`` in,
``predict`` ``[-1, 1]`` out), batched up to ``--max-batch`` rows a request. When
every model is ready it prints one line ``triton-peer ready {json}`` (and writes the
same JSON to ``--ready-file``), then serves until SIGTERM or SIGINT.
"""

from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import json
import logging
import os
import resource
import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import xgboost as xgb
from pytriton.decorators import batch
from pytriton.model_config import ModelConfig, Tensor
from pytriton.triton import Triton, TritonConfig, TritonLifecyclePolicy, TritonSecurityConfig

MODEL_VERSION = 1
DEFAULT_MAX_BATCH = 1024  # the suite's largest batch is 256 rows
READY_PREFIX = "triton-peer ready "
PR_SET_PDEATHSIG = 1
InferFn = Callable[..., dict[str, np.ndarray]]


def _svm(models_dir: Path) -> InferFn:
    model = joblib.load(models_dir / "mnist-svm" / "model.joblib")

    @batch
    def infer(predict: np.ndarray) -> dict[str, np.ndarray]:
        return {"predict": np.asarray(model.predict(predict), dtype=np.int64).reshape(-1, 1)}

    return infer


def _xgboost(models_dir: Path) -> InferFn:
    booster = xgb.Booster(model_file=str(models_dir / "mushroom-xgboost" / "model.json"))

    @batch
    def infer(predict: np.ndarray) -> dict[str, np.ndarray]:
        return {"predict": booster.predict(xgb.DMatrix(predict)).astype(np.float32).reshape(-1, 1)}

    return infer


# name -> (loader, number of input features, output dtype): models/<name>/model-settings.json
MODELS: dict[str, tuple[Callable[[Path], InferFn], int, type]] = {
    "mnist-svm": (_svm, 64, np.int64),
    "mushroom-xgboost": (_xgboost, 126, np.float32),
}


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--models-dir", type=Path, required=True, help="folder holding <model>/ artifacts")
    parser.add_argument("--http-port", type=int, default=8000)
    parser.add_argument("--grpc-port", type=int, default=8001)
    parser.add_argument("--metrics-port", type=int, default=8002)
    parser.add_argument("--max-batch", type=int, default=DEFAULT_MAX_BATCH)
    parser.add_argument("--log-file", type=Path, default=None, help="Triton's own log (default: none)")
    parser.add_argument("--ready-file", type=Path, default=None, help="also write the ready JSON here")
    parser.add_argument("--stack-mb", type=int, default=0,
                        help="tritonserver's stack limit in MiB (0: inherited); its JSON parser recurses "
                             "once per nesting level and a deep body overflows 8 MiB")
    parser.add_argument("--die-with-parent", action="store_true",
                        help="get SIGTERM when the process that started this one dies (Linux)")
    return parser.parse_args(argv)


def _config(args: argparse.Namespace) -> TritonConfig:
    return TritonConfig(
        http_address="127.0.0.1", grpc_address="127.0.0.1", metrics_address="127.0.0.1",
        http_port=args.http_port, grpc_port=args.grpc_port, metrics_port=args.metrics_port,
        log_file=args.log_file.resolve() if args.log_file else None,
        exit_timeout_secs=5,
    )


def _ready_info(args: argparse.Namespace, triton: Triton) -> dict[str, Any]:
    server = getattr(triton, "_triton_server", None)
    running = getattr(server, "_tritonserver_running_cmd", None)
    return {
        "rest": f"http://127.0.0.1:{args.http_port}", "grpc": f"127.0.0.1:{args.grpc_port}",
        "metrics": f"http://127.0.0.1:{args.metrics_port}/metrics", "models": sorted(MODELS),
        "version": str(MODEL_VERSION), "peer_pid": os.getpid(),
        "tritonserver_pid": getattr(running, "pid", None),
        # PyTriton's copy of tritonserver, its model store and sockets (removed by the CLI after a kill)
        "workspace": str(getattr(getattr(triton, "_workspace", None), "path", "") or ""),
    }


def _die_with_parent() -> None:
    """SIGTERM (so Triton is stopped) when the parent dies, even by SIGKILL: prctl(PR_SET_PDEATHSIG)."""
    parent = os.getppid()
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent:  # the parent died before prctl
        sys.exit(1)


def _set_stack_limit(mib: int) -> None:
    """The soft RLIMIT_STACK that tritonserver inherits (and sizes its threads' stacks by)."""
    _, hard = resource.getrlimit(resource.RLIMIT_STACK)
    wanted = mib * 1024 * 1024
    soft = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    resource.setrlimit(resource.RLIMIT_STACK, (soft, hard))


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    if args.die_with_parent:
        _die_with_parent()
    if args.stack_mb:
        _set_stack_limit(args.stack_mb)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    # Unrestricted like a stock tritonserver: PyTriton otherwise guards the repository,
    # statistics, trace, logging and shared-memory APIs with a generated token.
    # The models are written to Triton's model repository before it starts (a local model
    # store), so the repository index lists them, as it does for a stock deployment.
    triton = Triton(config=_config(args), security_config=TritonSecurityConfig(restricted_endpoints=[]),
                    triton_lifecycle_policy=TritonLifecyclePolicy(local_model_store=True))
    try:
        for name, (load, features, out_dtype) in MODELS.items():
            triton.bind(
                model_name=name, infer_func=load(args.models_dir), model_version=MODEL_VERSION,
                inputs=[Tensor(name="predict", dtype=np.float32, shape=(features,))],
                outputs=[Tensor(name="predict", dtype=out_dtype, shape=(1,))],
                config=ModelConfig(max_batch_size=args.max_batch), strict=True,
            )
        triton.run()
        info = _ready_info(args, triton)
        if args.ready_file is not None:
            tmp = args.ready_file.with_suffix(".tmp")
            tmp.write_text(json.dumps(info))
            tmp.replace(args.ready_file)
        print(READY_PREFIX + json.dumps(info), flush=True)
        while not stop.wait(1.0):
            if not triton.is_alive():
                print("triton-peer: Triton stopped on its own", file=sys.stderr, flush=True)
                return 1
        return 0
    finally:
        triton.stop()


if __name__ == "__main__":
    sys.exit(main())
