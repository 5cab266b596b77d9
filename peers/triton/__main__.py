"""``python -m peers.triton``: Triton serving the seed's two models, for a command or by hand.

::

    python -m peers.triton run -- pytest conformance --target-url {rest} --grpc-target {grpc}
    python -m peers.triton serve          # prints the addresses; Ctrl-C stops it
    python -m peers.triton venv           # only build (or check) the peer's virtualenv

``run`` builds or reuses the peer virtualenv (``--venv``, default ``.harness/triton-venv``),
starts Triton on free loopback ports, replaces ``{rest}``, ``{grpc}`` and ``{metrics}``
in the command (also given as ``TRITON_REST_URL``, ``TRITON_GRPC_TARGET`` and
``TRITON_METRICS_URL``), runs it, stops Triton (tritonserver by its pid, then the
peer) however the command ends, and exits with the command's status.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import FrameType

from peers.triton.errors import PeerError
from peers.triton.peer import DEFAULT_STARTUP_TIMEOUT_S, Addresses, TritonPeer, check_artifacts
from peers.triton.venv import PeerVenv, ensure_venv
from reference.paths import MODELS_DIR, RUNTIME_DIR

DEFAULT_VENV = RUNTIME_DIR / "triton-venv"
EXIT_PEER_ERROR = 3
COMMAND_GRACE_S = 10.0


class Interrupted(Exception):
    """SIGTERM or SIGINT reached the CLI."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def substitute(command: Sequence[str], addresses: Addresses) -> list[str]:
    """``{rest}``, ``{grpc}`` and ``{metrics}`` in each argument replaced by Triton's addresses."""
    values = {"{rest}": addresses.rest, "{grpc}": addresses.grpc, "{metrics}": addresses.metrics}
    substituted = []
    for argument in command:
        for key, value in values.items():
            argument = argument.replace(key, value)
        substituted.append(argument)
    return substituted


def command_env(addresses: Addresses, base: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ if base is None else base)
    env.update(TRITON_REST_URL=addresses.rest, TRITON_GRPC_TARGET=addresses.grpc,
               TRITON_METRICS_URL=addresses.metrics)
    return env


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse(sys.argv[1:] if argv is None else list(argv))
    try:
        with _signals_raise():
            if args.action == "venv":
                _build(args.venv)
                return 0
            check_artifacts(args.models_dir)  # before a possibly long virtualenv build
            venv = _build(args.venv)
            peer = TritonPeer(venv.python, models_dir=args.models_dir, startup_timeout_s=args.startup_timeout,
                              stack_mb=args.stack_mb)
            try:
                addresses = peer.start()
                _say(f"Triton ready in {peer.startup_seconds:.1f} s: REST {addresses.rest}  "
                     f"gRPC {addresses.grpc}  metrics {addresses.metrics}  "
                     f"(tritonserver pids {peer.tritonserver_pids}; logs {peer.log_dir})")
                if args.action == "serve":
                    return _serve_until_interrupted()
                status = _run_command(substitute(args.command, addresses), command_env(addresses))
                if not peer.running:
                    _say(f"Triton was no longer running when the command ended: see {peer.log_dir}")
                return status
            finally:
                if peer.started:
                    started = time.monotonic()
                    with _signals_ignored():
                        killed = peer.stop()
                    _say(f"Triton stopped in {time.monotonic() - started:.1f} s"
                         + (f" (killed after the grace period: {killed})" if killed else ""))
    except PeerError as exc:
        print(f"peers.triton: error: {exc}", file=sys.stderr, flush=True)
        return EXIT_PEER_ERROR
    except Interrupted as exc:
        _say(f"stopped by {exc}")
        return 128 + exc.signum


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m peers.triton", description=__doc__.split("\n", 1)[0])
    sub = parser.add_subparsers(dest="action", required=True)
    run = sub.add_parser("run", help="start Triton, run a command against it, stop Triton")
    serve = sub.add_parser("serve", help="start Triton and serve until Ctrl-C or SIGTERM")
    venv = sub.add_parser("venv", help="build or reuse the peer's virtualenv only")
    for p in (run, serve, venv):
        p.add_argument("--venv", type=Path, default=DEFAULT_VENV,
                       help=f"the peer's virtualenv, reused when its pins match (default: {DEFAULT_VENV})")
    for p in (run, serve):
        p.add_argument("--models-dir", type=Path, default=MODELS_DIR,
                       help="where the seed's artifacts are (default: models/)")
        p.add_argument("--startup-timeout", type=float, default=DEFAULT_STARTUP_TIMEOUT_S,
                       help="seconds to wait for GET /v2/health/ready (default: %(default)s)")
        p.add_argument("--stack-mb", type=int, default=0,
                       help="tritonserver's stack limit in MiB (default 0: inherited, usually 8): "
                            "Triton 2.51 crashes on JSON nested ~100,000 deep with 8 MiB, not with 64")
    run.add_argument("command", nargs=argparse.REMAINDER,
                     help="after --: the command; {rest}, {grpc}, {metrics} are replaced")
    args = parser.parse_args(argv)
    if args.action == "run":
        args.command = args.command[1:] if args.command[:1] == ["--"] else args.command
        if not args.command:
            parser.error("run needs a command after --, e.g. run -- pytest conformance --target-url {rest}")
    return args


def _build(path: Path) -> PeerVenv:
    venv = ensure_venv(path)
    _say(f"peer virtualenv {venv.path}: {'reused' if venv.reused else 'built'} in {venv.seconds:.1f} s")
    return venv


def _run_command(command: list[str], env: dict[str, str]) -> int:
    _say(f"running: {' '.join(command)}")
    child = subprocess.Popen(command, env=env)
    try:
        return child.wait()
    except Interrupted as exc:
        with _signals_ignored():
            _end(child, forward=exc.signum == signal.SIGTERM)
        raise


def _end(child: subprocess.Popen[bytes], forward: bool) -> None:
    """SIGTERM forwarded (a Ctrl-C already reached the command), a grace period, then SIGKILL."""
    if forward and child.poll() is None:
        child.send_signal(signal.SIGTERM)
    try:
        child.wait(timeout=COMMAND_GRACE_S)
    except subprocess.TimeoutExpired:
        child.kill()
        child.wait()


def _serve_until_interrupted() -> int:
    _say("serving: Ctrl-C or SIGTERM stops it")
    try:
        while True:
            time.sleep(3600)
    except Interrupted:
        return 0


@contextmanager
def _signals_raise() -> Iterator[None]:
    """SIGTERM and SIGINT raise :class:`Interrupted` in the main thread, so every ``finally`` runs."""
    def handler(signum: int, _frame: FrameType | None) -> None:
        raise Interrupted(signum)

    previous = {s: signal.signal(s, handler) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)


@contextmanager
def _signals_ignored() -> Iterator[None]:
    """No second Ctrl-C or SIGTERM cuts a stop short."""
    previous = {s: signal.signal(s, signal.SIG_IGN) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)


def _say(message: str) -> None:
    print(f"peers.triton: {message}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    sys.exit(main())
