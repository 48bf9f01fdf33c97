"""Backend targets: HTTP (pooled upstream client), MOCK, FUNCTION; the shapes they share (base.py)."""
