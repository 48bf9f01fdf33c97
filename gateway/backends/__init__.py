"""Backend targets: what a backend plan forwards to (HTTP/HTTPS with VPC channels, gRPC, MOCK, FUNCTION) and
the client side of backend TLS. Each target implements :class:`gateway.model.plan.Target`; builders that
read the snapshot take plain arguments (the compiler adapts, :mod:`gateway.compiler.targets`).

May import: `gateway.model`, `gateway.snapshot`, `gateway.lib`, `gateway.core`.
"""
