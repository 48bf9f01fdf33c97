"""Request-time data: the compiled runtime (routes, endpoints, backend plans), the request context, error
responses and the per-process services. Immutable once compiled.

May import: `gateway.core`, `gateway.lib`.
"""
