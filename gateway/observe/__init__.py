"""Observability: the JSON access log, Prometheus metrics and the kafka_log plug-in's record shipping, all
fed by completion hooks that the process installs.

May import: `gateway.compiler` and everything below it; never `gateway.control` or `gateway.process`.
"""
