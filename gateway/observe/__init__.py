"""Observability: the JSON access log and Prometheus metrics, fed by completion hooks.

May import: everything below `gateway.control`.
"""
