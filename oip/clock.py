"""Waking on time: the timer and clock code shared by the load generator and the stand-in.

Both sides need to act at a ``time.monotonic()`` deadline to within a few
microseconds, where gevent's and asyncio's own timers round up to whole
milliseconds and a VM's idle CPU takes 0.1-0.6 ms to wake:

* :class:`TimerFd`: a Linux ``timerfd`` on CLOCK_MONOTONIC, readable at an
  absolute time (the kernel's high-resolution timer);
* :class:`SpinBudget`: caps the busy-wait that covers the last stretch to a
  deadline at a fraction of each second;
* :class:`PreciseSleeper`: sleeps a gevent greenlet until a deadline (the
  open-loop load generator);
* :class:`PreciseTimer`: runs callbacks in an asyncio loop at deadlines (the
  delay stand-in's holds).

Times are ``time.monotonic()`` seconds (CLOCK_MONOTONIC, the timerfd's clock).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import heapq
import itertools
import logging
import os
import sys
import time
from collections.abc import Callable
from typing import Any

__all__ = [
    "SLEEPER_SPIN_BUDGET",
    "SLEEPER_SPIN_S",
    "TIMER_SPIN_BUDGET",
    "TIMER_SPIN_US",
    "PreciseSleeper",
    "PreciseTimer",
    "SpinBudget",
    "TimerFd",
]

log = logging.getLogger(__name__)

_CLOCK_MONOTONIC = 1
_TFD_CLOEXEC = 0o2000000
_TFD_NONBLOCK = 0o4000
_TFD_TIMER_ABSTIME = 1


class _Timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


class _Itimerspec(ctypes.Structure):
    _fields_ = [("it_interval", _Timespec), ("it_value", _Timespec)]


def _libc() -> Any | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.timerfd_create.argtypes = [ctypes.c_int, ctypes.c_int]
        libc.timerfd_settime.argtypes = [
            ctypes.c_int, ctypes.c_int, ctypes.POINTER(_Itimerspec), ctypes.c_void_p,
        ]
    except (OSError, AttributeError):
        return None
    return libc


_LIBC = _libc()


class TimerFd:
    """A Linux ``timerfd`` on CLOCK_MONOTONIC: readable at an absolute ``time.monotonic()`` time.

    The kernel's high-resolution timer wakes a poller (epoll via gevent or
    asyncio) within ~0.1 ms, where both loops' own timers round up to whole
    milliseconds. ``TimerFd.available()`` tells whether the platform has it.
    """

    def __init__(self) -> None:
        if _LIBC is None:
            raise OSError("timerfd is not available on this platform")
        fd = _LIBC.timerfd_create(_CLOCK_MONOTONIC, _TFD_CLOEXEC | _TFD_NONBLOCK)
        if fd < 0:
            raise OSError(ctypes.get_errno(), "timerfd_create failed")
        self.fd = fd
        self._spec = _Itimerspec()

    @staticmethod
    def available() -> bool:
        return _LIBC is not None

    def arm(self, due: float) -> None:
        """Become readable at ``due`` (absolute, monotonic seconds); re-arming replaces the old time."""
        seconds = int(due)
        self._spec.it_value.tv_sec = seconds
        self._spec.it_value.tv_nsec = max(int((due - seconds) * 1e9), 1)
        if _LIBC.timerfd_settime(self.fd, _TFD_TIMER_ABSTIME, ctypes.byref(self._spec), None) != 0:
            raise OSError(ctypes.get_errno(), "timerfd_settime failed")

    def consume(self) -> bool:
        """Read the expiry count; False if it had not expired (a spurious wake-up)."""
        try:
            os.read(self.fd, 8)
            return True
        except BlockingIOError:
            return False

    def close(self) -> None:
        if self.fd >= 0:
            with contextlib.suppress(OSError):
                os.close(self.fd)
            self.fd = -1

    def __del__(self) -> None:
        self.close()


class SpinBudget:
    """Caps busy-waiting at ``fraction`` of each second (of one process's CPU).

    Waking a sleeping CPU takes 0.1-0.6 ms on a VM; a timer armed a little
    early and a spin to the deadline hides that, but spinning burns CPU, so
    beyond the budget deadlines are slept to (and may be met late).
    """

    def __init__(self, fraction: float) -> None:
        self.fraction = fraction
        self._window = time.monotonic()
        self._spun = 0.0

    def allows(self, now: float) -> bool:
        if now - self._window >= 1.0:
            self._window, self._spun = now, 0.0
        return self._spun < self.fraction

    def spin_until(self, due: float) -> float:
        """Busy-wait to ``due``; returns the time then."""
        began = now = time.monotonic()
        while now < due:
            now = time.monotonic()
        self._spun += now - began
        return now


# ------------------------------------------------------------------ gevent

#: The open-loop sleeper wakes this early and spins to the slot (within SLEEPER_SPIN_BUDGET).
SLEEPER_SPIN_S = 300e-6
SLEEPER_SPIN_BUDGET = SpinBudget(0.1)  # per process: all users' sleepers share it


class PreciseSleeper:
    """Sleep (cooperatively, under gevent) until an absolute ``time.monotonic()`` time.

    Uses a :class:`TimerFd` where available (``precise``), else ``gevent.sleep``
    (which wakes up to ~1 ms late). The timer is armed ``SLEEPER_SPIN_S``
    early and the last stretch is spun, within a shared :class:`SpinBudget`
    (the spin holds up the process's other users for at most that long).
    Close it when done.
    """

    def __init__(self, spin: float = SLEEPER_SPIN_S, budget: SpinBudget = SLEEPER_SPIN_BUDGET) -> None:
        self._timer: TimerFd | None = None
        self.spin = spin
        self.budget = budget
        if TimerFd.available():
            with contextlib.suppress(OSError):
                self._timer = TimerFd()

    @property
    def precise(self) -> bool:
        return self._timer is not None

    def sleep_until(self, due: float) -> None:
        import gevent
        from gevent.socket import wait_read

        now = time.monotonic()
        delay = due - now
        if delay <= 0:
            gevent.sleep(0)  # stay cooperative even when behind
            return
        if self._timer is None:
            gevent.sleep(delay)
            return
        spin = self.spin if self.spin > 0 and self.budget.allows(now) else 0.0
        try:
            self._timer.arm(due - spin)
        except OSError:
            gevent.sleep(delay)
            return
        while True:
            wait_read(self._timer.fd)
            if self._timer.consume():
                break
        if spin:
            self.budget.spin_until(due)

    def close(self) -> None:
        if self._timer is not None:
            self._timer.close()
            self._timer = None


# ----------------------------------------------------------------- asyncio

#: The asyncio timer wakes this long before each deadline and spins to it.
TIMER_SPIN_US = 300.0
#: At most this many seconds of spinning per second (per PreciseTimer): under heavy load it just sleeps.
TIMER_SPIN_BUDGET = 0.2


class PreciseTimer:
    """Runs callbacks at ``time.monotonic()`` deadlines to within a few microseconds.

    asyncio's and uvloop's timers round up to whole milliseconds. A ``timerfd``
    armed ``spin`` seconds before the earliest deadline and watched by the
    loop wakes it in time, and the loop then spins to the deadline (a
    VM's idle CPU takes 0.1-0.6 ms to wake: sleeping to the deadline itself
    would deliver late). The spin blocks the loop for at most ``spin`` per
    deadline, and for at most ``TIMER_SPIN_BUDGET`` of any second (beyond
    that, deadlines are slept to, and may be met late). Without timerfd it
    falls back to ``loop.call_at``.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, spin: float = TIMER_SPIN_US / 1e6) -> None:
        self._loop = loop
        self.spin = max(spin, 0.0)
        self._budget = SpinBudget(TIMER_SPIN_BUDGET)  # spinning is capped at TIMER_SPIN_BUDGET a second
        self._heap: list[tuple[float, int, Callable[..., None], tuple[Any, ...]]] = []
        self._counter = itertools.count()
        self._timer: TimerFd | None = None
        self._armed: float | None = None
        self._fallback: asyncio.TimerHandle | None = None
        if TimerFd.available():
            with contextlib.suppress(OSError):
                self._timer = TimerFd()
        if self._timer is not None:
            loop.add_reader(self._timer.fd, self._fire)

    @property
    def precise(self) -> bool:
        return self._timer is not None

    def call_at(self, due: float, callback: Callable[..., None], *args: Any) -> None:
        """Run ``callback(*args)`` in the loop at ``due`` (monotonic seconds), not before."""
        heapq.heappush(self._heap, (due, next(self._counter), callback, args))
        wake = due - self.spin
        if self._armed is None or wake < self._armed:
            self._arm(wake)

    def wait_until(self, due: float) -> asyncio.Future:
        future = self._loop.create_future()
        self.call_at(due, _resolve, future)
        return future

    def _arm(self, wake: float) -> None:
        self._armed = wake
        if self._timer is not None:
            self._timer.arm(wake)
            return
        if self._fallback is not None:
            self._fallback.cancel()
        self._fallback = self._loop.call_at(self._loop.time() + (wake - time.monotonic()), self._fire)

    def _may_spin(self, now: float) -> bool:
        return self.spin > 0 and self._budget.allows(now)

    def _fire(self) -> None:
        if self._timer is not None:
            self._timer.consume()
        self._armed = None
        heap = self._heap
        while heap:
            due = heap[0][0]
            now = time.monotonic()
            if due > now:
                if due > now + self.spin or not self._may_spin(now):
                    break
                self._budget.spin_until(due)
            _, _, callback, args = heapq.heappop(heap)
            try:
                callback(*args)
            except Exception:  # one broken callback must not stop the others
                log.exception("precise timer callback failed")
        if heap:
            due = heap[0][0]
            self._arm(due - self.spin if self._may_spin(time.monotonic()) else due)

    def close(self) -> None:
        if self._timer is not None:
            self._loop.remove_reader(self._timer.fd)
            self._timer.close()
            self._timer = None
        if self._fallback is not None:
            self._fallback.cancel()


def _resolve(future: asyncio.Future) -> None:
    if not future.done():
        future.set_result(None)
