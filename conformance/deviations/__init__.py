"""Known deviations of servers, kept as data: one TOML baseline per server identity.

Each entry is a strict expected failure of the examples it covers: when the
server stops doing what the entry says, the run fails and the entry must go.
See :mod:`conformance.deviations.files` for the file format and
:mod:`conformance.deviations.entry` for what an entry covers.
"""

from conformance.deviations.entry import Deviation
from conformance.deviations.files import (
    BUILTIN_DIR,
    Baseline,
    DeviationsError,
    InForce,
    builtin_files,
    builtin_for,
    in_force,
    load,
    write,
)

__all__ = ["BUILTIN_DIR", "Baseline", "Deviation", "DeviationsError", "InForce", "builtin_files",
           "builtin_for", "in_force", "load", "write"]
