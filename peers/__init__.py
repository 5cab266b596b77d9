"""Peer deployments: real V2 servers other than the reference MLServer, run for the conformance suite."""
