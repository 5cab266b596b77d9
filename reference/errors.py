"""Errors the harness reports to a person: one line saying what is wrong and what to do."""


class HarnessError(Exception):
    """A problem the user can fix; the CLI prints it as one line and exits non-zero."""


class DataError(HarnessError):
    """Training data is missing, unreachable or corrupt."""


class ConfigError(HarnessError):
    """A settings file or model artifact is missing or does not parse."""


class ServerStartError(HarnessError):
    """MLServer did not come up (port taken, model failed to load, timeout)."""
