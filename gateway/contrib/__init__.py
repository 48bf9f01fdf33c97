"""Helpers for backend authors (verifying the gateway's backend signatures); never imported by the gateway.

May import: `gateway.lib`, `gateway.core`.
"""
