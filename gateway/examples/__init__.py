"""Example handlers served by the sample config in ``config/`` (importable as ``gateway.examples.*``)."""
