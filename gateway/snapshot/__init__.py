"""The configuration snapshot: loading (files, bytes), field schemas, validation into an `Index`, the core
collections, feature and plug-in records, change planning between two documents (docs/snapshot.md).
Stage-owned collections and checks are handed in by the caller (`gateway.pipeline.chain`), never imported.

May import: `gateway.lib`, `gateway.core`.
"""
