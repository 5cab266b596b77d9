"""One delay stand-in process: its command line, serving until told to stop, its announcement.

``python -m fakes.delay.cli`` (also ``python -m fakes.delay_server``) prints
one JSON line with its ports once it serves, and stops after ``--max-seconds``
or, with ``--watch-stdin``, when its stdin closes.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
import threading
from collections.abc import Callable
from typing import Any

from oip.clock import TIMER_SPIN_US, PreciseTimer

from . import DEFAULT_MAX_SECONDS
from .behaviour import Answers, Behaviour
from .grpc_app import GrpcApp, GrpcProtocol
from .rest_app import RestApp, RestProtocol
from .stamped import serve_stamped, stop_serving

MODES = ("both", "rest", "grpc")
_DESCRIPTION = "A minimal V2 stand-in that answers after a known delay, with the oracle's predictions."


async def serve(args: argparse.Namespace, announce: Callable[[dict[str, Any]], None]) -> None:
    loop = asyncio.get_running_loop()
    mode = "rest" if args.no_grpc else args.serve
    answers = Answers(wrong_every=args.wrong_every)
    behaviour = Behaviour(args.delay_ms, args.slow_every, args.slow_ms)
    timer = PreciseTimer(loop, args.spin_us / 1e6)
    app = RestApp(answers, behaviour, timer, infer=mode in ("both", "rest"))
    rest = serve_stamped(loop, args.rest_port, lambda: RestProtocol(app))
    control_port = rest.getsockname()[1]
    grpc_server = None
    grpc_port = None
    if mode in ("both", "grpc"):
        grpc_app = GrpcApp(answers)
        grpc_server = serve_stamped(loop, args.grpc_port, lambda: GrpcProtocol(grpc_app, behaviour, timer))
        grpc_port = grpc_server.getsockname()[1]
    announce({"rest_port": control_port if app.infer else None, "grpc_port": grpc_port,
              "control_port": control_port, "pid": os.getpid(), "precise_timer": timer.precise,
              "loop": type(loop).__module__.split(".")[0]})

    stop = asyncio.Event()
    loop.call_later(args.max_seconds, stop.set)
    if args.watch_stdin:
        # A daemon thread, not the loop's executor: the loop's shutdown would wait for a read
        # that never ends, and --max-seconds must end the process whatever stdin does.
        threading.Thread(target=_wait_for_eof, args=(loop, stop), daemon=True, name="stdin-eof").start()
    await stop.wait()
    stop_serving(loop, rest)
    timer.close()
    if grpc_server is not None:
        stop_serving(loop, grpc_server)


def _wait_for_eof(loop: asyncio.AbstractEventLoop, stop: asyncio.Event) -> None:
    with contextlib.suppress(OSError, ValueError):
        while sys.stdin.buffer.read(4096):
            pass
    loop.call_soon_threadsafe(stop.set)


def _loop_factory(choice: str) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop unless asked for asyncio's own loop (or uvloop is missing and "auto" was asked)."""
    if choice == "asyncio":
        return None
    try:
        import uvloop
    except ImportError:
        if choice == "uvloop":
            raise
        return None
    return uvloop.new_event_loop


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m fakes.delay_server", description=_DESCRIPTION)
    p.add_argument("--delay-ms", type=float, default=5.0, help="how long each inference is held")
    p.add_argument("--slow-every", type=int, default=0,
                   help="every N-th inference (per transport) is held --slow-ms instead")
    p.add_argument("--slow-ms", type=float, default=20.0)
    p.add_argument("--wrong-every", type=int, default=0, help="every N-th answer is wrong (1: all)")
    p.add_argument("--serve", choices=MODES, default="both",
                   help="what this process serves; 'grpc' keeps a REST port for /_delay/* only")
    p.add_argument("--no-grpc", action="store_true", help="serve REST only (same as --serve rest)")
    p.add_argument("--spin-us", type=float, default=TIMER_SPIN_US,
                   help="wake this long before each deadline and spin to it (0: sleep to it)")
    p.add_argument("--loop", choices=("auto", "asyncio", "uvloop"), default="auto",
                   help="event loop; auto: uvloop when installed")
    p.add_argument("--rest-port", type=int, default=0, help="0: a free port")
    p.add_argument("--grpc-port", type=int, default=0, help="0: a free port")
    p.add_argument("--max-seconds", type=float, default=DEFAULT_MAX_SECONDS, help="stop after this long")
    p.add_argument("--watch-stdin", action="store_true", help="stop when stdin closes (used by DelayServer)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    for name in ("delay_ms", "slow_ms", "spin_us"):
        if getattr(args, name) < 0:
            print(f"error: --{name.replace('_', '-')} must be 0 or more", file=sys.stderr)
            return 2

    def announce(ports: dict[str, Any]) -> None:
        print(json.dumps(ports), flush=True)

    factory = _loop_factory(args.loop)
    with contextlib.suppress(KeyboardInterrupt), asyncio.Runner(loop_factory=factory) as runner:
        runner.run(serve(args, announce))
    return 0


if __name__ == "__main__":
    sys.exit(main())
