"""Open-loop load: when each request should start, waking on time, and how late it started.

An open-loop generator sends requests at a fixed arrival rate whatever the
server does, so a slow answer cannot hold back the next request (closed-loop
users would wait, and a stall would vanish from the figures: coordinated
omission). Each request's latency is measured from its *intended* start time,
so time spent waiting for a free connection counts as the queueing it is.

* :class:`ArrivalSchedule` hands out intended start times (constant spacing
  or Poisson arrivals, optionally with a time-varying rate);
* :class:`PreciseSleeper` waits until such a time with a Linux ``timerfd``
  under gevent (gevent's own timers fire up to ~1 ms late, which would show
  up as latency); elsewhere it falls back to ``gevent.sleep``;
* :class:`LagTracker` records how late each request actually started, so the
  run can say when the generator fell behind its schedule.

Times are ``time.monotonic()`` seconds (CLOCK_MONOTONIC, the timerfd's clock).
"""

from __future__ import annotations

import contextlib
import ctypes
import math
import os
import random
import sys
import time
from collections.abc import Callable
from typing import Any

from reporting.latency import LatencyHistogram, WireFormatError

RateFn = Callable[[float], float]


class ArrivalSchedule:
    """Intended start times of one open-loop stream.

    ``rate`` is requests per second, or a function of the seconds since
    ``start`` returning it (for ramps and spikes). ``process`` is
    ``"constant"`` (evenly spaced) or ``"poisson"`` (exponential gaps, seeded
    by ``rng``). ``phase`` offsets the first arrival (so several processes
    sharing one rate interleave instead of firing together).
    """

    def __init__(
        self,
        rate: float | RateFn,
        process: str = "constant",
        *,
        start: float,
        phase: float = 0.0,
        rng: random.Random | None = None,
    ) -> None:
        if process not in ("constant", "poisson"):
            raise ValueError(f"arrival process {process!r}: use 'constant' or 'poisson'")
        if not callable(rate) and not (rate > 0 and math.isfinite(rate)):
            raise ValueError(f"arrival rate {rate!r}: give a positive number of requests per second")
        self._rate: RateFn = rate if callable(rate) else (lambda _t, r=float(rate): r)
        self.process = process
        self.start = start
        self._rng = rng or random.Random()
        self._next = start + phase
        self.issued = 0

    def rate_at(self, t: float) -> float:
        """The rate (requests/s) at absolute time ``t``."""
        rate = self._rate(t - self.start)
        if not (rate > 0 and math.isfinite(rate)):
            raise ValueError(f"the arrival rate became {rate!r} at t={t - self.start:.3f}s; it must stay > 0")
        return rate

    def peek(self) -> float:
        """The next intended start time, without claiming it."""
        return self._next

    def claim(self) -> float:
        """Claim the next intended start time (each one is handed out exactly once)."""
        due = self._next
        rate = self.rate_at(due)
        gap = 1.0 / rate if self.process == "constant" else self._rng.expovariate(rate)
        self._next = due + gap
        self.issued += 1
        return due


class LagTracker:
    """How late requests started relative to their schedule (microsecond histogram)."""

    def __init__(self, late_threshold_us: float) -> None:
        self.late_threshold_us = late_threshold_us
        self.histogram = LatencyHistogram()
        self.late = 0

    def record(self, lag_s: float) -> None:
        lag_us = lag_s * 1e6 if lag_s > 0 else 0.0
        self.histogram.record(lag_us)
        if lag_us > self.late_threshold_us:
            self.late += 1

    @property
    def scheduled(self) -> int:
        return self.histogram.count

    def merge(self, other: LagTracker) -> None:
        self.histogram.merge(other.histogram)
        self.late += other.late

    def take(self) -> LagTracker:
        taken = LagTracker(self.late_threshold_us)
        taken.histogram, taken.late = self.histogram, self.late
        self.histogram, self.late = LatencyHistogram(), 0
        return taken

    def to_wire(self) -> dict[str, Any] | None:
        if not self.scheduled:
            return None
        return {"hdr": self.histogram.encode(), "late": self.late,
                "late_threshold_us": self.late_threshold_us}

    @classmethod
    def from_wire(cls, wire: dict[str, Any]) -> LagTracker:
        try:
            tracker = cls(float(wire["late_threshold_us"]))
            tracker.histogram = LatencyHistogram.decode(wire["hdr"])
            tracker.late = int(wire["late"])
        except (KeyError, TypeError, ValueError) as exc:
            raise WireFormatError(f"not a LagTracker wire dict ({exc}): {wire!r:.100}") from None
        return tracker

    def summary(self) -> dict[str, Any]:
        scheduled = self.scheduled
        return {
            "scheduled": scheduled,
            "late": self.late,
            "late_fraction": round(self.late / scheduled, 6) if scheduled else 0.0,
            "late_threshold_us": self.late_threshold_us,
            "lag_us": self.histogram.stats(),
        }


# ------------------------------------------------------------ precise waits

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
