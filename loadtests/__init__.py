"""Locust load tests of the V2 deployment: run with ``locust -f loadtests/`` (see loadtests/README.md)."""
