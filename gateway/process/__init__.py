"""The serving process: listeners, config swaps and reloads, Redis distribution, the `--workers`
supervisor. The composition root of the data plane.

May import: everything except the entry points (`gateway.cli`, `gateway.docgen`).
"""
