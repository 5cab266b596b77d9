"""The one error of the peer: the message is a single line saying what to fix."""


class PeerError(Exception):
    """The Triton peer cannot be built, started or stopped; ``str()`` says why and what to do."""
