"""One module (or package) per request stage: its snapshot schema, its validation check, its compile step and
its request-time function, in that reading order.

May import: `gateway.backends`, `gateway.model`, `gateway.snapshot`, `gateway.lib`, `gateway.core`.
"""
