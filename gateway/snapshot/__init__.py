"""The configuration snapshot: load (files, bytes), schemas, validation (docs/snapshot.md)."""
