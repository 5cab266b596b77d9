"""The server's live endpoint, probed every second while bad traffic runs.

:class:`Liveness` sends ``GET /v2/health/live`` on a connection of its own
(the lean HTTP/1.1 client, loopback) every :data:`PROBE_EVERY_S`, each probe
waiting at most :data:`PROBE_TIMEOUT_S`. A probe that gets no 200 is a lost
probe, reported with its time; consecutive lost probes form one outage. When
an outage lasts longer than the run's ``no-success`` abort rule (the headless
default: 5 s), the run is aborted as for any dead target (:mod:`._abort`);
with ``--no-abort`` it is only reported. A run that lost liveness exits 1.
Runs on the master or the only process (workers send load, not probes).
"""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import urlsplit

import gevent

from oip.precise import HttpConnection, WireError, http_request

PROBE_EVERY_S = 1.0
PROBE_TIMEOUT_S = 5.0
LIVE_PATH = "/v2/health/live"
MAX_OUTAGES = 50


class Liveness:
    """Probes and outages of one test (see the module docstring)."""

    def __init__(self, rest_url: str) -> None:
        base = urlsplit(rest_url)
        self.host, self.port = base.hostname or "127.0.0.1", base.port or 80
        self.request = http_request("GET", base.netloc, base.path.rstrip("/") + LIVE_PATH, b"")
        self.probes = self.lost = 0
        self.outages: list[dict[str, Any]] = []  # {"start", "end" (wall, None: ongoing), "probes", "why"}
        self.greenlet: gevent.Greenlet | None = None

    def probe_once(self, connection: HttpConnection) -> str | None:
        """One probe: None when live, else why not."""
        try:
            reply = connection.exchange(self.request)
        except WireError as exc:
            return str(exc)
        return None if reply.status == 200 else f"HTTP {reply.status}"

    def record(self, why: str | None, wall: float) -> None:
        self.probes += 1
        current = self.outages[-1] if self.outages and self.outages[-1]["end"] is None else None
        if why is None:
            if current is not None:
                current["end"] = wall
            return
        self.lost += 1
        if current is not None:
            current["probes"] += 1
        elif len(self.outages) < MAX_OUTAGES:
            self.outages.append({"start": wall, "end": None, "probes": 1, "why": why[:200]})

    def down_for(self, wall: float) -> float:
        """How long the ongoing outage has lasted (0: live)."""
        if self.outages and self.outages[-1]["end"] is None:
            return wall - self.outages[-1]["start"]
        return 0.0

    def run(self, on_down: Any = None, limit_s: float | None = None) -> None:
        """Probe until killed; ``on_down(reason)`` once an outage outlasts ``limit_s``."""
        connection = HttpConnection(self.host, self.port, timeout=PROBE_TIMEOUT_S,
                                    connect_timeout=PROBE_TIMEOUT_S)
        told = False
        try:
            while True:
                started = time.monotonic()
                self.record(self.probe_once(connection), time.time())
                down = self.down_for(time.time())
                if on_down is not None and limit_s is not None and down > limit_s and not told:
                    told = True
                    on_down(f"the server's live endpoint did not answer for {down:.1f} s "
                            f"(since {_clock(self.outages[-1]['start'])})")
                gevent.sleep(max(PROBE_EVERY_S - (time.monotonic() - started), 0.0))
        finally:
            connection.close()

    def start(self, on_down: Any = None, limit_s: float | None = None) -> None:
        self.stop()
        self.greenlet = gevent.spawn(self.run, on_down, limit_s)

    def stop(self) -> None:
        if self.greenlet is not None:
            self.greenlet.kill(block=False)
            self.greenlet = None

    def report(self, started_wall: float | None) -> dict[str, Any]:
        """For latency.json: probes, lost probes, outages with their times."""
        outages = []
        for outage in self.outages:
            end = outage["end"]
            outages.append({
                "at": _clock(outage["start"]),
                "start_s": round(outage["start"] - started_wall, 3) if started_wall else None,
                "duration_s": round((end if end is not None else time.time()) - outage["start"], 3),
                "ongoing": end is None, "probes": outage["probes"], "why": outage["why"],
            })
        return {"probes": self.probes, "lost_probes": self.lost, "lost": bool(self.lost),
                "every_s": PROBE_EVERY_S, "outages": outages}


def _clock(wall: float) -> str:
    return time.strftime("%H:%M:%S", time.gmtime(wall)) + " UTC"
