"""Example function handlers served by the sample config in ``config/`` (importable as ``gateway.examples.*``).

May import: nothing from `gateway` (they are what a user's function would be).
"""
