"""Triton Inference Server (through PyTriton) serving the seed's two artifacts on loopback.

``python -m peers.triton run -- CMD ...`` builds (or reuses) the peer's own virtualenv,
starts Triton on free loopback ports, runs ``CMD`` with ``{rest}`` and ``{grpc}``
replaced by its addresses, and stops Triton; ``python -m peers.triton serve`` runs it
by hand. ``serve.py`` is the process inside the peer virtualenv; it imports nothing
of the harness.
"""

from peers.triton.errors import PeerError

__all__ = ["PeerError"]
