"""Swagger 2.0 / OpenAPI 3.0 import and export with the vendor's `x-apigateway-*` extensions.
"""
