"""A known slowdown for bench/ab_power.py: the seed's stock runtimes plus a fixed busy-wait.

Not imported by the harness: :func:`bench.ab_power.slow_models` copies this file
into each model folder of a copy of ``models/`` under its own module name (MLServer
1.7.1 reloads same-named runtime modules in place, see tests/model_repo/README.md)
and points the model's ``implementation`` at one of the classes below. The delay
(``parameters.extra.delay_s`` in model-settings.json) is spent busy-waiting in
MLServer's event loop (``parallel_workers`` 0), so it adds to every request's
service time as real work would: with a service time of ``s`` per request, a
delay of ``s / 9`` costs about 10 % of the throughput. A blocking ``time.sleep``
was tried first and cost 30 to 50 % instead of 10 % on the shared 2-core
machine: the thread must wait for a core again after every sleep, and on a busy
machine that wait is longer than the sleep. Predictions are the stock runtime's.
"""

from __future__ import annotations

import time

from mlserver_sklearn import SKLearnModel
from mlserver_xgboost import XGBoostModel


class _Sleepy:
    def _delay_s(self) -> float:
        extra = getattr(self.settings.parameters, "extra", None) or {}  # type: ignore[attr-defined]
        return float(extra.get("delay_s", 0.0))

    async def predict(self, payload):  # noqa: ANN001, ANN201 - MLServer's signature
        delay = self._delay_s()
        if delay > 0:  # busy on purpose: service time, neither a yield nor a wait for a core
            end = time.perf_counter() + delay
            while time.perf_counter() < end:
                pass
        return await super().predict(payload)  # type: ignore[misc]


class SlowSKLearnModel(_Sleepy, SKLearnModel):
    """mlserver_sklearn.SKLearnModel, ``delay_s`` slower per request."""


class SlowXGBoostModel(_Sleepy, XGBoostModel):
    """mlserver_xgboost.XGBoostModel, ``delay_s`` slower per request."""
