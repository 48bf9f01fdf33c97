"""Leaf layer: the gateway error type and catalogue, process settings, path hygiene, asyncio helpers.

May import: nothing from `gateway`.
"""
