"""The delay stand-in's public entry points, kept under their old name (the code is in :mod:`fakes.delay`).

    python -m fakes.delay_server --delay-ms 5      # one server process (fakes.delay.cli)

    from fakes.delay_server import DelayServer     # child processes for tests and bench
"""

from __future__ import annotations

import sys

from fakes.delay.cli import build_parser, main
from fakes.delay.launcher import DelayServer
from oip.clock import PreciseTimer, TimerFd

__all__ = ["DelayServer", "PreciseTimer", "TimerFd", "build_parser", "main"]

if __name__ == "__main__":
    sys.exit(main())
