"""Swagger 2.0 / OpenAPI 3.0 import and export with the vendor's `x-apigateway-*` extensions: per-section
codecs with both directions side by side (`mapping`), the drivers, the admin routes and the CLI commands.

May import: what `gateway.control` may import.
"""
