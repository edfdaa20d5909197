"""Prometheus metrics, readiness checks and the request context of logs: how operators see the service."""
