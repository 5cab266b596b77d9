"""What a load run does, read from Locust's options: the mix, transports, shape and limits.

Pure functions (no Locust, no I/O), so the parsing and the load profiles are
unit-tested on their own. ``plan_from_options`` turns Locust's parsed options
into a validated, frozen :class:`Plan`, raising :class:`PlanError` with a
message that says what to type instead.
"""

from __future__ import annotations

import ipaddress
import math
import socket
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from functools import reduce
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from oip.names import LOOPBACK
from reference.catalog import MODELS
from reference.errors import HarnessError
from reference.paths import MODELS_DIR

TRANSPORTS = ("rest", "grpc")
SHAPES = ("steady", "ramp", "step", "spike")
ARRIVALS = ("constant", "poisson")
PATH_STYLES = ("versioned", "unversioned")
CLIENTS = ("precise", "stock")

DEFAULT_MIX = "mnist-svm=3,mushroom-xgboost=1"
DEFAULT_TRANSPORTS = "rest,grpc"
DEFAULT_RUN_TIME_S = 60
DEFAULT_MAX_REQUESTS = 1_000_000
DEFAULT_USERS = 8
DEFAULT_LATE_MS = 1.0
MAX_TASK_SLOTS = 1000  # weights become a list of task references: keep it short


class PlanError(HarnessError):
    """A load-test option is wrong; the message says how to fix it."""


def parse_weights(text: str, known: Iterable[str], what: str, option: str) -> dict[str, Fraction]:
    """Parse ``name=weight,name=weight`` (a bare ``name`` means weight 1).

    Weights are non-negative decimals; at least one must be positive. Names
    must be in ``known``. Returns only the names with a positive weight, in
    the order given.
    """
    known = list(known)
    example = ",".join(f"{name}={i + 1}" for i, name in enumerate(known[:2]))
    if not isinstance(text, str) or not text.strip():
        raise PlanError(f"{option} is empty: give {what}s with weights, e.g. {option} {example}")
    weights: dict[str, Fraction] = {}
    for part in text.split(","):
        part = part.strip()
        if not part:
            raise PlanError(f"{option} {text!r} has an empty entry: separate entries with single commas")
        name, sep, raw = part.partition("=")
        name = name.strip()
        if name not in known:
            raise PlanError(
                f"{option} names an unknown {what} {name!r}; known: {', '.join(known)} "
                f"(e.g. {option} {example})"
            )
        if name in weights:
            raise PlanError(f"{option} gives {name!r} twice; give each {what} once")
        if not sep:
            weight = Fraction(1)
        else:
            try:
                weight = Fraction(raw.strip())
            except (ValueError, ZeroDivisionError):
                raise PlanError(
                    f"{option}: the weight of {name!r} is {raw.strip()!r}, not a number; "
                    f"write {name}=3 (weights are non-negative numbers)"
                ) from None
            if weight < 0:
                raise PlanError(
                    f"{option}: the weight of {name!r} is negative ({raw.strip()}); use 0 or more"
                )
        weights[name] = weight
    positive = {name: w for name, w in weights.items() if w > 0}
    if not positive:
        raise PlanError(
            f"{option} {text!r} gives every {what} weight 0: at least one needs a positive weight"
        )
    return positive


def integer_weights(weights: Mapping[str, Fraction]) -> dict[str, int]:
    """The smallest whole numbers in the same proportions (3:1 stays 3:1, 0.75:0.25 becomes 3:1)."""
    fractions = {name: Fraction(w).limit_denominator(1000) for name, w in weights.items()}
    lcm = reduce(lambda a, b: a * b // math.gcd(a, b), (f.denominator for f in fractions.values()), 1)
    ints = {name: int(f * lcm) for name, f in fractions.items()}
    gcd = reduce(math.gcd, ints.values())
    ints = {name: v // gcd for name, v in ints.items()}
    if sum(ints.values()) > MAX_TASK_SLOTS:
        raise PlanError(
            f"the weights {dict((k, str(v)) for k, v in weights.items())} need {sum(ints.values())} "
            f"task slots (at most {MAX_TASK_SLOTS}): round them, e.g. 0.333 -> 1 and 0.667 -> 2"
        )
    return ints


def shares(weights: Mapping[str, Fraction]) -> dict[str, float]:
    """Weights normalised to sum to 1."""
    total = sum(weights.values())
    return {name: float(w / total) for name, w in weights.items()}


def grpc_target(text: str) -> str:
    """``host:port`` from ``host:port``, ``grpc://host:port`` or ``http://host:port``."""
    value = (text or "").strip()
    if "://" in value:
        parts = urlsplit(value)
        if not parts.hostname or not parts.port:
            raise PlanError(
                f"--grpc-host {text!r} has no host and port; write e.g. --grpc-host {LOOPBACK}:8081"
            )
        return f"{parts.hostname}:{parts.port}"
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise PlanError(f"--grpc-host {text!r} is not HOST:PORT; write e.g. --grpc-host {LOOPBACK}:8081")
    return value


def is_loopback(host: str) -> bool:
    """True when ``host`` names or resolves only to loopback addresses."""
    host = host.strip("[]")
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None)
    except OSError:
        return False
    return bool(infos) and all(ipaddress.ip_address(info[4][0]).is_loopback for info in infos)


@dataclass(frozen=True)
class Plan:
    """A validated load run. Weights are positive; ``arrival_rate`` 0 means closed loop."""

    mix: dict[str, Fraction]
    transports: dict[str, Fraction]
    batch_size: int
    versioned: bool
    rest_url: str
    grpc_target: str
    shape: str = "steady"
    steps: int = 4
    spike_factor: float = 4.0
    arrival_rate: float = 0.0
    arrival: str = "constant"
    max_requests: int = DEFAULT_MAX_REQUESTS
    late_ms: float = DEFAULT_LATE_MS
    seed: int | None = None
    tags: frozenset[str] | None = None
    client: str = "precise"
    exclude_tags: frozenset[str] = field(default_factory=frozenset)
    models_dir: str = str(MODELS_DIR)  # "": the server's own models, no local folder
    samples_dir: str | None = None
    versions: dict[str, str | None] = field(default_factory=dict)  # every served model's version

    def version(self, model: str) -> str:
        """The version ``model`` is called with (``""``: unversioned path or no version)."""
        return (self.versions.get(model) or "") if self.versioned else ""

    @property
    def open_loop(self) -> bool:
        return self.arrival_rate > 0

    def selected(self, model: str, transport: str) -> bool:
        """Whether the (model, transport) task survives ``--tags``/``--exclude-tags``."""
        task_tags = {model, transport, "infer"}
        if self.tags is not None and not task_tags & self.tags:
            return False
        return not task_tags & self.exclude_tags

    def combinations(self) -> list[tuple[str, str]]:
        """(model, transport) pairs that will get load."""
        return [(m, t) for t in self.transports for m in self.mix if self.selected(m, t)]

    def describe(self) -> dict[str, Any]:
        """JSON-safe summary for reports."""
        out = asdict(self)
        out["mix"] = {k: float(v) for k, v in self.mix.items()}
        out["transports"] = {k: float(v) for k, v in self.transports.items()}
        out["tags"] = sorted(self.tags) if self.tags is not None else None
        out["exclude_tags"] = sorted(self.exclude_tags)
        out["mode"] = "open-loop" if self.open_loop else "closed-loop"
        out["path_style"] = "versioned" if self.versioned else "unversioned"
        del out["versioned"]
        return out


def plan_from_options(options: Any, served: Mapping[str, str | None] | None = None,
                      models_dir: str | None = None) -> Plan:
    """Build and validate a Plan from Locust's parsed options (an argparse Namespace).

    ``served`` is every model the target serves with its version (default: the
    seed's two), ``models_dir`` where they come from (see :mod:`._models`).
    """
    if served is None:
        served = {name: spec.version for name, spec in MODELS.items()}
    models_dir = str(MODELS_DIR) if models_dir is None else models_dir
    mix_text = options.mix
    if not mix_text:  # no --mix: the seed's 3:1, else every served model alike
        from ._models import default_mix

        mix_text = default_mix(models_dir, served)
    mix = parse_weights(mix_text, served, "model", "--mix")
    transports = parse_weights(options.transports, TRANSPORTS, "transport", "--transports")
    batch_size = int(options.batch_size)
    if batch_size < 1:
        raise PlanError(f"--batch-size is {batch_size}; it must be 1 or more rows per request")
    if options.path_style not in PATH_STYLES:
        raise PlanError(f"--path-style is {options.path_style!r}; use one of {', '.join(PATH_STYLES)}")
    if options.shape not in SHAPES:
        raise PlanError(f"--shape is {options.shape!r}; use one of {', '.join(SHAPES)}")
    if options.arrival not in ARRIVALS:
        raise PlanError(f"--arrival is {options.arrival!r}; use one of {', '.join(ARRIVALS)}")
    rate = float(options.arrival_rate or 0)
    if rate < 0 or not math.isfinite(rate):
        raise PlanError(f"--arrival-rate is {rate}; give requests per second (> 0), or 0 for closed loop")
    max_requests = int(options.max_requests)
    if max_requests < 1:
        raise PlanError(f"--max-requests is {max_requests}; give a positive request cap")
    steps = int(options.steps)
    if steps < 1:
        raise PlanError(f"--steps is {steps}; give 1 or more")
    spike = float(options.spike_factor)
    if spike < 1 or not math.isfinite(spike):
        raise PlanError(f"--spike-factor is {spike}; give 1 or more (peak / baseline)")
    client = getattr(options, "client", "precise")
    if client not in CLIENTS:
        raise PlanError(f"--client is {client!r}; use one of {', '.join(CLIENTS)}")
    late_ms = float(options.late_ms)
    if late_ms <= 0:
        raise PlanError(f"--late-ms is {late_ms}; give a positive number of milliseconds")
    host = (options.host or "").rstrip("/")
    parts = urlsplit(host)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise PlanError(f"--host {options.host!r} is not a URL; write e.g. --host http://{LOOPBACK}:8080")
    if parts.scheme == "https" and client == "precise":
        raise PlanError(f"--host {host} is https, which the precise client does not speak: "
                        "pass --client stock (Locust's FastHttpUser client and grpcio)")
    target = grpc_target(options.grpc_host)
    if not getattr(options, "allow_remote", False):
        for what, name in (("--host", parts.hostname), ("--grpc-host", target.rpartition(":")[0])):
            if not is_loopback(name):
                raise PlanError(
                    f"{what} {name} is not a loopback address: this harness sends load to loopback "
                    "only unless you pass --allow-remote (do so only for servers you own)"
                )
    samples = getattr(options, "samples", None)
    if samples and not Path(samples).is_dir():
        raise PlanError(f"--samples {samples} is not a folder: give a folder of <model>/*.json request files")
    tags = frozenset(options.tags) if getattr(options, "tags", None) else None
    exclude = frozenset(getattr(options, "exclude_tags", None) or ())
    plan = Plan(
        mix=mix,
        transports=transports,
        batch_size=batch_size,
        versioned=options.path_style == "versioned",
        rest_url=host,
        grpc_target=target,
        shape=options.shape,
        steps=steps,
        spike_factor=spike,
        arrival_rate=rate,
        arrival=options.arrival,
        max_requests=max_requests,
        late_ms=late_ms,
        seed=options.seed,
        tags=tags,
        exclude_tags=exclude,
        client=client,
        models_dir=models_dir,
        samples_dir=str(options.samples) if getattr(options, "samples", None) else None,
        versions=dict(served),
    )
    if not plan.combinations():
        raise PlanError(
            f"--tags {sorted(tags or [])} / --exclude-tags {sorted(exclude)} leave no model x transport "
            f"to load (mix {sorted(mix)}, transports {sorted(transports)}); task tags are the model "
            "name, the transport (rest, grpc) and 'infer'"
        )
    return plan


# ------------------------------------------------------------------ profiles


def profile(shape: str, t: float, duration: float, steps: int = 4, spike_factor: float = 4.0) -> float:
    """The load multiplier (0 < m <= 1) at ``t`` seconds into a run of ``duration`` seconds.

    Closed loop multiplies ``-u`` (users), open loop multiplies ``--arrival-rate``:

    * steady: 1 throughout;
    * ramp: rises linearly from 1/20 to 1 over the run;
    * step: ``steps`` equal steps up to 1, each ``duration/steps`` long;
    * spike: 1/``spike_factor`` except from 40% to 55% of the run, where it is 1.
    """
    if duration <= 0:
        return 1.0
    x = min(max(t / duration, 0.0), 1.0)
    if shape == "steady":
        return 1.0
    if shape == "ramp":
        return max(x, 0.05)
    if shape == "step":
        return min(math.floor(x * steps) + 1, steps) / steps
    if shape == "spike":
        return 1.0 if 0.40 <= x < 0.55 else 1.0 / spike_factor
    raise ValueError(f"unknown shape {shape!r}; use one of {', '.join(SHAPES)}")


def users_at(shape: str, t: float, duration: float, peak_users: int, steps: int = 4,
             spike_factor: float = 4.0) -> int:
    """Closed-loop user count at ``t``: the profile times ``peak_users``, at least 1."""
    return max(1, math.ceil(peak_users * profile(shape, t, duration, steps, spike_factor) - 1e-9))
