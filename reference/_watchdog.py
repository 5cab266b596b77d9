"""Runs MLServer as its child and guarantees it never outlives the harness.

The harness starts ``python -m reference._watchdog --parent-pid P -- mlserver start ...``
with a pipe on stdin. The watchdog starts MLServer in a process group of its
own and stops that whole group (SIGTERM, then SIGKILL after a grace period)
as soon as any of these happens:

- the harness closes the pipe (a normal stop) or dies, however it died
  (the pipe reaches EOF, or the watchdog is re-parented away from P);
- the watchdog itself gets SIGTERM, SIGINT or SIGHUP.

It exits with MLServer's exit code.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

POLL_S = 0.2


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _signal_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, sig)


def stop_group(child: subprocess.Popen, grace_s: float) -> int:
    """SIGTERM the child's group, SIGKILL what is left after ``grace_s``."""
    pgid = child.pid
    _signal_group(pgid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        if child.poll() is not None and not _group_alive(pgid):
            break
        time.sleep(0.05)
    if _group_alive(pgid):
        print(f"[watchdog] MLServer did not stop within {grace_s:.0f}s: SIGKILL", flush=True)
        _signal_group(pgid, signal.SIGKILL)
    return child.wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m reference._watchdog")
    parser.add_argument("--parent-pid", type=int, required=True)
    parser.add_argument("--grace", type=float, default=10.0)
    parser.add_argument("--pidfile", type=Path)
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("no command to run")

    stop_requested = False

    def request_stop(signum: int, frame: object) -> None:
        nonlocal stop_requested
        stop_requested = True

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, request_stop)

    child = subprocess.Popen(command, stdin=subprocess.DEVNULL, start_new_session=True)
    if args.pidfile:
        args.pidfile.write_text(f"{child.pid}\n")
    stdin_open = True
    while True:
        code = child.poll()
        if code is not None:
            # MLServer ended by itself; make sure none of its workers linger.
            if _group_alive(child.pid):
                _signal_group(child.pid, signal.SIGKILL)
            return code
        if stop_requested or os.getppid() != args.parent_pid:
            return stop_group(child, args.grace)
        if stdin_open:
            readable, _, _ = select.select([sys.stdin.fileno()], [], [], POLL_S)
            if readable and not os.read(sys.stdin.fileno(), 4096):
                stdin_open = False  # EOF: the harness closed the pipe or died
                return stop_group(child, args.grace)
        else:
            time.sleep(POLL_S)


if __name__ == "__main__":
    sys.exit(main())
