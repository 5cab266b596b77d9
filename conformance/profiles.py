"""Hypothesis profiles of the suite, registered in one place: ``dev``, ``ci``, ``thorough``.

``dev`` is the default outside tox (quick feedback), tox passes
``--hypothesis-profile=ci``, ``thorough`` is for nightly runs. Every rule draws
``max_examples`` examples (a rule whose every example a known deviation covers
stops at the first one that shows it: see :mod:`conformance.judge`).
"""

from __future__ import annotations

from hypothesis import HealthCheck, Phase, settings

DEFAULT_PROFILE = "dev"
EXAMPLES = {"dev": 5, "ci": 10, "thorough": 200}
# CI does not shrink: a failure prints the first failing example's exact request at once
# (shrinking network calls can take hypothesis' full 5 minutes per failing test).
# Re-run with --hypothesis-profile=dev to replay it from the example database and shrink it.
PHASES = {"ci": (Phase.explicit, Phase.reuse, Phase.generate)}

_COMMON = {
    "deadline": None,  # network calls on a shared 2-core machine: no per-example deadline
    "print_blob": False,  # rules run hypothesis inside the test: @reproduce_failure does not apply
    "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large],
}


def register() -> None:
    for name, examples in EXAMPLES.items():
        phases = {"phases": PHASES[name]} if name in PHASES else {}
        settings.register_profile(name, max_examples=examples, **phases, **_COMMON)


register()
